/**
 * `compressed` — memory-compressed attention (Liu et al. 2018, "Generating
 * Wikipedia by Summarizing Long Sequences"): keys and values are pooled in
 * slots of `factor` positions (a mean, or a learned strided convolution),
 * optionally preceded by a learned null slot, and queries attend the slots.
 */
import { compressedAttention, compressedWeights, slotCount, type CompressedMath, type SlotConv } from '../reference/compressed.js';
import { declareOptions, rejectUnknown } from '../options.js';
import { asTensor, describe, headOffset, type Heads, type Tensor } from '../tensor.js';
import { commonOptions, headParam, parseCommon, requiredNumber, type CommonOptions, type Options } from '../validate.js';
import { qkvProblem } from './full.js';
import type { Inputs, Parsed, Variant } from './variant.js';
import { forRowChunks, rowJobs, type Runtime } from '../runtime/runtime.js';
import { scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import type { Exports } from '../runtime/exports.js';

/** The exports of assembly/variants/compressed.ts. */
interface CompressedKernels extends Exports {
  /** PyTorch Conv1d weights [heads][Dx][Dx][s] ([o][c][t]) to wt [heads][s][Dx][Dx] ([t][c][o]). */
  /** One head's slot rows: null row first (nullRow != 0), then the mean (wt = 0) or the Conv1d of every s rows. */
  compressedSlots(x: number, N: number, Dx: number, s: number, keyPadding: number, wt: number, bias: number, nullRow: number, masked: number, slots: number): void;
  /** u8 [first + ceil(N / s)]: 1 for the null slot and for each slot holding a real key. */
  compressedSlotPadding(keyPadding: number, N: number, s: number, first: number, real: number): void;
  /** Rows [rowStart, rowEnd) of one head's attention over the packed slots (causal: complete slots only). */
  compressedRows(
    q: number, out: number, Nq: number, Nk: number, D: number, Dv: number, s: number, first: number,
    scale: number, causal: number, pack: number, tiles: number, rowStart: number, rowEnd: number,
  ): void;
}

/** A learned slot compression: a PyTorch Conv1d with kernel size and stride `factor`. */
export interface CompressedConv {
  /**
   * `[Dx, Dx, s]` (PyTorch `[out, in, kernel]`) shared by all heads, or
   * `[H|1, Dx, Dx, s]` per head — a Conv1d with `groups = H` over the model
   * dimension, its `[H * Dx, Dx, s]` weight reshaped. Dx is D for `convK`
   * and Dv for `convV`; s is `factor`.
   */
  weight: Tensor;
  /** `[Dx]` or `[H|1, Dx]`; default no bias. */
  bias?: Tensor;
}

/** Options of `attn.compressed(q, k, v, options)`. */
export interface CompressedOptions extends CommonOptions {
  /**
   * Slot length s (integer >= 1): keys and values are cut into
   * `ceil(Nk / s)` slots of s positions, the last possibly shorter (Nk or
   * more: one slot of every key).
   */
  factor: number;
  /**
   * Pools each key slot with this strided convolution (padded keys and the
   * right padding up to a multiple of s count as zeros). Without it a key
   * slot is the mean of its real (not padded) keys. Given alone, without
   * `convV`, the values are still mean-pooled.
   */
  convK?: CompressedConv;
  /** The same for the values (Dv features); without it values are mean-pooled, whatever `convK` is. */
  convV?: CompressedConv;
  /** `[H|1, D]` (or `[D]`): a learned key for a null slot placed first and always visible. Requires `nullValue`. */
  nullKey?: Tensor;
  /** `[H|1, Dv]` (or `[Dv]`): the null slot's value. Requires `nullKey`. */
  nullValue?: Tensor;
  /**
   * A query at position `p = i + (Nk - Nq)` sees slot m only when the slot
   * is complete, `min((m + 1) s, Nk) - 1 <= p`; the null slot is always visible.
   */
  causal?: boolean;
  /** `[B, Nk]`, 1 = real key. Padded positions leave every slot; a slot with no real key is hidden. */
  keyPadding?: Uint8Array;
}

/** Parsed `compressed` options. */
export interface CompressedParsed extends Parsed, CompressedMath {
  /** S, the number of slots: `ceil(Nk / s)`, plus 1 with the null slot (the last axis of `weights()`). */
  readonly slots: number;
}

function given(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/**
 * Dv: from v, or, for `weights()` (no v), from the value-side options
 * (`nullValue`, `convV.weight`), which then only need to agree among themselves.
 */
function valueFeatures(inputs: Inputs, options: Options, D: number): number {
  if (inputs.v) return inputs.v.D;
  const field = (value: unknown, key: string): unknown =>
    value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  // read as tensors first, so that bad dims are blamed on the tensor that has them
  const last = (tensor: unknown, name: string, fromEnd: number): number | undefined => {
    if (!given(tensor)) return undefined;
    const { dims } = asTensor(tensor, name);
    return dims.length >= fromEnd ? dims[dims.length - fromEnd] : undefined;
  };
  return last(options.nullValue, 'options.nullValue', 1) ?? last(field(options.convV, 'weight'), 'options.convV.weight', 2) ?? D;
}

function parseConv(value: unknown, name: string, H: number, features: number, featureName: string, s: number): SlotConv | null {
  if (!given(value)) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${name}: expected { weight, bias? }, received ${describe(value)}`);
  }
  rejectUnknown(value as Options, ['weight', 'bias'], 'a convolution', name);
  const { weight, bias } = value as { weight?: unknown; bias?: unknown };
  if (!given(weight)) throw new TypeError(`${name}.weight: required option is missing (a Conv1d weight [H|1, ${featureName}, ${featureName}, s])`);
  return {
    weight: headParam(weight, `${name}.weight`, H, [features, features, s], `${featureName}, ${featureName}, options.factor`),
    bias: given(bias) ? headParam(bias, `${name}.bias`, H, [features], featureName) : null,
  };
}

export const compressed: Variant<CompressedParsed> = {
  name: 'compressed',
  inputs: { q: 'required', k: 'required' },
  options: declareOptions<CompressedOptions>()({
    ...commonOptions,
    factor: { type: '`number`', doc: 'slot length s: `ceil(Nk / s)` slots' },
    convK: { type: '`{ weight, bias? }`', doc: 'strided Conv1d pooling the key slots (PyTorch layout `[D, D, s]` or `[H|1, D, D, s]`); default the mean' },
    convV: { type: '`{ weight, bias? }`', doc: 'the same for the values (Dv features)' },
    nullKey: { type: '`Tensor`', doc: '`[H|1, D]`: a learned key of a null slot, always visible (with `nullValue`)' },
    nullValue: { type: '`Tensor`', doc: '`[H|1, Dv]`: the null slot\'s value (with `nullKey`)' },
  }),
  parse(inputs, options) {
    const { B, H, Hkv, Nq, Nk, D } = qkvProblem(inputs);
    const Dv = valueFeatures(inputs, options, D);
    const problem = { B, H, Hkv, Nq, Nk, D, Dv };
    const common = parseCommon(options, D, B, Nk);
    const factor = requiredNumber(options, 'factor', { integer: true, min: 1 });
    const convK = parseConv(options.convK, 'options.convK', H, D, 'D', factor);
    const convV = parseConv(options.convV, 'options.convV', H, Dv, 'Dv', factor);
    // the null slot needs both halves: a key to score it and a value to return
    if (given(options.nullKey) !== given(options.nullValue)) {
      const [missing, present] = given(options.nullKey) ? ['nullValue', 'nullKey'] : ['nullKey', 'nullValue'];
      throw new TypeError(`options.${missing}: required when options.${present} is given (the null slot needs a key and a value), received ${describe(options[missing])}`);
    }
    const nullKey = given(options.nullKey) ? headParam(options.nullKey, 'options.nullKey', H, [D], 'D') : null;
    const nullValue = given(options.nullValue) ? headParam(options.nullValue, 'options.nullValue', H, [Dv], 'Dv') : null;
    // mean pooling: a slot of Nk or more positions holds them all, as s = Nk does (a Conv1d's taps fix s)
    const s = convK || convV ? factor : Math.min(factor, Math.max(1, Nk));
    const slots = slotCount(Nk, s) + (nullKey ? 1 : 0);
    return { problem, ...common, factor: s, convK, convV, nullKey, nullValue, slots };
  },
  reference({ q, k, v }, p) {
    return compressedAttention(q!, k!, v!, p);
  },
  weights({ q, k }, p) {
    const { B, H, Nq } = p.problem;
    return { data: compressedWeights(q!, k!, p), dims: [B, H, Nq, p.slots] };
  },
  plan(runtime, { q, k, v }, p) {
    return compressedPlan(runtime, q!, k!, v!, p);
  },
  kernel(runtime, { q, k, v }, p) {
    return runtime.execute(compressedPlan(runtime, q!, k!, v!, p));
  },
};

/** Heads of a parameter: 1 when broadcast (headStride 0), else H. */
const headsOf = (param: { headStride: number }, H: number) => (param.headStride === 0 ? 1 : H);

/**
 * PyTorch Conv1d weights `[heads][Dx][Dx][s]` (`[o][c][t]`) laid out as the
 * kernel's GEMMs read them, `[heads][s][Dx][Dx]` (`[t][c][o]`): done once per
 * call, before the jobs.
 */
export function convLayout(w: Float32Array, heads: number, Dx: number, s: number): Float32Array {
  const per = Dx * Dx * s;
  const wt = new Float32Array(heads * per);
  for (let h = 0; h < heads; h++) {
    const base = h * per;
    for (let o = 0; o < Dx; o++) {
      for (let c = 0; c < Dx; c++) {
        for (let t = 0; t < s; t++) wt[base + (t * Dx + c) * Dx + o] = w[base + (o * Dx + c) * s + t];
      }
    }
  }
  return wt;
}

/**
 * The SIMD kernel as a plan: per batch and head, the slot rows of k and v
 * (mean, or Conv1d as one GEMM per tap; the null slot first), packed with the
 * slots that hold no real key hidden, then the flash engine over the slots.
 * With mean pooling the slots are cheap (N (D + Dv) against a row's
 * S (D + Dv)): a head is cut into row jobs that each make its slots again;
 * with a convolution (N (D^2 + Dv^2)) a job is a whole head.
 */
function compressedPlan(runtime: Runtime, q: Heads, k: Heads, v: Heads, p: CompressedParsed): JobPlan {
  const { B, H, Nq, Nk, D, Dv } = p.problem;
  const { factor: s, convK, convV, nullKey, nullValue, slots: S } = p;
  const x = runtime.exports as unknown as CompressedKernels;
  const pad = p.keyPadding;
  const first = nullKey ? 1 : 0;
  const outLength = B * H * Nq * Dv;
  const convParts = (conv: SlotConv | null, Dx: number) =>
    conv ? [convLayout(conv.weight.data, headsOf(conv.weight, H), Dx, s), conv.bias ? conv.bias.data : 0] : [0, 0];
  // each thread's own buffers
  const [slotK, slotV, pack, tiles, masked, real] = [0, 1, 2, 3, 4, 5].map(scratch);
  return {
    what: 'compressed',
    parts: [q.data, k.data, v.data, outLength * 4, ...convParts(convK, D), ...convParts(convV, Dv), nullKey ? nullKey.data : 0, nullValue ? nullValue.data : 0, pad ?? 0],
    output: 3,
    length: outLength,
    scratch: [S * D * 4, S * Dv * 4, x.packBytes(S, D, Dv), x.groupBytes(D, Dv), pad && (convK || convV) ? Nk * Math.max(D, Dv) * 4 : 0, pad ? S : 0],
    jobs: ([qp, kp, vp, out, wtK, biasK, wtV, biasV, nullK, nullV, padp]) => {
      // pointers of head h's parameters (0 where not given)
      const at = (base: number, param: { headStride: number } | null, h: number) => (param ? base + h * param.headStride * 4 : 0);
      const ranges: [number, number][] = convK || convV ? [[0, Nq]] : rowJobs(Nq, S, D + Dv);
      return Array.from({ length: B * H }, (_, bh) => {
        const b = Math.floor(bh / H);
        const h = bh % H;
        const padRow = pad ? padp + b * Nk : 0;
        const prepare: KernelCall[] = [
          // the kv head that query head h reads (grouped-query attention: shared, in place), with h's parameters
          ['compressedSlots', kp + headOffset(k, b, h, H) * 4, Nk, D, s, padRow, at(wtK, convK?.weight ?? null, h), at(biasK, convK?.bias ?? null, h), at(nullK, nullKey, h), masked, slotK],
          ['compressedSlots', vp + headOffset(v, b, h, H) * 4, Nk, Dv, s, padRow, at(wtV, convV?.weight ?? null, h), at(biasV, convV?.bias ?? null, h), at(nullV, nullValue, h), masked, slotV],
        ];
        if (pad) prepare.push(['compressedSlotPadding', padRow, Nk, s, first, real]);
        prepare.push(['packHead', slotK, slotV, S, D, Dv, D, Dv, pad ? real : 0, pack]);
        const qHead = qp + bh * Nq * D * 4;
        const outHead = out + bh * Nq * Dv * 4;
        return ranges.map(([from, to]): Job => {
          const job = [...prepare];
          // the same row chunks as one call per chunk of the whole head
          forRowChunks(Nq, S, D + Dv, (start, end) => {
            if (start >= from && end <= to) {
              job.push(['compressedRows', qHead, outHead, Nq, Nk, D, Dv, s, first, p.scale, p.causal ? 1 : 0, pack, tiles, start, end]);
            }
          });
          return job;
        });
      }).flat();
    },
  };
}
