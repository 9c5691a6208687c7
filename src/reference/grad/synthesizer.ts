/**
 * Float64 backward pass of `synthesizer` (forward: ../synthesizer.ts):
 * `out = softmax(B) v` with parameter logits. Per row, `dv_j += P_j g` and
 * `dB_j = P_j (g . v_j - g . out)`, then into the logits' form:
 *
 * - random: `dlogits = dB`;
 * - factorized `B = a b^T`: `da_i += sum_j dB_ij b_j`, `db_j += sum_i dB_ij a_i`;
 * - dense `B_i = (relu(x_i w1 + b1) w2 + b2)[0 .. Nk)`: `db2_j += dB_ij` and
 *   `dw2_uj += hidden_u dB_ij` (j < Nk), `dhidden = w2 dB`, through the relu
 *   (derivative 0 at 0, as autograd takes it) to `db1`, `dw1 += x_i^T dpre`,
 *   and `dx_i += w1 dpre`, summed over heads.
 *
 * Parameters shared by heads (head axis 1) sum their heads' gradients.
 */
import { commonVisible } from '../softmax.js';
import { logitRow, softmaxVisible, type SynthesizerLogits, type SynthesizerMath } from '../synthesizer.js';
import type { Heads } from '../../tensor.js';
import type { Problem } from '../../variants/variant.js';
import { paramGradient } from './param.js';

/** Gradients of the logits' parameters, by form; each per-head one `[1|H, ...]` as its parameter. */
export type SynthesizerParamGradients =
  | { readonly kind: 'random'; readonly logits: Float64Array }
  | { readonly kind: 'factorized'; readonly a: Float64Array; readonly b: Float64Array }
  | { readonly kind: 'dense'; readonly x: Float64Array; readonly w1: Float64Array; readonly b1: Float64Array; readonly w2: Float64Array; readonly b2: Float64Array };

export interface SynthesizerGradients {
  readonly v: Float64Array;
  readonly params: SynthesizerParamGradients;
}

function zeroGradients(form: SynthesizerLogits, problem: Problem): SynthesizerParamGradients {
  const { B, H, Nq, Nk } = problem;
  switch (form.kind) {
    case 'random':
      return { kind: 'random', logits: paramGradient(form.logits, H, Nq * Nk) };
    case 'factorized':
      return { kind: 'factorized', a: paramGradient(form.a, H, Nq * form.R), b: paramGradient(form.b, H, Nk * form.R) };
    case 'dense': {
      const { Dm, Dh, Nmax } = form;
      return {
        kind: 'dense',
        x: new Float64Array(B * Nq * Dm),
        w1: paramGradient(form.w1, H, Dm * Dh),
        b1: paramGradient(form.b1, H, Dh),
        w2: paramGradient(form.w2, H, Dh * Nmax),
        b2: paramGradient(form.b2, H, Nmax),
      };
    }
  }
}

/** Takes row i's logit gradient `dLogits` (Nk values) into the parameters of the form. */
function logitsBackward(form: SynthesizerLogits, grads: SynthesizerParamGradients, b: number, h: number, i: number, Nq: number, Nk: number, dLogits: Float64Array): void {
  if (form.kind === 'random' && grads.kind === 'random') {
    const off = h * form.logits.headStride + i * Nk;
    for (let j = 0; j < Nk; j++) grads.logits[off + j] += dLogits[j];
  } else if (form.kind === 'factorized' && grads.kind === 'factorized') {
    const { a, b: bParam, R } = form;
    const aOff = h * a.headStride + i * R;
    for (let j = 0; j < Nk; j++) {
      const bOff = h * bParam.headStride + j * R;
      for (let r = 0; r < R; r++) {
        grads.a[aOff + r] += dLogits[j] * bParam.data[bOff + r];
        grads.b[bOff + r] += dLogits[j] * a.data[aOff + r];
      }
    }
  } else if (form.kind === 'dense' && grads.kind === 'dense') {
    const { x, w1, b1, w2, b2, Dm, Dh, Nmax } = form;
    const xOff = (b * Nq + i) * Dm;
    const [w1Off, b1Off, w2Off, b2Off] = [w1, b1, w2, b2].map((p) => h * p.headStride);
    // forward again: the hidden layer of token i
    const hidden = new Float64Array(Dh);
    for (let u = 0; u < Dh; u++) {
      let sum = b1.data[b1Off + u];
      for (let c = 0; c < Dm; c++) sum += x[xOff + c] * w1.data[w1Off + c * Dh + u];
      hidden[u] = Math.max(sum, 0);
    }
    // the output layer's first Nk logits
    const dPre = new Float64Array(Dh);
    for (let j = 0; j < Nk; j++) {
      grads.b2[b2Off + j] += dLogits[j];
      for (let u = 0; u < Dh; u++) {
        grads.w2[w2Off + u * Nmax + j] += hidden[u] * dLogits[j];
        dPre[u] += w2.data[w2Off + u * Nmax + j] * dLogits[j];
      }
    }
    // through the relu: no gradient where it was not positive
    for (let u = 0; u < Dh; u++) {
      if (hidden[u] <= 0) continue;
      grads.b1[b1Off + u] += dPre[u];
      for (let c = 0; c < Dm; c++) {
        grads.w1[w1Off + c * Dh + u] += x[xOff + c] * dPre[u];
        grads.x[xOff + c] += w1.data[w1Off + c * Dh + u] * dPre[u];
      }
    }
  }
}

export function synthesizerBackward(v: Heads, math: SynthesizerMath, problem: Problem, gradOutput: Float32Array): SynthesizerGradients {
  const { B, H, Nq, Nk } = problem;
  const Dv = v.D;
  const visible = commonVisible(math, Nq, Nk);
  const dv = new Float64Array(v.data.length);
  const grads = zeroGradients(math.logits, problem);
  const row = new Float64Array(Nk);
  const dLogits = new Float64Array(Nk);
  const out = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        logitRow(math.logits, b, h, i, Nq, Nk, row);
        softmaxVisible(row, visible, b, h, i);
        const gOff = ((b * H + h) * Nq + i) * Dv;
        out.fill(0);
        for (let j = 0; j < Nk; j++) {
          for (let e = 0; e < Dv; e++) out[e] += row[j] * v.data[((b * H + h) * Nk + j) * Dv + e];
        }
        let gOut = 0;
        for (let e = 0; e < Dv; e++) gOut += gradOutput[gOff + e] * out[e];
        for (let j = 0; j < Nk; j++) {
          const vOff = ((b * H + h) * Nk + j) * Dv;
          let gv = 0;
          for (let e = 0; e < Dv; e++) {
            gv += gradOutput[gOff + e] * v.data[vOff + e];
            dv[vOff + e] += row[j] * gradOutput[gOff + e];
          }
          dLogits[j] = row[j] * (gv - gOut);
        }
        logitsBackward(math.logits, grads, b, h, i, Nq, Nk, dLogits);
      }
    }
  }
  return { v: dv, params: grads };
}
