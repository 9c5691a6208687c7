/**
 * Float64 backward pass of `linear` (forward: ../linear.ts) for the kernel
 * feature maps (elu, relu, favor, rfa; `efficient` is in ./efficient.ts).
 * With `out_i = phi_i^T S_i / den_i`, `den_i = phi_i . z_i + eps` and g the
 * output gradient:
 *
 *     dphi(q_i) = (S_i g_i - (g_i . out_i) z_i) / den_i
 *     dphi(k_j) = A_j v_j + c_j,   dv_j = A_j^T phi(k_j)
 *
 * with `A_j = sum_i phi_i g_i^T / den_i` and `c_j = -sum_i (g_i . out_i) phi_i
 * / den_i` over the queries i that see key j: every query, or, causal, the
 * queries from `j - (Nk - Nq)` on (reversed prefix sums). The features are
 * used in the forward's stabilised form (`exp(offset) * phi`, offsets held
 * constant: the output does not depend on them), so FAVOR+ stays finite.
 * Then each feature map's own derivative takes dphi back to the input row.
 */
import { headOffset, type Heads } from '../../tensor.js';
import type { Common } from '../../validate.js';
import { denominator, featureCount, featureRow, isReal, keyFeatures, projectionOf, type KernelConfig, type LinearConfig } from '../linear.js';
import { efficientBackward } from './efficient.js';

export interface LinearGradients {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly v: Float64Array;
}

/**
 * Adds to `dx[dxOff ..]` the gradient that `dPhi` (with respect to the
 * features `phi` that featureRow made of the row `x[xOff ..]`, as scaled
 * there) sends back to the row.
 */
function featureBackward(config: KernelConfig, head: number, x: Float32Array, xOff: number, D: number, phi: Float64Array, dPhi: Float64Array, dx: Float64Array, dxOff: number): void {
  switch (config.featureMap) {
    case 'elu':
      // phi = x + 1 for x > 0, exp(x) otherwise
      for (let d = 0; d < D; d++) dx[dxOff + d] += dPhi[d] * (x[xOff + d] > 0 ? 1 : phi[d]);
      return;
    case 'relu':
      for (let d = 0; d < D; d++) if (x[xOff + d] > 0) dx[dxOff + d] += dPhi[d];
      return;
    case 'favor': {
      // phi_m = M^(-1/2) exp(sqrt(scale) w_m . x - scale |x|^2 / 2): dphi_m / dx = phi_m (sqrt(scale) w_m - scale x)
      const p = projectionOf(config);
      const root = Math.sqrt(config.scale);
      const wBase = head * p.headStride;
      for (let m = 0; m < p.M; m++) {
        const weight = dPhi[m] * phi[m];
        if (weight === 0) continue;
        for (let d = 0; d < D; d++) dx[dxOff + d] += weight * (root * p.data[wBase + m * D + d] - config.scale * x[xOff + d]);
      }
      return;
    }
    case 'rfa': {
      // phi = M^(-1/2) [sin(W x^), cos(W x^)], x^ = x / max(|x|, 1e-12)
      const p = projectionOf(config);
      const wBase = head * p.headStride;
      let norm = 0;
      for (let d = 0; d < D; d++) norm += x[xOff + d] ** 2;
      norm = Math.sqrt(norm);
      const dUnit = new Float64Array(D);
      for (let m = 0; m < p.M; m++) {
        // d sin = cos, d cos = -sin, and phi holds both (times the amplitude)
        const dAngle = dPhi[m] * phi[p.M + m] - dPhi[p.M + m] * phi[m];
        for (let d = 0; d < D; d++) dUnit[d] += dAngle * p.data[wBase + m * D + d];
      }
      if (norm <= 1e-12) {
        for (let d = 0; d < D; d++) dx[dxOff + d] += dUnit[d] / 1e-12;
        return;
      }
      let radial = 0;
      for (let d = 0; d < D; d++) radial += dUnit[d] * x[xOff + d] / norm;
      for (let d = 0; d < D; d++) dx[dxOff + d] += (dUnit[d] - radial * x[xOff + d] / norm) / norm;
      return;
    }
  }
}

