/**
 * Float64 backward pass of `lsh` (forward: ../lsh.ts). Buckets and chunks
 * are constants. Combining the rounds by their normalisers makes query i's
 * weights one softmax over every (round, chunk, key) entry it looked at:
 * `o_r exp(l_r - logsumexp_r l_r)` puts `exp(logit_t - L)` on entry t, with L
 * the log-sum-exp of all of them. So with `w_t` those weights and g the
 * output gradient: `dv_(j_t) += w_t g`, `dlogit_t = w_t (g . v_(j_t) - g . out_i)`.
 * An entry of another key has `logit = scale x_i . x^_j` with
 * `x^_j = x_j / max(|x_j|, 1e-12)`: `dx_i += scale dlogit x^_j` and
 * `dx_j += inv_j (dx^_j - x^_j (x^_j . dx^_j))` for `dx^_j = scale dlogit x_i`
 * (no radial part below the 1e-12 floor); the self entry's fixed logit has
 * no gradient. x is both queries and keys, so its gradient covers both roles.
 */
import type { Heads } from '../../tensor.js';
import { commonVisible } from '../softmax.js';
import { lshHead, type LshSettings } from '../lsh.js';

export function lshBackward(x: Heads, v: Heads, s: LshSettings, gradOutput: Float32Array): { q: Float64Array; v: Float64Array } {
  const { B, H, N, D } = x;
  const Dv = v.D;
  const dx = new Float64Array(x.data.length);
  const dv = new Float64Array(v.data.length);
  const visible = commonVisible(s, N, N);
  const out = new Float64Array(Dv);
  const inverseNorm = new Float64Array(N);
  const floored = new Uint8Array(N); // |x_j| <= 1e-12: x^_j = x_j * 1e12, no radial part
  const dUnit = new Float64Array(N * D); // gradient of each normalised key row x^_j
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * N;
      for (let j = 0; j < N; j++) {
        let sq = 0;
        for (let d = 0; d < D; d++) sq += x.data[(base + j) * D + d] ** 2;
        inverseNorm[j] = 1 / Math.max(Math.sqrt(sq), 1e-12);
        floored[j] = Math.sqrt(sq) <= 1e-12 ? 1 : 0;
      }
      dUnit.fill(0);
      lshHead(x, s, visible, b, h, (i, keys, weights, count) => {
        const gOff = (base + i) * Dv;
        out.fill(0);
        for (let t = 0; t < count; t++) for (let e = 0; e < Dv; e++) out[e] += weights[t] * v.data[(base + keys[t]) * Dv + e];
        let gOut = 0;
        for (let e = 0; e < Dv; e++) gOut += gradOutput[gOff + e] * out[e];
        for (let t = 0; t < count; t++) {
          const j = keys[t];
          let gv = 0;
          for (let e = 0; e < Dv; e++) {
            gv += gradOutput[gOff + e] * v.data[(base + j) * Dv + e];
            dv[(base + j) * Dv + e] += weights[t] * gradOutput[gOff + e];
          }
          if (j === i) continue; // the fixed self logit
          const dLogit = s.scale * weights[t] * (gv - gOut);
          for (let d = 0; d < D; d++) {
            dx[(base + i) * D + d] += dLogit * x.data[(base + j) * D + d] * inverseNorm[j];
            dUnit[j * D + d] += dLogit * x.data[(base + i) * D + d];
          }
        }
      });
      // the key side, through the normalisation
      for (let j = 0; j < N; j++) {
        const inv = inverseNorm[j];
        const off = (base + j) * D;
        let radial = 0;
        if (!floored[j]) for (let d = 0; d < D; d++) radial += dUnit[j * D + d] * x.data[off + d] * inv;
        for (let d = 0; d < D; d++) dx[off + d] += inv * (dUnit[j * D + d] - radial * x.data[off + d] * inv);
      }
    }
  }
  return { q: dx, v: dv };
}
