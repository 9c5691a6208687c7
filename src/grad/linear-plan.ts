/**
 * The SIMD backward pass of `linear` (SPEC "Gradients") as a plan: one job per
 * (batch, kv head), running its query heads in turn (their k and v gradients
 * add up in place), each head a forward sweep of query chunks, a reverse
 * sweep (causal: reversed prefix sums) and the chain rule through the
 * feature map (assembly/grad/linear.ts).
 */
import type { Runtime } from '../runtime/runtime.js';
import { scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import { headOffset, type Heads } from '../tensor.js';
import { featureCountOf, MAP_CODE, transposedProjection, type LinearParsed } from '../variants/linear.js';
import type { Inputs } from '../variants/variant.js';
import type { BackwardPlan } from './backward.js';

/** The exports of assembly/grad/linear.ts. */
interface LinearGradKernels {
  linearGradBytes(Nq: number, Nk: number, D: number, Dv: number, F: number): number;
  linearGradChunk(): number;
  linearGradHead(ws: number, kind: number, D: number, Dv: number, F: number, M: number, wt: number, w: number, scale: number, logEps: number, Nq: number, Nk: number, causal: number, q: number, k: number, v: number, pad: number, g: number): void;
  linearGradForward(ws: number, i0: number, i1: number): void;
  linearGradReverseStart(ws: number): void;
  linearGradReverse(ws: number, i0: number, i1: number): void;
  linearGradFinish(ws: number, dq: number, dk: number, dv: number, accumulate: number): void;
}

/** Multiply-adds per sweep call: V8 tiers a WebAssembly function up between calls, so long heads go in several. */
const WORK_PER_CALL = 2 ** 24;

/**
 * The projection `[H|1, M, D]` as the chain rule reads it, row-major and
 * times sqrt(scale) for favor (the factor of `x' = sqrt(scale) x`).
 */
function chainProjection(p: LinearParsed): { data: Float32Array; headStride: number } {
  const w = p.projection;
  if (!w || (p.featureMap !== 'favor' && p.featureMap !== 'rfa')) return { data: new Float32Array(0), headStride: 0 };
  const factor = p.featureMap === 'favor' ? Math.sqrt(p.scale) : 1;
  return { data: w.data.map((x) => x * factor), headStride: w.headStride };
}

/** Gradients of q `[B, H, Nq, D]`, k `[B, Hkv, Nk, D]` and v `[B, Hkv, Nk, Dv]`, side by side in the output. */
export function linearBackwardPlan(runtime: Runtime, { q, k, v }: Inputs, p: LinearParsed, gradOutput: Heads): BackwardPlan {
  const x = runtime.exports as unknown as LinearGradKernels;
  const { B, H, Hkv, Nq, Nk, D, Dv } = p.problem;
  const F = featureCountOf(p, D);
  const M = p.projection ? p.projection.M : 0;
  const wt = transposedProjection(p, D);
  const w = chainProjection(p);
  const kind = MAP_CODE[p.featureMap];
  const logEps = Math.log(p.eps);
  const pad = p.keyPadding;
  const qLength = B * H * Nq * D;
  const kLength = B * Hkv * Nk * D;
  const vLength = B * Hkv * Nk * Dv;
  const chunk = x.linearGradChunk();
  const E = Dv + 1;
  // per query row and sweep: the state products and the window's masked ones
  const perRow = 2 * F * E + 2 * chunk * (F + E);
  const rowsPerCall = chunk * Math.max(1, Math.floor(WORK_PER_CALL / (perRow * chunk)));
  const ws = scratch(0);
  const group = H / Hkv;
  const plan: JobPlan = {
    what: 'linear backward',
    parts: [q!.data, k!.data, v!.data, gradOutput.data, (qLength + kLength + vLength) * 4, wt.data.length > 0 ? wt.data : 0, w.data.length > 0 ? w.data : 0, pad ?? 0],
    output: 4,
    length: qLength + kLength + vLength,
    scratch: [x.linearGradBytes(Nq, Nk, D, Dv, F)],
    jobs: ([qp, kp, vp, gp, out, wtp, wp, padp]) =>
      Array.from({ length: B * Hkv }, (_, bg): Job => {
        const b = Math.floor(bg / Hkv);
        const kvHead = bg % Hkv;
        const job: KernelCall[] = [];
        for (let h = kvHead * group; h < (kvHead + 1) * group; h++) {
          const bh = b * H + h;
          const kHead = kp + headOffset(k!, b, h, H) * 4;
          const vHead = vp + headOffset(v!, b, h, H) * 4;
          const wtHead = wt.data.length > 0 ? wtp + h * wt.headStride * 4 : 0;
          const wHead = w.data.length > 0 ? wp + h * w.headStride * 4 : 0;
          job.push(['linearGradHead', ws, kind, D, Dv, F, M, wtHead, wHead, p.scale, logEps, Nq, Nk, p.causal ? 1 : 0, qp + bh * Nq * D * 4, kHead, vHead, pad ? padp + b * Nk : 0, gp + bh * Nq * Dv * 4]);
          for (let i0 = 0; i0 < Nq; i0 += rowsPerCall) job.push(['linearGradForward', ws, i0, Math.min(Nq, i0 + rowsPerCall)]);
          job.push(['linearGradReverseStart', ws]);
          const last = Math.floor((Nq - 1) / rowsPerCall) * rowsPerCall;
          for (let i0 = last; i0 >= 0; i0 -= rowsPerCall) job.push(['linearGradReverse', ws, i0, Math.min(Nq, i0 + rowsPerCall)]);
          const dq = out + bh * Nq * D * 4;
          const dk = out + (qLength + (b * Hkv + kvHead) * Nk * D) * 4;
          const dv = out + (qLength + kLength + (b * Hkv + kvHead) * Nk * Dv) * 4;
          job.push(['linearGradFinish', ws, dq, dk, dv, h === kvHead * group ? 0 : 1]);
        }
        return job;
      }),
  };
  return {
    plan,
    split: (flat) => ({
      q: flat.subarray(0, qLength),
      k: flat.subarray(qLength, qLength + kLength),
      v: flat.subarray(qLength + kLength),
      params: {},
    }),
  };
}
