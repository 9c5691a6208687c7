/**
 * Plain-JS float64 reference of `synthesizer` — Synthesizer (Tay et al.
 * 2021, "Synthesizer: Rethinking Self-Attention for Transformer Models"):
 * `out = softmax(B) v` where the logits B are not computed from q and k but
 * are parameters (random), a low-rank product of parameters (factorized),
 * or a two-layer network of each token alone (dense).
 */
import { commonVisible, type Visible } from './softmax.js';
import type { Heads } from '../tensor.js';
import type { Common, Param } from '../validate.js';
import type { Problem } from '../variants/variant.js';

/** The logits of one problem, in one of the Synthesizer's three forms. */
export type SynthesizerLogits =
  /** Random Synthesizer: `B = logits`, `[Nq, Nk]` per head. */
  | { readonly kind: 'random'; readonly logits: Param }
  /** Factorized random Synthesizer: `B = a · b^T`, a `[Nq, R]` and b `[Nk, R]` per head. */
  | { readonly kind: 'factorized'; readonly a: Param; readonly b: Param; readonly R: number }
  /**
   * Dense Synthesizer: `B_i = (relu(x_i w1 + b1) w2 + b2)[0 .. Nk)` with x
   * `[B, Nq, Dm]`, and per head w1 `[Dm, Dh]`, b1 `[Dh]`, w2 `[Dh, Nmax]`, b2 `[Nmax]`.
   */
  | {
      readonly kind: 'dense';
      readonly x: Float32Array;
      readonly w1: Param;
      readonly b1: Param;
      readonly w2: Param;
      readonly b2: Param;
      readonly Dm: number;
      readonly Dh: number;
      readonly Nmax: number;
    };

/** What the Synthesizer math needs: the logits and the common options (`scale` does not apply). */
export interface SynthesizerMath extends Common {
  readonly logits: SynthesizerLogits;
}

/** Row i of the logits B for batch b, head h, over the Nk keys. */
export function logitRow(form: SynthesizerLogits, b: number, h: number, i: number, Nq: number, Nk: number, row: Float64Array): void {
  switch (form.kind) {
    case 'random': {
      const off = h * form.logits.headStride + i * Nk;
      for (let j = 0; j < Nk; j++) row[j] = form.logits.data[off + j];
      return;
    }
    case 'factorized': {
      const { a, b: bParam, R } = form;
      const aOff = h * a.headStride + i * R;
      for (let j = 0; j < Nk; j++) {
        const bOff = h * bParam.headStride + j * R;
        let dot = 0;
        for (let r = 0; r < R; r++) dot += a.data[aOff + r] * bParam.data[bOff + r];
        row[j] = dot;
      }
      return;
    }
    case 'dense': {
      const { x, w1, b1, w2, b2, Dm, Dh, Nmax } = form;
      const xOff = (b * Nq + i) * Dm;
      // hidden layer of token i alone: relu(x_i w1 + b1)
      const hidden = new Float64Array(Dh);
      for (let u = 0; u < Dh; u++) {
        let sum = b1.data[h * b1.headStride + u];
        for (let c = 0; c < Dm; c++) sum += x[xOff + c] * w1.data[h * w1.headStride + c * Dh + u];
        hidden[u] = Math.max(sum, 0);
      }
      // output layer, keeping the first Nk of its Nmax logits
      for (let j = 0; j < Nk; j++) {
        let sum = b2.data[h * b2.headStride + j];
        for (let u = 0; u < Dh; u++) sum += hidden[u] * w2.data[h * w2.headStride + u * Nmax + j];
        row[j] = sum;
      }
      return;
    }
  }
}

/** Softmax of row i over the keys `visible` leaves, in place; all zeros when none is visible. */
export function softmaxVisible(row: Float64Array, visible: Visible, b: number, h: number, i: number): void {
  let max = -Infinity;
  for (let j = 0; j < row.length; j++) {
    if (!visible(b, h, i, j)) row[j] = -Infinity;
    else if (row[j] > max) max = row[j];
  }
  if (max === -Infinity) {
    row.fill(0);
    return;
  }
  let sum = 0;
  for (let j = 0; j < row.length; j++) {
    row[j] = row[j] === -Infinity ? 0 : Math.exp(row[j] - max);
    sum += row[j];
  }
  for (let j = 0; j < row.length; j++) row[j] /= sum;
}

/** Calls `use(b, h, i, P_i)` with every row of `P = softmax(B)` under causal and keyPadding. */
function forEachRow(math: SynthesizerMath, problem: Problem, use: (b: number, h: number, i: number, row: Float64Array) => void): void {
  const { B, H, Nq, Nk } = problem;
  const visible = commonVisible(math, Nq, Nk);
  const row = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        logitRow(math.logits, b, h, i, Nq, Nk, row);
        softmaxVisible(row, visible, b, h, i);
        use(b, h, i, row);
      }
    }
  }
}

/** `out = softmax(B) v`: `[B, H, Nq, Dv]`. */
export function synthesizerAttention(v: Heads, math: SynthesizerMath, problem: Problem): Float32Array {
  const { H, Nq, Nk } = problem;
  const Dv = v.D;
  const out = new Float32Array(problem.B * H * Nq * Dv);
  const acc = new Float64Array(Dv);
  forEachRow(math, problem, (b, h, i, row) => {
    acc.fill(0);
    for (let j = 0; j < Nk; j++) {
      if (row[j] === 0) continue;
      const vOff = ((b * H + h) * Nk + j) * Dv;
      for (let d = 0; d < Dv; d++) acc[d] += row[j] * v.data[vOff + d];
    }
    out.set(acc, ((b * H + h) * Nq + i) * Dv);
  });
  return out;
}

/** The dense probability matrix `P = softmax(B)`: `[B, H, Nq, Nk]`. */
export function synthesizerWeights(math: SynthesizerMath, problem: Problem): Float32Array {
  const { B, H, Nq, Nk } = problem;
  const out = new Float32Array(B * H * Nq * Nk);
  forEachRow(math, problem, (b, h, i, row) => out.set(row, ((b * H + h) * Nq + i) * Nk));
  return out;
}
