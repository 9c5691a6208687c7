/** The backward pass of `sparse`: softmax attention over its patterns' union (src/grad/patterns.ts), on full's SIMD plan over its pairs. */
import type { PatternParsed } from '../patterns.js';
import type { Backward } from './backward.js';
import { patternGradients, patternBackwardPlan } from './patterns.js';

export const sparse: Backward<PatternParsed> = {
  reference: patternGradients,
  plan: patternBackwardPlan,
};
