/**
 * The SIMD backward pass of `compressed` (SPEC "Gradients") as a plan of two
 * stages (assembly/grad/compressed.ts): per (batch, query head), the slot
 * rows made again by the forward's kernels and the softmax backward over
 * them (assembly/grad/slots.ts), giving dq and the slot gradients; then,
 * independently, dk and dv per (batch, kv head) through the pooling (mean or
 * Conv1d), and each head of every parameter (conv weight and bias, null key
 * and value), each summing its terms in a fixed order (so the pool gives the
 * same bits).
 */
import type { Runtime } from '../runtime/runtime.js';
import { sideBySide, scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import { headOffset, type Heads } from '../tensor.js';
import type { Param } from '../validate.js';
import { convLayout, type CompressedParsed } from '../variants/compressed.js';
import type { SlotConv } from '../reference/compressed.js';
import type { Inputs } from '../variants/variant.js';
import type { BackwardPlan, GradParams } from './backward.js';

/** The exports of assembly/grad/compressed.ts and slots.ts, and the forward's slot kernels. */
interface CompressedGradKernels {
  compressedSlots(x: number, N: number, Dx: number, s: number, keyPadding: number, wt: number, bias: number, nullRow: number, masked: number, slots: number): void;
  compressedSlotPadding(keyPadding: number, N: number, s: number, first: number, real: number): void;
  compressedGradVisible(Nq: number, Nk: number, s: number, visible: number): void;
  slotGradBytes(P: number, D: number, Dv: number): number;
  slotGradBlock(): number;
  slotGradStart(kRows: number, vRows: number, P: number, D: number, Dv: number, ws: number, dK: number, dV: number): void;
  slotSoftmaxBackward(q: number, g: number, D: number, Dv: number, P: number, scale: number, kRows: number, ws: number, dq: number, dK: number, dV: number, i0: number, i1: number, first: number, real: number, visible: number): void;
  compressedGradRowSum(rows: number, count: number, Dx: number, dst: number, accumulate: number): void;
  compressedGradMean(dSlots: number, N: number, Dx: number, s: number, keyPadding: number, dx: number, accumulate: number): void;
  compressedGradConvInput(dSlots: number, N: number, Dx: number, s: number, keyPadding: number, wo: number, dx: number, accumulate: number): void;
  compressedGradConvWeight(dSlots: number, x: number, N: number, Dx: number, s: number, keyPadding: number, masked: number, dW: number, accumulate: number): void;
}

/** Heads of a parameter: 1 when shared (head stride 0), else H. */
const headsOf = (param: Param, H: number) => (param.headStride === 0 ? 1 : H);

/** PyTorch Conv1d weights [heads][o][c][t] as [heads][t][o][c]: each tap's [out][in] matrix, as the input's gradient reads it. */
function tapsFirst(w: Float32Array, heads: number, Dx: number, s: number): Float32Array {
  const wo = new Float32Array(w.length);
  for (let h = 0, base = 0; h < heads; h++, base += Dx * Dx * s) {
    for (let o = 0; o < Dx; o++) {
      for (let c = 0; c < Dx; c++) for (let t = 0; t < s; t++) wo[base + (t * Dx + o) * Dx + c] = w[base + (o * Dx + c) * s + t];
    }
  }
  return wo;
}

/** The inverse of {@link tapsFirst}: the weight gradient's taps back in PyTorch's [heads][o][c][t]. */
function tapsLast(wo: Float32Array, heads: number, Dx: number, s: number): Float32Array {
  const w = new Float32Array(wo.length);
  for (let h = 0, base = 0; h < heads; h++, base += Dx * Dx * s) {
    for (let o = 0; o < Dx; o++) {
      for (let c = 0; c < Dx; c++) for (let t = 0; t < s; t++) w[base + (o * Dx + c) * s + t] = wo[base + (t * Dx + o) * Dx + c];
    }
  }
  return w;
}

/** One side (keys or values) of the pooling: its input, features, conv and null row. */
interface Side {
  readonly x: Heads;
  readonly Dx: number;
  readonly conv: SlotConv | null;
  readonly nullRow: Param | null;
}

export function compressedBackwardPlan(runtime: Runtime, { q, k, v }: Inputs, p: CompressedParsed, gradOutput: Heads): BackwardPlan {
  const x = runtime.exports as unknown as CompressedGradKernels;
  const { B, H, Hkv, Nq, Nk, D, Dv } = p.problem;
  const { factor: s, convK, convV, nullKey, nullValue, slots: S } = p;
  const pad = p.keyPadding;
  const first = nullKey ? 1 : 0;
  const pooled = S - first;
  const group = H / Hkv;
  const sides: readonly Side[] = [
    { x: k!, Dx: D, conv: convK, nullRow: nullKey },
    { x: v!, Dx: Dv, conv: convV, nullRow: nullValue },
  ];
  // the output: q, k, v, then per side its conv weight (taps first), conv bias and null row, each [heads][...]
  const paramLengths = sides.flatMap(({ Dx, conv, nullRow }) => [
    conv ? headsOf(conv.weight, H) * s * Dx * Dx : 0,
    conv?.bias ? headsOf(conv.bias, H) * Dx : 0,
    nullRow ? headsOf(nullRow, H) * Dx : 0,
  ]);
  const lengths = [B * H * Nq * D, B * Hkv * Nk * D, B * Hkv * Nk * Dv, ...paramLengths];
  const starts = sideBySide(lengths);
  const length = starts[lengths.length - 1] + lengths[lengths.length - 1];
  const block = x.slotGradBlock();
  // whole blocks of about 16M multiply-adds per call (V8 tiers a function up between calls)
  const rowsPerCall = block * Math.max(1, Math.floor(2 ** 24 / (S * 2 * (D + Dv) * block)));
  const convParts = ({ Dx, conv }: Side) =>
    conv ? [convLayout(conv.weight.data, headsOf(conv.weight, H), Dx, s), conv.bias ? conv.bias.data : 0, tapsFirst(conv.weight.data, headsOf(conv.weight, H), Dx, s)] : [0, 0, 0];
  const [slotK, slotV, ws, masked, real, visible] = [0, 1, 2, 3, 4, 5].map(scratch);
  const plan: JobPlan = {
    what: 'compressed backward',
    parts: [
      q!.data, k!.data, v!.data, gradOutput.data, ...convParts(sides[0]), ...convParts(sides[1]),
      nullKey ? nullKey.data : 0, nullValue ? nullValue.data : 0, pad ?? 0, length * 4, B * H * S * D * 4, B * H * S * Dv * 4,
    ],
    output: 13,
    length,
    scratch: [S * D * 4, S * Dv * 4, x.slotGradBytes(S, D, Dv), pad && (convK || convV) ? Nk * Math.max(D, Dv) * 4 : 0, pad ? S : 0, p.causal ? Nq * 4 : 0],
    // stage 1: per (batch, query head), the slots again and the softmax backward over them
    jobs: ([qp, kp, vp, gp, wtK, biasK, , wtV, biasV, , nullK, nullV, padp, out, dSKp, dSVp]) =>
      Array.from({ length: B * H }, (_, bh): Job => {
        const b = Math.floor(bh / H);
        const h = bh % H;
        const padRow = pad ? padp + b * Nk : 0;
        // pointers of head h's parameters (0 where not given)
        const at = (base: number, param: Param | null) => (param ? base + h * param.headStride * 4 : 0);
        const dSK = dSKp + bh * S * D * 4;
        const dSV = dSVp + bh * S * Dv * 4;
        const job: KernelCall[] = [
          ['compressedSlots', kp + headOffset(k!, b, h, H) * 4, Nk, D, s, padRow, at(wtK, convK?.weight ?? null), at(biasK, convK?.bias ?? null), at(nullK, nullKey), masked, slotK],
          ['compressedSlots', vp + headOffset(v!, b, h, H) * 4, Nk, Dv, s, padRow, at(wtV, convV?.weight ?? null), at(biasV, convV?.bias ?? null), at(nullV, nullValue), masked, slotV],
        ];
        if (pad) job.push(['compressedSlotPadding', padRow, Nk, s, first, real]);
        if (p.causal) job.push(['compressedGradVisible', Nq, Nk, s, visible]);
        job.push(['slotGradStart', slotK, slotV, S, D, Dv, ws, dSK, dSV]);
        for (let i0 = 0; i0 < Nq; i0 += rowsPerCall) {
          job.push([
            'slotSoftmaxBackward', qp + bh * Nq * D * 4, gp + bh * Nq * Dv * 4, D, Dv, S, p.scale, slotK, ws,
            out + bh * Nq * D * 4, dSK, dSV, i0, Math.min(Nq, i0 + rowsPerCall), first, pad ? real : 0, p.causal ? visible : 0,
          ]);
        }
        return job;
      }),
    stages: [
      // stage 2: the slot gradients back through the pooling, each gradient in one job
      ([, kp, vp, , , , woK, , , woV, , , padp, out, dSKp, dSVp]) => {
        const jobs: Job[] = [];
        const padOf = (b: number) => (pad ? padp + b * Nk : 0);
        sides.forEach(({ x: input, Dx, conv, nullRow }, side) => {
          const xp = side === 0 ? kp : vp;
          const wo = side === 0 ? woK : woV;
          const dSlots = (b: number, h: number) => (side === 0 ? dSKp : dSVp) + (b * H + h) * S * Dx * 4;
          // dk or dv of each (batch, kv head): its query heads' terms in head order
          for (let bg = 0; bg < B * Hkv; bg++) {
            const b = Math.floor(bg / Hkv);
            const dx = out + (starts[1 + side] + bg * Nk * Dx) * 4;
            const job: KernelCall[] = [];
            for (let h = (bg % Hkv) * group; h < (bg % Hkv + 1) * group; h++) {
              const from = dSlots(b, h) + first * Dx * 4;
              const accumulate = job.length === 0 ? 0 : 1;
              job.push(
                conv
                  ? ['compressedGradConvInput', from, Nk, Dx, s, padOf(b), wo + h * conv.weight.headStride * 4, dx, accumulate]
                  : ['compressedGradMean', from, Nk, Dx, s, padOf(b), dx, accumulate],
              );
            }
            jobs.push(job);
          }
          // each head of a parameter: the terms of every batch and query head that reads it, in order
          const paramJobs = (param: Param, start: number, floats: number, term: (b: number, h: number, accumulate: number, dst: number) => KernelCall) => {
            const heads = headsOf(param, H);
            for (let ph = 0; ph < heads; ph++) {
              const dst = out + (start + ph * floats) * 4;
              const job: KernelCall[] = [];
              for (let b = 0; b < B; b++) {
                for (let h = heads === 1 ? 0 : ph; h < (heads === 1 ? H : ph + 1); h++) job.push(term(b, h, job.length === 0 ? 0 : 1, dst));
              }
              // no batch or head reads it: a zero gradient
              jobs.push(job.length > 0 ? job : [['compressedGradRowSum', 0, 0, floats, dst, 0]]);
            }
          };
          const [weightStart, biasStart, nullStart] = [0, 1, 2].map((i) => starts[3 + 3 * side + i]);
          if (conv) {
            paramJobs(conv.weight, weightStart, s * Dx * Dx, (b, h, accumulate, dst) => [
              'compressedGradConvWeight', dSlots(b, h) + first * Dx * 4, xp + headOffset(input, b, h, H) * 4, Nk, Dx, s, padOf(b), masked, dst, accumulate,
            ]);
            if (conv.bias) paramJobs(conv.bias, biasStart, Dx, (b, h, accumulate, dst) => ['compressedGradRowSum', dSlots(b, h) + first * Dx * 4, pooled, Dx, dst, accumulate]);
          }
          if (nullRow) paramJobs(nullRow, nullStart, Dx, (b, h, accumulate, dst) => ['compressedGradRowSum', dSlots(b, h), 1, Dx, dst, accumulate]);
        });
        return jobs;
      },
    ],
  };
  const slice = (flat: Float32Array, i: number) => flat.subarray(starts[i], starts[i] + lengths[i]);
  return {
    plan,
    split: (flat) => {
      // in the reference's order: convK, convV, nullKey, nullValue
      const params: Record<string, GradParams[string]> = {};
      sides.forEach(({ Dx, conv }, side) => {
        if (!conv) return;
        const heads = headsOf(conv.weight, H);
        const weight = { data: tapsLast(slice(flat, 3 + 3 * side), heads, Dx, s), dims: [heads, Dx, Dx, s] };
        params[side === 0 ? 'convK' : 'convV'] = conv.bias ? { weight, bias: { data: slice(flat, 4 + 3 * side), dims: [headsOf(conv.bias, H), Dx] } } : { weight };
      });
      sides.forEach(({ Dx, nullRow }, side) => {
        if (nullRow) params[side === 0 ? 'nullKey' : 'nullValue'] = { data: slice(flat, 5 + 3 * side), dims: [headsOf(nullRow, H), Dx] };
      });
      return { q: slice(flat, 0), k: slice(flat, 1), v: slice(flat, 2), params };
    },
  };
}
