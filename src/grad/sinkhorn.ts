/**
 * The backward pass of `sinkhorn`: src/reference/grad/sinkhorn.ts, and the
 * SIMD plan of ./sinkhorn-plan.ts; `params.sortLogits` when the sort logits
 * were given.
 */
import { sinkhornBackward } from '../reference/grad/sinkhorn.js';
import type { SinkhornParsed } from '../variants/sinkhorn.js';
import type { Backward, GradParams } from './backward.js';
import { toFloat32 } from './params.js';
import { sinkhornBackwardPlan } from './sinkhorn-plan.js';

export const sinkhorn: Backward<SinkhornParsed> = {
  reference({ q, k, v }, p, gradOutput) {
    const g = sinkhornBackward(q!, k!, v!, p, gradOutput.data);
    const { H, Nq } = p.problem;
    const nb = Nq / p.blockSize;
    let params: GradParams = {};
    if (g.sortLogits && p.sortLogits) {
      const heads = p.sortLogits.headStride === 0 ? 1 : H;
      params = { sortLogits: { data: toFloat32(g.sortLogits), dims: [g.sortLogits.length / Math.max(1, heads * nb * nb), heads, nb, nb] } };
    }
    return { q: toFloat32(g.q), k: toFloat32(g.k), v: toFloat32(g.v), params };
  },
  plan: sinkhornBackwardPlan,
};
