/**
 * Plain-JS float64 reference of `sinkhorn`: Sparse Sinkhorn attention (Tay
 * et al. 2020). A soft permutation S of the nb = N / b blocks (balanced by
 * Sinkhorn normalisation, or a causal softmax over past blocks) mixes the
 * key and value blocks into one "sorted" block per query block; each query
 * attends that sorted block and its own block (2b keys).
 * O(B H (nb^2 D + N nb (D + Dv) + N b (D + Dv))) time, no N x N buffer.
 */
import { headOffset, type Heads } from '../tensor.js';
import type { Common } from '../validate.js';

/** The sort network's logits `[B|1, H|1, nb, nb]`. */
export interface SortLogits {
  readonly data: Float32Array;
  /** Distance between two batches' logits in `data`; 0 when broadcast over batches. */
  readonly batchStride: number;
  /** Distance between two heads' logits in `data`; 0 when broadcast over heads. */
  readonly headStride: number;
}

/** What the `sinkhorn` reference needs besides q, k, v. */
export interface SinkhornSettings extends Common {
  /** b: block length; N is a multiple of it. */
  readonly blockSize: number;
  /** Divides the sort logits (> 0). */
  readonly temperature: number;
  /** Sinkhorn balancing steps (non-causal only). */
  readonly iterations: number;
  /** Given sort logits R, or null to take `R_ut = scale qbar_u . kbar_t`. */
  readonly sortLogits: SortLogits | null;
}

/** log(sum_n exp(values[n])) over `count` entries `stride` apart from `offset`. */
export function logSumExp(values: Float64Array, offset: number, count: number, stride: number): number {
  let max = -Infinity;
  for (let n = 0; n < count; n++) max = Math.max(max, values[offset + n * stride]);
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let n = 0; n < count; n++) sum += Math.exp(values[offset + n * stride] - max);
  return max + Math.log(sum);
}

/** `[nb, D]`: row u is the mean of block u of the head of x that query head h of H reads (batch b), or its first row when `firstRowOnly`. */
export function blockSummaries(x: Heads, b: number, h: number, H: number, blockSize: number, firstRowOnly: boolean): Float64Array {
  const { N, D } = x;
  const nb = N / blockSize;
  const base = headOffset(x, b, h, H);
  const out = new Float64Array(nb * D);
  const rows = firstRowOnly ? 1 : blockSize;
  for (let u = 0; u < nb; u++) {
    for (let r = 0; r < rows; r++) {
      for (let d = 0; d < D; d++) out[u * D + d] += x.data[base + (u * blockSize + r) * D + d] / rows;
    }
  }
  return out;
}

/** The sort logits `R_ut` of batch b, head h: given, or `scale qbar_u . kbar_t`. */
export function sortLogitsOf(q: Heads, k: Heads, s: SinkhornSettings, b: number, h: number): Float64Array {
  const nb = q.N / s.blockSize;
  if (s.sortLogits) {
    const offset = b * s.sortLogits.batchStride + h * s.sortLogits.headStride;
    return Float64Array.from(s.sortLogits.data.subarray(offset, offset + nb * nb));
  }
  // Causal: all queries of block u share S_u, so it may only depend on the block's first query
  // (a later query must not leak into an earlier one's output): qbar_u is that query.
  const qBar = blockSummaries(q, b, h, q.H, s.blockSize, s.causal);
  const kBar = blockSummaries(k, b, h, q.H, s.blockSize, false);
  const { D } = q;
  const logits = new Float64Array(nb * nb);
  for (let u = 0; u < nb; u++) {
    for (let t = 0; t < nb; t++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += qBar[u * D + d] * kBar[t * D + d];
      logits[u * nb + t] = s.scale * dot;
    }
  }
  return logits;
}

/**
 * The sort matrix S `[nb, nb]` of batch b, head h. Not causal: Sinkhorn
 * normalisation in log space (`iterations` times, rows then columns), a
 * soft permutation. Causal: row u is a softmax over the past blocks t < u
 * only (row 0 is empty, all zeros).
 */
export function sortMatrix(q: Heads, k: Heads, s: SinkhornSettings, b: number, h: number): Float64Array {
  const nb = q.N / s.blockSize;
  const L = sortLogitsOf(q, k, s, b, h).map((logit) => logit / s.temperature);
  if (s.causal) {
    for (let u = 0; u < nb; u++) {
      const lse = logSumExp(L, u * nb, u, 1);
      for (let t = 0; t < nb; t++) L[u * nb + t] = t < u ? Math.exp(L[u * nb + t] - lse) : 0;
    }
    return L;
  }
  for (let step = 0; step < s.iterations; step++) {
    for (let u = 0; u < nb; u++) {
      const lse = logSumExp(L, u * nb, nb, 1);
      for (let t = 0; t < nb; t++) L[u * nb + t] -= lse;
    }
    for (let t = 0; t < nb; t++) {
      const lse = logSumExp(L, t, nb, nb);
      for (let u = 0; u < nb; u++) L[u * nb + t] -= lse;
    }
  }
  return L.map(Math.exp);
}

/** The sort matrices of every batch and head, `[B, H, nb, nb]` (for tests and pictures). */
export function sortMatrices(q: Heads, k: Heads, s: SinkhornSettings): Float64Array {
  const { B, H, N } = q;
  const nb = N / s.blockSize;
  const out = new Float64Array(B * H * nb * nb);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) out.set(sortMatrix(q, k, s, b, h), (b * H + h) * nb * nb);
  }
  return out;
}

