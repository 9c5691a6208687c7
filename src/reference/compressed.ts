/**
 * Plain-JS float64 reference of `compressed` — memory-compressed attention
 * (Liu et al. 2018, "Generating Wikipedia by Summarizing Long Sequences").
 * Keys and values are cut into `ceil(Nk / s)` slots of s positions, each
 * slot is pooled to one row (a mean, or a strided convolution), and queries
 * attend the slots with softmax attention: O(Nq * Nk / s * D).
 */
import { softmaxAttention, softmaxWeights, type Visible } from './softmax.js';
import { headOffset, type Heads } from '../tensor.js';
import type { Common, Param } from '../validate.js';

/** A strided Conv1d in PyTorch layout: weight `[Dx, Dx, s]` per head (`[out, in, tap]`), bias `[Dx]` per head. */
export interface SlotConv {
  readonly weight: Param;
  readonly bias: Param | null;
}

/** What the compressed-attention math needs. */
export interface CompressedMath extends Common {
  /** Slot length s. */
  readonly factor: number;
  /** Pools key slots when given, else keys are mean-pooled. */
  readonly convK: SlotConv | null;
  /** Pools value slots when given, else values are mean-pooled. */
  readonly convV: SlotConv | null;
  /** The learned null key `[D]` per head (with `nullValue`), or null. */
  readonly nullKey: Param | null;
  /** The learned null value `[Dv]` per head (with `nullKey`), or null. */
  readonly nullValue: Param | null;
}

/** Number of slots the Nk keys are cut into (the last may be shorter). */
export function slotCount(Nk: number, factor: number): number {
  return Math.ceil(Nk / factor);
}

export function isReal(keyPadding: Uint8Array | null, b: number, Nk: number, j: number): boolean {
  return keyPadding === null || keyPadding[b * Nk + j] !== 0;
}

/** Mean of the real rows of slot m of the head at `base` into `acc` (zeros when it has none: such a slot is hidden anyway). */
function meanSlot(x: Heads, base: number, b: number, m: number, s: number, keyPadding: Uint8Array | null, acc: Float64Array): void {
  const { N, D } = x;
  acc.fill(0);
  let count = 0;
  for (let j = m * s; j < Math.min((m + 1) * s, N); j++) {
    if (!isReal(keyPadding, b, N, j)) continue;
    const off = base + j * D;
    for (let d = 0; d < D; d++) acc[d] += x.data[off + d];
    count++;
  }
  if (count > 0) for (let d = 0; d < D; d++) acc[d] /= count;
}

/**
 * Output m of a Conv1d with kernel size and stride s (PyTorch cross-correlation)
 * over the head at `base`, with query head h's weights:
 * `acc[o] = bias[o] + sum_t sum_c weight[o, c, t] * x[m s + t, c]`, where padded
 * rows and the right padding past N count as zeros.
 */
function convolveSlot(x: Heads, base: number, b: number, h: number, m: number, s: number, keyPadding: Uint8Array | null, conv: SlotConv, acc: Float64Array): void {
  const { N, D } = x;
  const weight = conv.weight.data;
  const wBase = h * conv.weight.headStride;
  for (let o = 0; o < D; o++) acc[o] = conv.bias ? conv.bias.data[h * conv.bias.headStride + o] : 0;
  for (let t = 0; t < s; t++) {
    const j = m * s + t;
    if (j >= N || !isReal(keyPadding, b, N, j)) continue;
    const off = base + j * D;
    for (let o = 0; o < D; o++) {
      let sum = 0;
      for (let c = 0; c < D; c++) sum += weight[wBase + (o * D + c) * s + t] * x.data[off + c];
      acc[o] += sum;
    }
  }
}

/**
 * The slot rows of x for each of the H query heads, `[B, H, S, Dx]` (query
 * head h pools the kv head it reads with its own parameters): the null row
 * first when given, then one pooled row per slot of s positions.
 */
export function compressSequence(x: Heads, H: number, math: CompressedMath, conv: SlotConv | null, nullRow: Param | null): Heads {
  const { B, N, D } = x;
  const s = math.factor;
  const slots = slotCount(N, s);
  const first = nullRow ? 1 : 0;
  const S = first + slots;
  const out = new Float32Array(B * H * S * D);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * S;
      if (nullRow) out.set(nullRow.data.subarray(h * nullRow.headStride, h * nullRow.headStride + D), base * D);
      const xBase = headOffset(x, b, h, H);
      for (let m = 0; m < slots; m++) {
        if (conv) convolveSlot(x, xBase, b, h, m, s, math.keyPadding, conv, acc);
        else meanSlot(x, xBase, b, m, s, math.keyPadding, acc);
        out.set(acc, (base + first + m) * D);
      }
    }
  }
  return { data: out, B, H, N: S, D, rank: 4, layout: 'bhnd' };
}

/**
 * Which slots query i sees: the null slot always; slot m only when it holds
 * a real key and, with `causal`, only once complete (its last position
 * `min((m + 1) s, Nk) - 1` is at most the query's position `i + Nk - Nq`).
 */
export function slotVisible(math: CompressedMath, B: number, Nq: number, Nk: number): Visible {
  const s = math.factor;
  const slots = slotCount(Nk, s);
  const first = math.nullKey ? 1 : 0;
  const hasRealKey = new Uint8Array(B * slots);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < Nk; j++) if (isReal(math.keyPadding, b, Nk, j)) hasRealKey[b * slots + Math.floor(j / s)] = 1;
  }
  return (b, _h, i, slot) => {
    if (slot < first) return true;
    const m = slot - first;
    const last = Math.min((m + 1) * s, Nk) - 1;
    return hasRealKey[b * slots + m] === 1 && (!math.causal || last <= i + Nk - Nq);
  };
}

/** `out = softmax over visible slots of (scale · q K_slots^T) · V_slots`: `[B, H, Nq, Dv]`. */
export function compressedAttention(q: Heads, k: Heads, v: Heads, math: CompressedMath): Float32Array {
  // Liu et al.'s compression: pool every s keys (and values) into one slot
  const keySlots = compressSequence(k, q.H, math, math.convK, math.nullKey);
  const valueSlots = compressSequence(v, q.H, math, math.convV, math.nullValue);
  return softmaxAttention(q, keySlots, valueSlots, math, slotVisible(math, q.B, q.N, k.N));
}

/** The probabilities over slots (null slot first), `[B, H, Nq, S]`: the keys alone decide them. */
export function compressedWeights(q: Heads, k: Heads, math: CompressedMath): Float32Array {
  const keySlots = compressSequence(k, q.H, math, math.convK, math.nullKey);
  return softmaxWeights(q, keySlots, math, slotVisible(math, q.B, q.N, k.N));
}
