/**
 * Float64 backward pass of `sinkhorn` (forward: ../sinkhorn.ts). Which
 * sorted keys are hidden (by the argmax of each row of S) is a constant.
 * Back from the output, for batch b and head h:
 *
 * 1. the softmax of each query over its sorted block and its own block:
 *    `dl_n = w_n (g . val_n - g . out)`, into q, the own keys and values,
 *    and the sorted rows `k~`, `v~`;
 * 2. the sorted rows `x~_(u,r) = sum_t S_ut x_(t b + r)`: `dx_(t b + r) +=
 *    S_ut dx~_(u,r)`, `dS_ut += sum_r dx~_(u,r) . x_(t b + r)` (k and v);
 * 3. S: not causal, `S = exp(L)` after `iterations` row and column
 *    log-normalisations, each taken back by `dL = dL' - exp(L') sum(dL')`
 *    over its row (column); causal, the softmax of row u over `t < u`;
 * 4. the logits `L = R / temperature`: into `sortLogits` when given (summed
 *    over the axes it broadcasts), else `R_ut = scale qbar_u . kbar_t` into
 *    the block means of q (the first query of each block when causal) and k.
 */
import { headOffset, type Heads } from '../../tensor.js';
import { attendHead, blockSummaries, logSumExp, sortedRows, sortLogitsOf, sortMatrix, type SinkhornSettings } from '../sinkhorn.js';

export interface SinkhornGradients {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly v: Float64Array;
  /** Laid out as the given `sortLogits` data (its strides), or null when none was given. */
  readonly sortLogits: Float64Array | null;
}

/** `dS` (nb x nb) back to the logits `L = R / temperature` of the sort: `dL`. */
function sortBackward(R: Float64Array, S: Float64Array, dS: Float64Array, s: SinkhornSettings, nb: number): Float64Array {
  const dL = new Float64Array(nb * nb);
  if (s.causal) {
    for (let u = 0; u < nb; u++) {
      let dot = 0;
      for (let t = 0; t < u; t++) dot += S[u * nb + t] * dS[u * nb + t];
      for (let t = 0; t < u; t++) dL[u * nb + t] = S[u * nb + t] * (dS[u * nb + t] - dot);
    }
    return dL;
  }
  // forward again, keeping L after every normalisation: states[0] = R / temperature
  const states: Float64Array[] = [R.map((logit) => logit / s.temperature)];
  for (let step = 0; step < s.iterations; step++) {
    const rows = Float64Array.from(states[states.length - 1]);
    for (let u = 0; u < nb; u++) {
      const lse = logSumExp(rows, u * nb, nb, 1);
      for (let t = 0; t < nb; t++) rows[u * nb + t] -= lse;
    }
    const columns = Float64Array.from(rows);
    for (let t = 0; t < nb; t++) {
      const lse = logSumExp(columns, t, nb, nb);
      for (let u = 0; u < nb; u++) columns[u * nb + t] -= lse;
    }
    states.push(rows, columns);
  }
  // S = exp(L): dL = dS S
  for (let n = 0; n < nb * nb; n++) dL[n] = dS[n] * S[n];
  // each normalisation L' = L - lse(L) over a row (odd states) or a column (even ones), last first
  for (let state = states.length - 1; state >= 1; state--) {
    const after = states[state];
    const byRow = state % 2 === 1;
    for (let line = 0; line < nb; line++) {
      const at = (n: number) => (byRow ? line * nb + n : n * nb + line);
      let sum = 0;
      for (let n = 0; n < nb; n++) sum += dL[at(n)];
      for (let n = 0; n < nb; n++) dL[at(n)] -= Math.exp(after[at(n)]) * sum;
    }
  }
  return dL;
}