/** The gradients of `sum(linearAttention(q, k, v, config) * gradOutput)`. */
export function linearBackward(q: Heads, k: Heads, v: Heads, config: LinearConfig & Common, gradOutput: Float32Array): LinearGradients {
  if (config.featureMap === 'efficient') return efficientBackward(q, k, v, config.keyPadding, gradOutput);
  const kernel = config as KernelConfig;
  const { B, H, N: Nq, D } = q;
  const { N: Nk } = k;
  const Dv = v.D;
  const F = featureCount(config, D);
  const logEps = Math.log(config.eps);
  const shift = Nk - Nq;
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const S = new Float64Array(F * Dv);
  const z = new Float64Array(F);
  const phiQ = new Float64Array(Nq * F);
  const dens = new Float64Array(Nq); // den_i, 0 where the row sees nothing (its output is 0)
  const gOut = new Float64Array(Nq); // g_i . out_i
  const dPhi = new Float64Array(F);
  const A = new Float64Array(F * Dv);
  const c = new Float64Array(F);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const keys = keyFeatures(kernel, k, b, h, H, config.keyPadding);
      const kBase = headOffset(k, b, h, H);
      const vBase = headOffset(v, b, h, H);
      // forward again, query by query (prefix sums when causal), and each query's own gradient
      S.fill(0);
      z.fill(0);
      let added = 0;
      for (let i = 0; i < Nq; i++) {
        const last = config.causal ? Math.min(i + shift, Nk - 1) : Nk - 1;
        for (; added <= last; added++) {
          for (let f = 0; f < F; f++) {
            const phiK = keys.phi[added * F + f];
            z[f] += phiK;
            for (let e = 0; e < Dv; e++) S[f * Dv + e] += phiK * v.data[vBase + added * Dv + e];
          }
        }
        const row = (b * H + h) * Nq + i;
        const phi = phiQ.subarray(i * F, (i + 1) * F);
        const qOffset = featureRow(kernel, h, q.data, row * D, D, phi);
        // divided, never multiplied by 1 / den: a subnormal eps may make that Infinity
        const den = (dens[i] = denominator(phi, z, F, logEps, qOffset, keys.offset));
        if (den === 0) continue;
        const g = gradOutput.subarray(row * Dv, (row + 1) * Dv);
        gOut[i] = 0;
        for (let e = 0; e < Dv; e++) {
          let num = 0;
          for (let f = 0; f < F; f++) num += phi[f] * S[f * Dv + e];
          gOut[i] += (g[e] * num) / den;
        }
        for (let f = 0; f < F; f++) {
          let sg = 0;
          for (let e = 0; e < Dv; e++) sg += S[f * Dv + e] * g[e];
          dPhi[f] = (sg - gOut[i] * z[f]) / den;
        }
        featureBackward(kernel, h, q.data, row * D, D, phi, dPhi, dq, row * D);
      }
      // keys, last first: A and c sum the queries that see key j
      A.fill(0);
      c.fill(0);
      let from = Nq; // queries from .. Nq - 1 are in A and c
      for (let j = Nk - 1; j >= 0; j--) {
        const firstQuery = config.causal ? Math.max(0, j - shift) : 0;
        while (from > firstQuery) {
          from--;
          const row = (b * H + h) * Nq + from;
          const den = dens[from];
          if (den === 0) continue;
          for (let f = 0; f < F; f++) {
            const phi = phiQ[from * F + f] / den;
            c[f] -= gOut[from] * phi;
            for (let e = 0; e < Dv; e++) A[f * Dv + e] += phi * gradOutput[row * Dv + e];
          }
        }
        if (!isReal(config.keyPadding, b, Nk, j)) continue;
        const phiK = keys.phi.subarray(j * F, (j + 1) * F);
        for (let f = 0; f < F; f++) {
          // a zero feature sends nothing back (phi(q)_f / den may overflow where z_f is 0 and eps subnormal)
          dPhi[f] = 0;
          if (phiK[f] === 0) continue;
          let av = 0;
          for (let e = 0; e < Dv; e++) {
            av += A[f * Dv + e] * v.data[vBase + j * Dv + e];
            dv[vBase + j * Dv + e] += A[f * Dv + e] * phiK[f];
          }
          dPhi[f] = av + c[f];
        }
        featureBackward(kernel, h, k.data, kBase + j * D, D, phiK, dPhi, dk, kBase + j * D);
      }
    }
  }
  return { q: dq, k: dk, v: dv };
}
