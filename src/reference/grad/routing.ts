/**
 * Float64 backward pass of `routing` (forward: ../routing.ts). Cluster
 * memberships are constants (and so are centroids, given or fitted). Query
 * i's output is the mean of its cluster rows `o_c(i)` over the `n_i`
 * clusters it joined and saw a key in, so each row gets `g_i / n_i` and runs
 * the softmax backward: `dv_j += p_j g'`, `dl_j = p_j (g' . v_j - g' . o_c(i))`,
 * `dq_i += scale dl_j k_j`, `dk_j += scale dl_j q_i`.
 */
import { headOffset, type Heads } from '../../tensor.js';
import { commonVisible } from '../softmax.js';
import { routeHead, type RoutingSettings } from '../routing.js';

export function routingBackward(q: Heads, k: Heads, v: Heads, s: RoutingSettings, gradOutput: Float32Array): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const { B, H, N: Nq, D } = q;
  const Dv = v.D;
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const visible = commonVisible(s, Nq, k.N);
  const o = new Float64Array(Dv);
  const g = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const qBase = (b * H + h) * Nq * D;
      const kBase = headOffset(k, b, h, H);
      const vBase = headOffset(v, b, h, H);
      const joined = new Int32Array(Nq);
      routeHead(q, k, s, visible, b, h, (i) => joined[i]++);
      routeHead(q, k, s, visible, b, h, (i, keys, weights, count) => {
        const gOff = ((b * H + h) * Nq + i) * Dv;
        for (let e = 0; e < Dv; e++) g[e] = gradOutput[gOff + e] / joined[i];
        o.fill(0);
        for (let t = 0; t < count; t++) for (let e = 0; e < Dv; e++) o[e] += weights[t] * v.data[vBase + keys[t] * Dv + e];
        let gOut = 0;
        for (let e = 0; e < Dv; e++) gOut += g[e] * o[e];
        for (let t = 0; t < count; t++) {
          const vOff = vBase + keys[t] * Dv;
          const kOff = kBase + keys[t] * D;
          let gv = 0;
          for (let e = 0; e < Dv; e++) {
            gv += g[e] * v.data[vOff + e];
            dv[vOff + e] += weights[t] * g[e];
          }
          const dLogit = s.scale * weights[t] * (gv - gOut);
          for (let d = 0; d < D; d++) {
            dq[qBase + i * D + d] += dLogit * k.data[kOff + d];
            dk[kOff + d] += dLogit * q.data[qBase + i * D + d];
          }
        }
      });
    }
  }
  return { q: dq, k: dk, v: dv };
}
