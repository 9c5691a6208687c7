/** The backward pass of `sparse`: softmax attention over its pattern (src/grad/patterns.ts). */
import type { PatternParsed } from '../patterns.js';
import type { Backward } from './backward.js';
import { patternGradients } from './patterns.js';

export const sparse: Backward<PatternParsed> = {
  reference: patternGradients,
};
