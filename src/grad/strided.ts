/** The backward pass of `strided`: softmax attention over its pattern (src/grad/patterns.ts). */
import type { PatternParsed } from '../patterns.js';
import type { Backward } from './backward.js';
import { patternGradients } from './patterns.js';

export const strided: Backward<PatternParsed> = {
  reference: patternGradients,
};
