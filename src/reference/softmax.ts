/**
 * Plain-JS float64 softmax attention over a visibility rule: the reference
 * of `full` and of every pattern-based variant. O(Nq * Nk * D), readable
 * rather than fast; it is the oracle the kernels are tested against. Query
 * head h of q reads head `floor(h / (H / Hkv))` of k and v (grouped-query
 * attention, in place).
 */
import { rowStart, type BiasView, type MaskView } from '../model.js';
import { headOffset, type Heads } from '../tensor.js';
import type { Common } from '../validate.js';

/** Is key j visible to query i of batch b, head h? */
export type Visible = (b: number, h: number, i: number, j: number) => boolean;

/**
 * The rule of the common options: causal (bottom-right aligned), key
 * padding and, where the variant takes one, `mask`.
 */
export function commonVisible(common: Common & { readonly mask?: MaskView | null }, Nq: number, Nk: number): Visible {
  const { causal, keyPadding } = common;
  const mask = common.mask ?? null;
  const shift = Nk - Nq;
  return (b, h, i, j) =>
    (!causal || j <= i + shift) && (!keyPadding || keyPadding[b * Nk + j] !== 0) && (!mask || mask.data[rowStart(mask, b, h, i) + j * mask.strides[3]] !== 0);
}

/** How the logit of a visible pair is made: `softcap(scale * q_i . k_j) + bias_ij` (no cap, no bias where absent). */
export interface LogitRule {
  readonly scale: number;
  readonly softcap?: number | null;
  readonly bias?: BiasView | null;
}

/** Row i of the logits: `rule` on the visible keys, -Infinity on the others (and where the bias is -Infinity). */
function logitRow(q: Heads, k: Heads, rule: LogitRule, visible: Visible, b: number, h: number, i: number, out: Float64Array): void {
  const { D } = q;
  const qOff = ((b * q.H + h) * q.N + i) * D;
  const kBase = headOffset(k, b, h, q.H);
  const { scale, softcap = null, bias = null } = rule;
  const biasRow = bias ? rowStart(bias, b, h, i) : 0;
  for (let j = 0; j < k.N; j++) {
    if (!visible(b, h, i, j)) {
      out[j] = -Infinity;
      continue;
    }
    let dot = 0;
    const kOff = kBase + j * D;
    for (let d = 0; d < D; d++) dot += q.data[qOff + d] * k.data[kOff + d];
    let logit = scale * dot;
    // the cap comes before the bias, so that a -Infinity bias stays -Infinity
    if (softcap !== null) logit = softcap * Math.tanh(logit / softcap);
    if (bias) logit += bias.data[biasRow + j * bias.strides[3]];
    out[j] = logit;
  }
}

/** Row i of P = softmax over the visible j of its logits; all zeros when nothing is visible. */
function probabilities(q: Heads, k: Heads, rule: LogitRule, visible: Visible, b: number, h: number, i: number, out: Float64Array): void {
  logitRow(q, k, rule, visible, b, h, i, out);
  let max = -Infinity;
  for (let j = 0; j < k.N; j++) if (out[j] > max) max = out[j];
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
export function softmaxAttention(q: Heads, k: Heads, v: Heads, rule: LogitRule, visible: Visible): Float32Array {
  const { B, H, N: Nq } = q;
  const { N: Nk } = k;
  const Dv = v.D;
  const out = new Float32Array(B * H * Nq * Dv);
  const p = new Float64Array(Nk);
  const acc = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const vBase = headOffset(v, b, h, H);
      for (let i = 0; i < Nq; i++) {
        probabilities(q, k, rule, visible, b, h, i, p);
        acc.fill(0);
        for (let j = 0; j < Nk; j++) {
          if (p[j] === 0) continue;
          const vOff = vBase + j * Dv;
          for (let d = 0; d < Dv; d++) acc[d] += p[j] * v.data[vOff + d];
        }
        out.set(acc, ((b * H + h) * Nq + i) * Dv);
      }
    }
  }
  return out;
}

/** `[B, H, Nq, Nk]`, one row of `q` at a time written by `row`. */
function denseRows(q: Heads, k: Heads, row: (b: number, h: number, i: number, out: Float64Array) => void): Float32Array {
  const { B, H, N: Nq } = q;
  const Nk = k.N;
  const out = new Float32Array(B * H * Nq * Nk);
  const p = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        row(b, h, i, p);
        out.set(p, ((b * H + h) * Nq + i) * Nk);
      }
    }
  }
  return out;
}

/** The dense probability matrix `P: [B, H, Nq, Nk]`. */
export function softmaxWeights(q: Heads, k: Heads, rule: LogitRule, visible: Visible): Float32Array {
  return denseRows(q, k, (b, h, i, out) => probabilities(q, k, rule, visible, b, h, i, out));
}

/** The logits `[B, H, Nq, Nk]` the softmax takes: `-Infinity` at hidden pairs. */
export function softmaxLogits(q: Heads, k: Heads, rule: LogitRule, visible: Visible): Float32Array {
  return denseRows(q, k, (b, h, i, out) => logitRow(q, k, rule, visible, b, h, i, out));
}
