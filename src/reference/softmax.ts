/**
 * Plain-JS float64 softmax attention over a visibility rule: the reference
 * of `full` and of every pattern-based variant. O(Nq * Nk * D), readable
 * rather than fast; it is the oracle the kernels are tested against.
 */
import type { Heads } from '../tensor.js';
import type { Common } from '../validate.js';

/** Is key j visible to query i of batch b, head h? */
export type Visible = (b: number, h: number, i: number, j: number) => boolean;

/** The rule of the common options: causal (bottom-right aligned) and key padding. */
export function commonVisible(common: Common, Nq: number, Nk: number): Visible {
  const { causal, keyPadding } = common;
  const shift = Nk - Nq;
  return (b, _h, i, j) => (!causal || j <= i + shift) && (!keyPadding || keyPadding[b * Nk + j] !== 0);
}

/** Row i of P = softmax over visible j of `scale * q_i . k_j`; all zeros when nothing is visible. */
function probabilities(q: Heads, k: Heads, scale: number, visible: Visible, b: number, h: number, i: number, out: Float64Array): void {
  const { D } = q;
  const qOff = ((b * q.H + h) * q.N + i) * D;
  const kBase = (b * k.H + h) * k.N;
  let max = -Infinity;
  for (let j = 0; j < k.N; j++) {
    if (!visible(b, h, i, j)) {
      out[j] = -Infinity;
      continue;
    }
    let dot = 0;
    const kOff = (kBase + j) * D;
    for (let d = 0; d < D; d++) dot += q.data[qOff + d] * k.data[kOff + d];
    out[j] = scale * dot;
    if (out[j] > max) max = out[j];
  }
  if (max === -Infinity) {
    out.fill(0);
    return;
  }
  let sum = 0;
  for (let j = 0; j < k.N; j++) {
    out[j] = out[j] === -Infinity ? 0 : Math.exp(out[j] - max);
    sum += out[j];
  }
  for (let j = 0; j < k.N; j++) out[j] /= sum;
}

/** `out = P v` with `P` the masked softmax: `[B, H, Nq, Dv]`. */
export function softmaxAttention(q: Heads, k: Heads, v: Heads, scale: number, visible: Visible): Float32Array {
  const { B, H, N: Nq } = q;
  const { N: Nk } = k;
  const Dv = v.D;
  const out = new Float32Array(B * H * Nq * Dv);
  const p = new Float64Array(Nk);
  const acc = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const vBase = (b * H + h) * Nk;
      for (let i = 0; i < Nq; i++) {
        probabilities(q, k, scale, visible, b, h, i, p);
        acc.fill(0);
        for (let j = 0; j < Nk; j++) {
          if (p[j] === 0) continue;
          const vOff = (vBase + j) * Dv;
          for (let d = 0; d < Dv; d++) acc[d] += p[j] * v.data[vOff + d];
        }
        out.set(acc, ((b * H + h) * Nq + i) * Dv);
      }
    }
  }
  return out;
}

/** The dense probability matrix `P: [B, H, Nq, Nk]`. */
export function softmaxWeights(q: Heads, k: Heads, scale: number, visible: Visible): Float32Array {
  const { B, H, N: Nq } = q;
  const Nk = k.N;
  const out = new Float32Array(B * H * Nq * Nk);
  const p = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        probabilities(q, k, scale, visible, b, h, i, p);
        out.set(p, ((b * H + h) * Nq + i) * Nk);
      }
    }
  }
  return out;
}
