/** The backward pass of `compressed`: src/reference/grad/compressed.ts, and its SIMD plan (compressed-plan.ts); `params` holds what the call gave (`convK`, `convV`, `nullKey`, `nullValue`). */
import { compressedBackward, type ConvGradients } from '../reference/grad/compressed.js';
import type { CompressedParsed } from '../variants/compressed.js';
import { compressedBackwardPlan } from './compressed-plan.js';
import type { Backward, GradParams } from './backward.js';
import { paramTensor, toFloat32 } from './params.js';

function convParams(g: ConvGradients, features: number, s: number): GradParams {
  const weight = paramTensor(g.weight, [features, features, s]);
  return g.bias ? { weight, bias: paramTensor(g.bias, [features]) } : { weight };
}

export const compressed: Backward<CompressedParsed> = {
  reference({ q, k, v }, p, gradOutput) {
    const g = compressedBackward(q!, k!, v!, p, gradOutput.data);
    const { D, Dv } = p.problem;
    const params: Record<string, GradParams[string]> = {};
    if (g.convK) params.convK = convParams(g.convK, D, p.factor);
    if (g.convV) params.convV = convParams(g.convV, Dv, p.factor);
    if (g.nullKey) params.nullKey = paramTensor(g.nullKey, [D]);
    if (g.nullValue) params.nullValue = paramTensor(g.nullValue, [Dv]);
    return { q: toFloat32(g.q), k: toFloat32(g.k), v: toFloat32(g.v), params };
  },
  plan: compressedBackwardPlan,
};
