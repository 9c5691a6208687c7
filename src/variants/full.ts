/**
 * `full`: exact softmax attention, `out_i = sum_j softmax_j(scale q_i . k_j) v_j`
 * over the keys that `causal`, `keyPadding` and `mask` leave visible, with
 * `softcap` and `bias` on the logits. The kernel is tiled with an online
 * softmax (FlashAttention): no Nq x Nk buffer.
 */
import { parseLogitOptions, type LogitOptions } from '../model.js';
import { commonVisible, softmaxAttention, softmaxLogits, softmaxWeights } from '../reference/softmax.js';
import { checkQKV, parseCommon, type Common } from '../validate.js';
import type { Inputs, Parsed, Problem, Variant } from './variant.js';
import type { Heads } from '../tensor.js';

/** Parsed `full` options: the common ones and `mask`, `bias`, `softcap` ({@link LogitOptions}). */
export interface FullParsed extends Parsed, Common, LogitOptions {}

/** Shapes of a q/k/v problem; v is optional (weights()). */
export function qkvProblem(inputs: Inputs): Problem {
  const q = inputs.q as Heads;
  const k = inputs.k as Heads;
  checkQKV(q, k, inputs.v);
  return { B: q.B, H: q.H, Hkv: k.H, Nq: q.N, Nk: k.N, D: q.D, Dv: inputs.v ? inputs.v.D : q.D };
}

export const full: Variant<FullParsed> = {
  name: 'full',
  inputs: { q: 'required', k: 'required' },
  parse(inputs, options) {
    const problem = qkvProblem(inputs);
    return { problem, ...parseCommon(options, problem.D, problem.B, problem.Nk), ...parseLogitOptions(options, problem) };
  },
  reference({ q, k, v }, p) {
    return softmaxAttention(q!, k!, v!, p, commonVisible(p, p.problem.Nq, p.problem.Nk));
  },
  weights({ q, k }, p) {
    const { B, H, Nq, Nk } = p.problem;
    return { data: softmaxWeights(q!, k!, p, commonVisible(p, Nq, Nk)), dims: [B, H, Nq, Nk] };
  },
  logits({ q, k }, p) {
    const { B, H, Nq, Nk } = p.problem;
    return { data: softmaxLogits(q!, k!, p, commonVisible(p, Nq, Nk)), dims: [B, H, Nq, Nk] };
  },
  plan(runtime, { q, k, v }, p) {
    return runtime.fullPlan(q!, k!, v!, p);
  },
  kernel(runtime, { q, k, v }, p) {
    return runtime.execute(runtime.fullPlan(q!, k!, v!, p));
  },
};
