/**
 * The backward pass of `lsh`: src/reference/grad/lsh.ts, and the SIMD plan
 * of ./lsh-plan.ts; q's gradient covers its roles as queries and keys (k is
 * null).
 */
import { lshBackward } from '../reference/grad/lsh.js';
import type { LshParsed } from '../variants/lsh.js';
import type { Backward } from './backward.js';
import { lshBackwardPlan } from './lsh-plan.js';
import { toFloat32 } from './params.js';

export const lsh: Backward<LshParsed> = {
  reference({ q, v }, p, gradOutput) {
    const g = lshBackward(q!, v!, p, gradOutput.data);
    return { q: toFloat32(g.q), k: null, v: toFloat32(g.v), params: {} };
  },
  plan(runtime, { q, v }, p, gradOutput) {
    return lshBackwardPlan(runtime, q!, v!, gradOutput, p);
  },
};
