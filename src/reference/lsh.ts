/**
 * Plain-JS float64 reference of `lsh`: Reformer's LSH attention (Kitaev et
 * al. 2020) with shared queries and keys. Per batch, head and hash round:
 * hash every position into a bucket, sort positions by (bucket, position),
 * cut the sorted list into chunks, and let each query attend its chunk and
 * the chunk before it; the rounds are then combined by their softmax
 * normalisers. O(B H R N (c D + D nb)) time, no N x N buffer.
 */
import type { Heads } from '../tensor.js';
import { commonVisible, type Visible } from './softmax.js';
import type { Common } from '../validate.js';

/** The random rotations of the hash, `[H|1, R, D, nb/2]`. */
export interface LshRotations {
  /** Row-major `[R, D, nb/2]` per head. */
  readonly data: Float32Array;
  /** Distance between two heads' rotations in `data`; 0 when all heads share them. */
  readonly headStride: number;
  /** R, the number of hash rounds. */
  readonly rounds: number;
  /** nb, the number of buckets (even: each rotation column gives two). */
  readonly buckets: number;
}

/** What the `lsh` reference needs besides its input. */
export interface LshSettings extends Common {
  /** c, the chunk length. */
  readonly bucketSize: number;
  readonly rotations: LshRotations;
}

/**
 * The logit a query gives itself (reformer-pytorch's `TOKEN_SELF_ATTN_VALUE`):
 * with shared query-key vectors `x_i . x^_i` would dominate, so the query
 * itself only gets weight when it sees nothing else.
 */
export const LSH_SELF_LOGIT = -5e4;

/**
 * SPEC step 1: the bucket `argmax([x_i rot_r, -x_i rot_r])` of every position
 * of batch b, head h, round r (ties to the lower bucket).
 */
export function lshBuckets(x: Heads, rotations: LshRotations, b: number, h: number, r: number): Int32Array {
  const { N, D } = x;
  const half = rotations.buckets / 2;
  const rotOff = h * rotations.headStride + r * D * half;
  const projected = new Float64Array(half);
  const buckets = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const xOff = ((b * x.H + h) * N + i) * D;
    projected.fill(0);
    for (let d = 0; d < D; d++) {
      const xd = x.data[xOff + d];
      const row = rotOff + d * half;
      for (let m = 0; m < half; m++) projected[m] += xd * rotations.data[row + m];
    }
    // Bucket m < nb/2 scores x rot[:, m], bucket nb/2 + m scores -x rot[:, m].
    let best = 0;
    let bestScore = projected[0];
    for (let m = 1; m < 2 * half; m++) {
      const score = m < half ? projected[m] : -projected[m - half];
      if (score > bestScore) {
        best = m;
        bestScore = score;
      }
    }
    buckets[i] = best;
  }
  return buckets;
}

/**
 * SPEC step 2: positions sorted by (bucket, position). A counting sort over
 * the nb buckets, stable because positions are placed in increasing order:
 * O(N + nb).
 */
export function sortByBucket(buckets: Int32Array, bucketCount: number): Int32Array {
  const start = new Int32Array(bucketCount + 1);
  for (let i = 0; i < buckets.length; i++) start[buckets[i] + 1]++;
  for (let m = 0; m < bucketCount; m++) start[m + 1] += start[m];
  const sorted = new Int32Array(buckets.length);
  for (let i = 0; i < buckets.length; i++) sorted[start[buckets[i]]++] = i;
  return sorted;
}

/**
 * The hash-sorted positions of every batch, head and round, `[B, H, R, N]`
 * (SPEC steps 1-2), for testing kernels against.
 */
export function lshSortedPositions(x: Heads, rotations: LshRotations): Int32Array {
  const { B, H, N } = x;
  const R = rotations.rounds;
  const out = new Int32Array(B * H * R * N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let r = 0; r < R; r++) {
        out.set(sortByBucket(lshBuckets(x, rotations, b, h, r), rotations.buckets), ((b * H + h) * R + r) * N);
      }
    }
  }
  return out;
}

/**
 * Receives the attention row of query i: `count` (key position, weight)
 * pairs, rounds already combined. A key may appear several times (once per
 * round and chunk it sits in); its weights add up.
 */
export type RowSink = (i: number, keys: Int32Array, weights: Float64Array, count: number) => void;

