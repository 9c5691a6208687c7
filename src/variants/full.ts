/**
 * `full`: exact softmax attention, `out_i = sum_j softmax_j(scale q_i . k_j) v_j`
 * over the keys that `causal`, `keyPadding` and `mask` leave visible, with
 * `softcap` and `bias` on the logits. The kernel is tiled with an online
 * softmax (FlashAttention): no Nq x Nk buffer.
 */
import { declareOptions } from '../options.js';
import { hasLogitOptions, parseLogitOptions, scoringOptions, type LogitOptions, type ScoringOptions } from '../model.js';
import { commonVisible, softmaxAttention, softmaxLogits, softmaxWeights } from '../reference/softmax.js';
import { checkQKV, commonOptions, parseCommon, type Common, type CommonOptions } from '../validate.js';
import type { Inputs, Parsed, Problem, Variant } from './variant.js';
import { headOffset, rowStride, type Heads } from '../tensor.js';
import { termsParts, writeTermsCall } from '../engine.js';
import { balancedRowJobs, rowJobs, type Runtime } from '../runtime/runtime.js';
import { scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';

/** Options of `full`: the common ones, and `mask`, `bias`, `softcap`. */
export interface FullOptions extends CommonOptions, ScoringOptions {}

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
  layoutInPlace: true,
  options: declareOptions<FullOptions>()({ ...commonOptions, ...scoringOptions }),
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
    return fullPlan(runtime, q!, k!, v!, p, p);
  },
  kernel(runtime, { q, k, v }, p) {
    return runtime.execute(fullPlan(runtime, q!, k!, v!, p, p, true));
  },
};

/**
 * The SIMD kernel of `full` as a plan: jobs of one query head (or of row
 * chunks of it, on a pool with few heads), each packing the kv head it reads
 * (grouped-query heads share it in place) and writing its head's model terms
 * record; q, k, v and the output are read and written in place in either
 * layout. `oneThread`: the plan runs on the calling thread (`kernel`).
 */
export function fullPlan(runtime: Runtime, q: Heads, k: Heads, v: Heads, common: Common, terms: LogitOptions, oneThread = false): JobPlan {
  const { B, H, N: Nq, D } = q;
  const { N: Nk } = k;
  const Dv = v.D;
  const x = runtime.exports;
  const pad = common.keyPadding;
  const out = { H, N: Nq, D: Dv, layout: q.layout };
  const [pack, tiles, record] = [scratch(0), scratch(1), scratch(2)];
  // a mask and bias the same for every head: the heads of a batch share each (tile, block)'s cover
  const sharedByHeads = H > 1 && (terms.mask ?? terms.bias) !== null && (terms.mask?.strides[1] ?? 0) === 0 && (terms.bias?.strides[1] ?? 0) === 0;
  const [tileCount, blockCount] = [Math.ceil(Nq / 8), Math.ceil(Nk / 64)];
  // a head is one job, packed once, on one thread and where there are heads enough to
  // keep every thread busy; else jobs of rows that each pack their head again (N (D + Dv)
  // work against their rows' N (D + Dv) per row), of equal work when causal
  const wholeHeads = oneThread || B * H >= 4 * runtime.threads;
  // the row ranges of each head's jobs: the same for every head
  const headJobs = wholeHeads ? [rowJobs(Nq, Nk, D + Dv)] : balancedRowJobs(Nq, Nk, D + Dv, common.causal);
  return {
    what: 'full',
    parts: [q.data, k.data, v.data, B * H * Nq * Dv * 4, pad ?? 0, ...termsParts(terms), sharedByHeads ? new Uint8Array(B * tileCount * blockCount) : 0],
    output: 3,
    length: B * H * Nq * Dv,
    scratch: [x.packBytes(Nk, D, Dv), x.groupBytes(D, Dv), x.termsBytes()],
    jobs: ([qp, kp, vp, op, padp, maskp, biasp, coversp]) =>
      Array.from({ length: B * H }, (_, bh) => {
        const [b, h] = [Math.floor(bh / H), bh % H];
        const [qh, kh, vh, oh] = [q, k, v, out].map((x) => ({ offset: headOffset(x, b, h, H) * 4, ld: rowStride(x) }));
        const prepare: KernelCall[] = [['packHead', kp + kh.offset, vp + vh.offset, Nk, D, Dv, kh.ld, vh.ld, pad ? padp + b * Nk : 0, pack]];
        if (hasLogitOptions(terms)) prepare.push(writeTermsCall(terms, maskp, biasp, b, h, record));
        if (sharedByHeads) prepare.push(['shareCovers', record, coversp + b * tileCount * blockCount, blockCount]);
        const termsArg = hasLogitOptions(terms) ? record : 0;
        return headJobs.map((ranges): Job => [
          ...prepare,
          ...ranges.map(([start, end]): KernelCall => ['fullAttentionRows', qp + qh.offset, op + oh.offset, Nq, Nk, D, Dv, qh.ld, oh.ld, common.scale, common.causal ? 1 : 0, termsArg, pack, tiles, start, end]),
        ]);
      }).flat(),
  };
}