/** The sorted blocks `x~_(u,r) = sum_t S_ut x_(t*b + r)` of batch b, query head h of H: `[N, D]` in (u, r) order. */
export function sortedRows(x: Heads, S: Float64Array, blockSize: number, b: number, h: number, H: number): Float64Array {
  const { N, D } = x;
  const nb = N / blockSize;
  const base = headOffset(x, b, h, H);
  const out = new Float64Array(N * D);
  for (let u = 0; u < nb; u++) {
    for (let t = 0; t < nb; t++) {
      const weight = S[u * nb + t];
      if (weight === 0) continue;
      for (let r = 0; r < blockSize; r++) {
        for (let d = 0; d < D; d++) out[(u * blockSize + r) * D + d] += weight * x.data[base + (t * blockSize + r) * D + d];
      }
    }
  }
  return out;
}

/**
 * Receives the softmax row of query i (in block u) over its 2b keys: `weights[r]`
 * for the sorted key (u, r), `weights[b + r]` for its own block's key `u*b + r`.
 */
export type RowSink = (i: number, u: number, weights: Float64Array) => void;

/** Softmax of every query over its sorted block and own block, for batch b, head h with sort matrix S. */
export function attendHead(q: Heads, k: Heads, s: SinkhornSettings, S: Float64Array, b: number, h: number, sink: RowSink): void {
  const { N, D } = q;
  const bs = s.blockSize;
  const nb = N / bs;
  const qBase = headOffset(q, b, h, q.H);
  const kBase = headOffset(k, b, h, q.H);
  const sortedKeys = sortedRows(k, S, bs, b, h, q.H);
  const hidden = (j: number): boolean => s.keyPadding !== null && s.keyPadding[b * N + j] === 0;
  const weights = new Float64Array(2 * bs);
  const sortedVisible = new Uint8Array(bs);
  for (let u = 0; u < nb; u++) {
    // A sorted key is as visible as the original key its block mostly comes from.
    const empty = s.causal && u === 0;
    let main = 0;
    for (let t = 1; t < nb; t++) if (S[u * nb + t] > S[u * nb + main]) main = t;
    for (let r = 0; r < bs; r++) sortedVisible[r] = empty || hidden(main * bs + r) ? 0 : 1;

    for (let i = u * bs; i < (u + 1) * bs; i++) {
      const logit = (keys: ArrayLike<number>, offset: number): number => {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q.data[qBase + i * D + d] * keys[offset + d];
        return s.scale * dot;
      };
      let max = -Infinity;
      for (let r = 0; r < bs; r++) {
        weights[r] = sortedVisible[r] ? logit(sortedKeys, (u * bs + r) * D) : -Infinity;
        const j = u * bs + r;
        weights[bs + r] = (s.causal && j > i) || hidden(j) ? -Infinity : logit(k.data, kBase + j * D);
        max = Math.max(max, weights[r], weights[bs + r]);
      }
      if (max === -Infinity) {
        weights.fill(0);
      } else {
        let sum = 0;
        for (let n = 0; n < 2 * bs; n++) {
          weights[n] = Math.exp(weights[n] - max);
          sum += weights[n];
        }
        for (let n = 0; n < 2 * bs; n++) weights[n] /= sum;
      }
      sink(i, u, weights);
    }
  }
}

/** `sinkhorn` output `[B, H, N, Dv]`. */
export function sinkhornAttention(q: Heads, k: Heads, v: Heads, s: SinkhornSettings): Float32Array {
  const { B, H, N } = q;
  const Dv = v.D;
  const bs = s.blockSize;
  const out = new Float32Array(B * H * N * Dv);
  const acc = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const S = sortMatrix(q, k, s, b, h);
      const sortedValues = sortedRows(v, S, bs, b, h, H);
      const vBase = headOffset(v, b, h, H);
      const outBase = (b * H + h) * N * Dv;
      attendHead(q, k, s, S, b, h, (i, u, weights) => {
        acc.fill(0);
        for (let r = 0; r < bs; r++) {
          const sortedOff = (u * bs + r) * Dv;
          const ownOff = vBase + (u * bs + r) * Dv;
          for (let d = 0; d < Dv; d++) acc[d] += weights[r] * sortedValues[sortedOff + d] + weights[bs + r] * v.data[ownOff + d];
        }
        out.set(acc, outBase + i * Dv);
      });
    }
  }
  return out;
}

/**
 * The dense `[B, H, N, N]` matrix `sinkhorn` applies: the weight of sorted
 * key (u, r) is spread over the original keys `t*b + r` by `S_ut`.
 */
export function sinkhornWeights(q: Heads, k: Heads, s: SinkhornSettings): Float32Array {
  const { B, H, N } = q;
  const bs = s.blockSize;
  const nb = N / bs;
  const out = new Float32Array(B * H * N * N);
  const row = new Float64Array(N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const S = sortMatrix(q, k, s, b, h);
      attendHead(q, k, s, S, b, h, (i, u, weights) => {
        row.fill(0);
        for (let r = 0; r < bs; r++) {
          for (let t = 0; t < nb; t++) row[t * bs + r] += weights[r] * S[u * nb + t];
          row[u * bs + r] += weights[bs + r];
        }
        out.set(row, ((b * H + h) * N + i) * N);
      });
    }
  }
  return out;
}
