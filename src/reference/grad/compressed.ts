/**
 * Float64 backward pass of `compressed` (forward: ../compressed.ts). The
 * softmax backward over the slots gives the gradient of every slot row; each
 * is then taken back through the pooling that made it:
 *
 * - mean: each real row of the slot gets `dslot / count`;
 * - Conv1d `slot_o = bias_o + sum_t sum_c W[o, c, t] x[m s + t, c]`:
 *   `dW[o, c, t] += dslot_o x[m s + t, c]`, `dbias_o += dslot_o`,
 *   `dx[m s + t, c] += sum_o W[o, c, t] dslot_o` (padded rows and the right
 *   padding take no part);
 * - the null row: `dnull += dslot`.
 *
 * Parameters shared by heads (head axis 1) sum their heads' gradients.
 */
import { headOffset, type Heads } from '../../tensor.js';
import type { Param } from '../../validate.js';
import { compressSequence, isReal, slotCount, slotVisible, type CompressedMath, type SlotConv } from '../compressed.js';
import { paramGradient } from './param.js';
import { softmaxBackward } from './softmax.js';

/** Gradients of a Conv1d's weight `[1|H, Dx, Dx, s]` and bias `[1|H, Dx]` (null without one). */
export interface ConvGradients {
  readonly weight: Float64Array;
  readonly bias: Float64Array | null;
}

export interface CompressedGradients {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly v: Float64Array;
  readonly convK: ConvGradients | null;
  readonly convV: ConvGradients | null;
  /** `[1|H, D]` and `[1|H, Dv]`, or null without a null slot. */
  readonly nullKey: Float64Array | null;
  readonly nullValue: Float64Array | null;
}

/**
 * Takes the slot gradients `dSlots` (`[B, H, S, Dx]`, null row first when
 * `nullRow`) back to x (`dx`, the kv head each query head reads) and to the
 * pooling's parameters.
 */
function poolBackward(x: Heads, H: number, math: CompressedMath, conv: SlotConv | null, nullRow: Param | null, dSlots: Float64Array, dx: Float64Array): { conv: ConvGradients | null; nullRow: Float64Array | null } {
  const { B, N, D } = x;
  const s = math.factor;
  const slots = slotCount(N, s);
  const first = nullRow ? 1 : 0;
  const S = first + slots;
  const dConv = conv ? { weight: paramGradient(conv.weight, H, D * D * s), bias: conv.bias ? paramGradient(conv.bias, H, D) : null } : null;
  const dNull = nullRow ? paramGradient(nullRow, H, D) : null;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * S;
      if (dNull) for (let d = 0; d < D; d++) dNull[h * nullRow!.headStride + d] += dSlots[base * D + d];
      const xBase = headOffset(x, b, h, H);
      for (let m = 0; m < slots; m++) {
        const gOff = (base + first + m) * D;
        const rows: number[] = [];
        for (let j = m * s; j < Math.min((m + 1) * s, N); j++) if (isReal(math.keyPadding, b, N, j)) rows.push(j);
        if (!conv) {
          for (const j of rows) for (let d = 0; d < D; d++) dx[xBase + j * D + d] += dSlots[gOff + d] / rows.length;
          continue;
        }
        const wBase = h * conv.weight.headStride;
        if (dConv!.bias) for (let o = 0; o < D; o++) dConv!.bias[h * conv.bias!.headStride + o] += dSlots[gOff + o];
        for (const j of rows) {
          const t = j - m * s;
          for (let o = 0; o < D; o++) {
            const g = dSlots[gOff + o];
            for (let c = 0; c < D; c++) {
              const w = wBase + (o * D + c) * s + t;
              dConv!.weight[w] += g * x.data[xBase + j * D + c];
              dx[xBase + j * D + c] += conv.weight.data[w] * g;
            }
          }
        }
      }
    }
  }
  return { conv: dConv, nullRow: dNull };
}

export function compressedBackward(q: Heads, k: Heads, v: Heads, math: CompressedMath, gradOutput: Float32Array): CompressedGradients {
  const keySlots = compressSequence(k, q.H, math, math.convK, math.nullKey);
  const valueSlots = compressSequence(v, q.H, math, math.convV, math.nullValue);
  const g = softmaxBackward(q, keySlots, valueSlots, math, slotVisible(math, q.B, q.N, k.N), gradOutput);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const keys = poolBackward(k, q.H, math, math.convK, math.nullKey, g.k, dk);
  const values = poolBackward(v, q.H, math, math.convV, math.nullValue, g.v, dv);
  return { q: g.q, k: dk, v: dv, convK: keys.conv, convV: values.conv, nullKey: keys.nullRow, nullValue: values.nullRow };
}
