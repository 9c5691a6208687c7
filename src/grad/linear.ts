/** The backward pass of `linear`: src/reference/grad/linear.ts (and efficient.ts); the projection is a constant. */
import { linearBackward } from '../reference/grad/linear.js';
import type { LinearParsed } from '../variants/linear.js';
import { linearBackwardPlan } from './linear-plan.js';
import type { Backward } from './backward.js';
import { toFloat32 } from './params.js';

export const linear: Backward<LinearParsed> = {
  reference({ q, k, v }, p, gradOutput) {
    const g = linearBackward(q!, k!, v!, p, gradOutput.data);
    return { q: toFloat32(g.q), k: toFloat32(g.k), v: toFloat32(g.v), params: {} };
  },
  plan: linearBackwardPlan,
};
