/**
 * Float64 backward pass of softmax attention over a visibility rule (the
 * forward is `softmaxAttention` in ../softmax.ts): the reference gradients of
 * `full`, the pattern family, and of the variants that end in softmax
 * attention over derived keys (linformer, compressed). Per query row, with
 * `P` the row's probabilities and `g` its output gradient:
 *
 *     dv_j += P_j g                       dP_j = g . v_j
 *     dl_j  = P_j (dP_j - g . out)        (the softmax's backward)
 *     ds_j  = dl_j (1 - tanh^2(s_j / c))  (softcap; ds_j = dl_j without)
 *     dq   += scale ds_j k_j              dk_j += scale ds_j q
 *     dbias_ij += dl_j                    (summed over broadcast axes)
 *
 * k and v gradients of grouped-query heads sum over the query heads of the group.
 */
import { rowStart, type BiasView } from '../../model.js';
import { headOffset, type Heads } from '../../tensor.js';
import type { LogitRule, Visible } from '../softmax.js';

/** Float64 gradients of the softmax attention inputs, in the inputs' own `'bhnd'` shapes. */
export interface SoftmaxGradients {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly v: Float64Array;
  /** The gradient of `rule.bias` in its broadcast dims `view.dims` (row-major), or null without a bias. */
  readonly bias: Float64Array | null;
}

/** Row-major strides of a broadcast view's own dims: where its gradient accumulates (broadcast axes sum). */
export function compactStrides(dims: readonly [number, number, number, number]): [number, number, number, number] {
  const [, dh, dq, dk] = dims;
  const strides: [number, number, number, number] = [dh * dq * dk, dq * dk, dk, 1];
  return strides.map((s, axis) => (dims[axis] === 1 ? 0 : s)) as [number, number, number, number];
}

/** The number of values of a broadcast view's dims. */
export function viewSize(view: BiasView): number {
  return view.dims.reduce((a, b) => a * b, 1);
}

/**
 * The gradients of `sum(softmaxAttention(q, k, v, rule, visible) * gradOutput)`;
 * gradOutput is `[B, H, Nq, Dv]` in `'bhnd'`.
 */
export function softmaxBackward(q: Heads, k: Heads, v: Heads, rule: LogitRule, visible: Visible, gradOutput: Float32Array): SoftmaxGradients {
  const { B, H, N: Nq, D } = q;
  const { N: Nk } = k;
  const Dv = v.D;
  const { scale, softcap = null, bias = null } = rule;
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const dbias = bias ? new Float64Array(viewSize(bias)) : null;
  const [sb, sh, si, sj] = bias ? compactStrides(bias.dims) : [0, 0, 0, 0];
  const raw = new Float64Array(Nk); // scale q . k, before the cap
  const p = new Float64Array(Nk);
  const out = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kBase = headOffset(k, b, h, H);
      const vBase = headOffset(v, b, h, H);
      for (let i = 0; i < Nq; i++) {
        const qOff = ((b * H + h) * Nq + i) * D;
        const gOff = ((b * H + h) * Nq + i) * Dv;
        // forward: the row's logits and probabilities, as softmaxAttention makes them
        const biasRow = bias ? rowStart(bias, b, h, i) : 0;
        let max = -Infinity;
        for (let j = 0; j < Nk; j++) {
          p[j] = -Infinity;
          if (!visible(b, h, i, j)) continue;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q.data[qOff + d] * k.data[kBase + j * D + d];
          raw[j] = scale * dot;
          let logit = softcap !== null ? softcap * Math.tanh(raw[j] / softcap) : raw[j];
          if (bias) logit += bias.data[biasRow + j * bias.strides[3]];
          p[j] = logit;
          if (logit > max) max = logit;
        }
        if (max === -Infinity) continue; // a row that sees nothing outputs zeros: no gradient
        let sum = 0;
        for (let j = 0; j < Nk; j++) {
          p[j] = p[j] === -Infinity ? 0 : Math.exp(p[j] - max);
          sum += p[j];
        }
        out.fill(0);
        for (let j = 0; j < Nk; j++) {
          p[j] /= sum;
          if (p[j] === 0) continue;
          for (let e = 0; e < Dv; e++) out[e] += p[j] * v.data[vBase + j * Dv + e];
        }
        let gOut = 0;
        for (let e = 0; e < Dv; e++) gOut += gradOutput[gOff + e] * out[e];
        // backward, key by key
        const biasGradRow = b * sb + h * sh + i * si;
        for (let j = 0; j < Nk; j++) {
          if (p[j] === 0) continue;
          let gv = 0;
          for (let e = 0; e < Dv; e++) {
            gv += gradOutput[gOff + e] * v.data[vBase + j * Dv + e];
            dv[vBase + j * Dv + e] += p[j] * gradOutput[gOff + e];
          }
          const dLogit = p[j] * (gv - gOut);
          if (dbias) dbias[biasGradRow + j * sj] += dLogit;
          const tanh = softcap !== null ? Math.tanh(raw[j] / softcap) : 0;
          const dRaw = scale * dLogit * (1 - tanh * tanh);
          for (let d = 0; d < D; d++) {
            dq[qOff + d] += dRaw * k.data[kBase + j * D + d];
            dk[kBase + j * D + d] += dRaw * q.data[qOff + d];
          }
        }
      }
    }
  }
  return { q: dq, k: dk, v: dv, bias: dbias };
}