export function sinkhornBackward(q: Heads, k: Heads, v: Heads, s: SinkhornSettings, gradOutput: Float32Array): SinkhornGradients {
  const { B, H, N, D } = q;
  const Dv = v.D;
  const bs = s.blockSize;
  const nb = N / bs;
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const dSortLogits = s.sortLogits ? new Float64Array(s.sortLogits.data.length) : null;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const S = sortMatrix(q, k, s, b, h);
      const qBase = headOffset(q, b, h, H);
      const kBase = headOffset(k, b, h, H);
      const vBase = headOffset(v, b, h, H);
      const sortedKeys = sortedRows(k, S, bs, b, h, H);
      const sortedValues = sortedRows(v, S, bs, b, h, H);
      const dSortedKeys = new Float64Array(N * D);
      const dSortedValues = new Float64Array(N * Dv);
      // 1. each query's softmax over its 2b keys
      attendHead(q, k, s, S, b, h, (i, u, weights) => {
        const gOff = ((b * H + h) * N + i) * Dv;
        const value = (n: number, e: number): number =>
          n < bs ? sortedValues[(u * bs + n) * Dv + e] : v.data[vBase + (u * bs + n - bs) * Dv + e];
        let gOut = 0;
        for (let n = 0; n < 2 * bs; n++) for (let e = 0; e < Dv; e++) gOut += weights[n] * gradOutput[gOff + e] * value(n, e);
        for (let n = 0; n < 2 * bs; n++) {
          if (weights[n] === 0) continue;
          let gv = 0;
          for (let e = 0; e < Dv; e++) gv += gradOutput[gOff + e] * value(n, e);
          const dLogit = s.scale * weights[n] * (gv - gOut);
          const sorted = n < bs;
          const row = u * bs + (sorted ? n : n - bs);
          for (let e = 0; e < Dv; e++) {
            if (sorted) dSortedValues[row * Dv + e] += weights[n] * gradOutput[gOff + e];
            else dv[vBase + row * Dv + e] += weights[n] * gradOutput[gOff + e];
          }
          for (let d = 0; d < D; d++) {
            const qd = q.data[qBase + i * D + d];
            if (sorted) {
              dq[qBase + i * D + d] += dLogit * sortedKeys[row * D + d];
              dSortedKeys[row * D + d] += dLogit * qd;
            } else {
              dq[qBase + i * D + d] += dLogit * k.data[kBase + row * D + d];
              dk[kBase + row * D + d] += dLogit * qd;
            }
          }
        }
      });
      // 2. the sorted rows, of keys and of values
      const dS = new Float64Array(nb * nb);
      const unsort = (x: Heads, base: number, dSorted: Float64Array, dx: Float64Array): void => {
        const width = x.D;
        for (let u = 0; u < nb; u++) {
          for (let t = 0; t < nb; t++) {
            const weight = S[u * nb + t];
            let dot = 0;
            for (let r = 0; r < bs; r++) {
              for (let d = 0; d < width; d++) {
                const g = dSorted[(u * bs + r) * width + d];
                dot += g * x.data[base + (t * bs + r) * width + d];
                dx[base + (t * bs + r) * width + d] += weight * g;
              }
            }
            dS[u * nb + t] += dot;
          }
        }
      };
      unsort(k, kBase, dSortedKeys, dk);
      unsort(v, vBase, dSortedValues, dv);
      // 3. the sort, back to its logits R
      const R = sortLogitsOf(q, k, s, b, h);
      const dR = sortBackward(R, S, dS, s, nb).map((g) => g / s.temperature);
      // 4. the given logits, or the block summaries they were made of
      if (s.sortLogits && dSortLogits) {
        const offset = b * s.sortLogits.batchStride + h * s.sortLogits.headStride;
        for (let n = 0; n < nb * nb; n++) dSortLogits[offset + n] += dR[n];
        continue;
      }
      const rows = s.causal ? 1 : bs;
      const qBar = blockSummaries(q, b, h, H, bs, s.causal);
      const kBar = blockSummaries(k, b, h, H, bs, false);
      for (let u = 0; u < nb; u++) {
        for (let t = 0; t < nb; t++) {
          const g = s.scale * dR[u * nb + t];
          if (g === 0) continue;
          for (let d = 0; d < D; d++) {
            for (let r = 0; r < rows; r++) dq[qBase + (u * bs + r) * D + d] += (g * kBar[t * D + d]) / rows;
            for (let r = 0; r < bs; r++) dk[kBase + (t * bs + r) * D + d] += (g * qBar[u * D + d]) / bs;
          }
        }
      }
    }
  }
  return { q: dq, k: dk, v: dv, sortLogits: dSortLogits };
}
