/** The backward pass of `sparse`: softmax attention over its pattern (src/grad/patterns.ts); a union of local windows runs on full's SIMD plan. */
import type { PatternParsed } from '../patterns.js';
import type { Backward } from './backward.js';
import { patternGradients, windowBackwardPlan } from './patterns.js';

export const sparse: Backward<PatternParsed> = {
  reference: patternGradients,
  plan: windowBackwardPlan,
};
