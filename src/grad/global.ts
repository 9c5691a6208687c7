/** The backward pass of `global`: softmax attention over its pattern (src/grad/patterns.ts). */
import type { PatternParsed } from '../patterns.js';
import type { Backward } from './backward.js';
import { patternGradients } from './patterns.js';

export const globalTokens: Backward<PatternParsed> = {
  reference: patternGradients,
};
