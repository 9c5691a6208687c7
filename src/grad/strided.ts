/** The backward pass of `strided`: softmax attention over its pattern (src/grad/patterns.ts), on full's SIMD plan over the pattern's pairs. */
import type { PatternParsed } from '../patterns.js';
import type { Backward } from './backward.js';
import { patternBackwardPlan, patternGradients } from './patterns.js';

export const strided: Backward<PatternParsed> = {
  reference: patternGradients,
  plan: patternBackwardPlan,
};
