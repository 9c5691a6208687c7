/** The backward pass of `linformer`: src/reference/grad/linformer.ts. `params.f` only when f was given apart from e. */
import { linformerBackward } from '../reference/grad/linformer.js';
import type { LinformerParsed } from '../variants/linformer.js';
import { linformerBackwardPlan } from './linformer-plan.js';
import type { Backward, GradParams } from './backward.js';
import { paramTensor, toFloat32 } from './params.js';

export const linformer: Backward<LinformerParsed> = {
  reference({ q, k, v }, p, gradOutput) {
    const g = linformerBackward(q!, k!, v!, p, gradOutput.data);
    const inner = [p.P, p.problem.Nk];
    const params: GradParams = p.f === p.e ? { e: paramTensor(g.e, inner) } : { e: paramTensor(g.e, inner), f: paramTensor(g.f, inner) };
    return { q: toFloat32(g.q), k: toFloat32(g.k), v: toFloat32(g.v), params };
  },
  plan: linformerBackwardPlan,
};
