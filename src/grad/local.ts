/** The backward pass of `local`: softmax attention over its window (src/grad/patterns.ts), on full's SIMD plan as a band of keys. */
import type { PatternParsed } from '../patterns.js';
import type { Backward } from './backward.js';
import { patternGradients, patternBackwardPlan } from './patterns.js';

export const local: Backward<PatternParsed> = {
  reference: patternGradients,
  plan: patternBackwardPlan,
};
