/**
 * Float64 backward pass of Efficient Attention (`linear` with `featureMap:
 * 'efficient'`, forward in ../linear.ts): `out = rho_q(q) C`, `C = rho_k(k)^T v`.
 *
 *     drho_q_i = C g_i                 dq_i = rho_q_i * (drho_q_i - rho_q_i . drho_q_i)
 *     dC = sum_i rho_q_i g_i^T         dv_j = dC^T rho_k_j
 *     drho_k_j = dC v_j                dk[., d] = rho_k[., d] * (drho_k[., d] - sum_j rho_k[j, d] drho_k[j, d])
 *
 * (the softmax backward of each q row over its features and of each k
 * column over the real keys; padded keys take no part).
 */
import { headOffset, type Heads } from '../../tensor.js';
import { efficientNormalisers } from '../linear.js';

export function efficientBackward(q: Heads, k: Heads, v: Heads, keyPadding: Uint8Array | null, gradOutput: Float32Array): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const { B, H, N: Nq, D } = q;
  const { N: Nk } = k;
  const Dv = v.D;
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const context = new Float64Array(D * Dv);
  const dContext = new Float64Array(D * Dv);
  const dRho = new Float64Array(Math.max(Nq, Nk) * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const { rhoQ, rhoK } = efficientNormalisers(q, k, b, h, keyPadding);
      const kBase = headOffset(k, b, h, H);
      const vBase = headOffset(v, b, h, H);
      context.fill(0);
      for (let j = 0; j < Nk; j++) {
        for (let d = 0; d < D; d++) for (let e = 0; e < Dv; e++) context[d * Dv + e] += rhoK[j * D + d] * v.data[vBase + j * Dv + e];
      }
      // the queries: each row's softmax over its features
      dContext.fill(0);
      for (let i = 0; i < Nq; i++) {
        const row = (b * H + h) * Nq + i;
        let dot = 0;
        for (let d = 0; d < D; d++) {
          let sum = 0;
          for (let e = 0; e < Dv; e++) {
            sum += context[d * Dv + e] * gradOutput[row * Dv + e];
            dContext[d * Dv + e] += rhoQ[i * D + d] * gradOutput[row * Dv + e];
          }
          dRho[d] = sum;
          dot += rhoQ[i * D + d] * sum;
        }
        for (let d = 0; d < D; d++) dq[row * D + d] += rhoQ[i * D + d] * (dRho[d] - dot);
      }
      // the keys: each column's softmax over the sequence
      for (let j = 0; j < Nk; j++) {
        for (let d = 0; d < D; d++) {
          let sum = 0;
          for (let e = 0; e < Dv; e++) {
            sum += dContext[d * Dv + e] * v.data[vBase + j * Dv + e];
            dv[vBase + j * Dv + e] += dContext[d * Dv + e] * rhoK[j * D + d];
          }
          dRho[j * D + d] = sum;
        }
      }
      for (let d = 0; d < D; d++) {
        let dot = 0;
        for (let j = 0; j < Nk; j++) dot += rhoK[j * D + d] * dRho[j * D + d];
        for (let j = 0; j < Nk; j++) dk[kBase + j * D + d] += rhoK[j * D + d] * (dRho[j * D + d] - dot);
      }
    }
  }
  return { q: dq, k: dk, v: dv };
}