/** Runs SPEC steps 1-4 and the round combination for batch b, head h, handing each query's row to `sink`. */
export function lshHead(x: Heads, s: LshSettings, visible: Visible, b: number, h: number, sink: RowSink): void {
  const { N, D } = x;
  const c = s.bucketSize;
  const R = s.rotations.rounds;
  const base = (b * x.H + h) * N;

  // The key side is normalised: x^_j = x_j / max(|x_j|, 1e-12).
  const inverseNorm = new Float64Array(N);
  for (let j = 0; j < N; j++) {
    let sq = 0;
    for (let d = 0; d < D; d++) sq += x.data[(base + j) * D + d] ** 2;
    inverseNorm[j] = 1 / Math.max(Math.sqrt(sq), 1e-12);
  }

  // Steps 1-2: sorted positions per round, and where each position landed.
  const sorted: Int32Array[] = [];
  const rank: Int32Array[] = [];
  for (let r = 0; r < R; r++) {
    const order = sortByBucket(lshBuckets(x, s.rotations, b, h, r), s.rotations.buckets);
    const where = new Int32Array(N);
    for (let t = 0; t < N; t++) where[order[t]] = t;
    sorted.push(order);
    rank.push(where);
  }

  // Step 3: chunks of c per round (the last may be shorter); all rounds'
  // chunks form one cyclic list, chunk g of it being chunk g mod perRound of
  // round floor(g / perRound).
  const perRound = Math.ceil(N / c);
  const chunkCount = R * perRound;
  const chunkKeys = (g: number): Int32Array => {
    const m = g % perRound;
    return sorted[(g - m) / perRound].subarray(m * c, Math.min((m + 1) * c, N));
  };

  const capacity = R * 2 * Math.min(c, N);
  const keys = new Int32Array(capacity);
  const weights = new Float64Array(capacity);
  const roundStart = new Int32Array(R + 1);
  const roundLse = new Float64Array(R);
  for (let i = 0; i < N; i++) {
    const qOff = (base + i) * D;
    let count = 0;
    for (let r = 0; r < R; r++) {
      roundStart[r] = count;
      const own = r * perRound + Math.floor(rank[r][i] / c);
      const previous = (own - 1 + chunkCount) % chunkCount;
      // A list of one chunk looks only at itself; otherwise a key in both chunks counts twice.
      const looked = previous === own ? [own] : [own, previous];
      // Step 4: logits of the visible keys; the query itself always takes part with a fixed logit.
      let max = -Infinity;
      for (const g of looked) {
        for (const j of chunkKeys(g)) {
          let logit: number;
          if (j === i) logit = LSH_SELF_LOGIT;
          else if (!visible(b, h, i, j)) continue;
          else {
            let dot = 0;
            const kOff = (base + j) * D;
            for (let d = 0; d < D; d++) dot += x.data[qOff + d] * x.data[kOff + d];
            logit = s.scale * dot * inverseNorm[j];
          }
          keys[count] = j;
          weights[count] = logit;
          count++;
          if (logit > max) max = logit;
        }
      }
      // Softmax of the round, o_r(i), and its log-sum-exp l_r(i). Never empty: i is in its own chunk.
      let sum = 0;
      for (let t = roundStart[r]; t < count; t++) {
        weights[t] = Math.exp(weights[t] - max);
        sum += weights[t];
      }
      for (let t = roundStart[r]; t < count; t++) weights[t] /= sum;
      roundLse[r] = max + Math.log(sum);
    }
    roundStart[R] = count;

    // Rounds combine by their normalisers: out_i = sum_r o_r(i) exp(l_r(i) - logsumexp_r l_r(i)).
    let maxLse = -Infinity;
    for (let r = 0; r < R; r++) maxLse = Math.max(maxLse, roundLse[r]);
    let total = 0;
    for (let r = 0; r < R; r++) total += Math.exp(roundLse[r] - maxLse);
    for (let r = 0; r < R; r++) {
      const share = Math.exp(roundLse[r] - maxLse) / total;
      for (let t = roundStart[r]; t < roundStart[r + 1]; t++) weights[t] *= share;
    }
    sink(i, keys, weights, count);
  }
}

/** `lsh` output `[B, H, N, Dv]`; x is both the queries and the keys. */
export function lshAttention(x: Heads, v: Heads, s: LshSettings): Float32Array {
  const { B, H, N } = x;
  const Dv = v.D;
  const out = new Float32Array(B * H * N * Dv);
  const visible = commonVisible(s, N, N);
  const acc = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * N;
      lshHead(x, s, visible, b, h, (i, keys, weights, count) => {
        acc.fill(0);
        for (let t = 0; t < count; t++) {
          const vOff = (base + keys[t]) * Dv;
          for (let d = 0; d < Dv; d++) acc[d] += weights[t] * v.data[vOff + d];
        }
        out.set(acc, (base + i) * Dv);
      });
    }
  }
  return out;
}

/** The dense `[B, H, N, N]` matrix `lsh` applies: rounds and duplicate appearances summed. */
export function lshWeights(x: Heads, s: LshSettings): Float32Array {
  const { B, H, N } = x;
  const out = new Float32Array(B * H * N * N);
  const visible = commonVisible(s, N, N);
  const row = new Float64Array(N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      lshHead(x, s, visible, b, h, (i, keys, weights, count) => {
        row.fill(0);
        for (let t = 0; t < count; t++) row[keys[t]] += weights[t];
        out.set(row, ((b * H + h) * N + i) * N);
      });
    }
  }
  return out;
}
