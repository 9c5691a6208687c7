/**
 * Plain-JS float64 reference of `routing`: the Routing Transformer (Roy et
 * al. 2021). Queries and keys are routed to clusters by cosine similarity
 * with the cluster centroids; each cluster's top-w queries attend its top-w
 * keys, and a query's output is the mean over the clusters it joined.
 * O(B H C (N log w + w^2 D)) time, no Nq x Nk buffer; the centroids can be
 * fitted by spherical k-means (`fitCentroids`).
 */
import { headOffset, type Heads } from '../tensor.js';
import type { Common } from '../validate.js';
import { Rng } from '../prng.js';
import { commonVisible, type Visible } from './softmax.js';

/** Cluster centroids `[H|1, C, D]`. */
export interface RoutingCentroids {
  /** Row-major `[C, D]` per head. */
  readonly data: Float32Array;
  /** Distance between two heads' centroids in `data`; 0 when all heads share them. */
  readonly headStride: number;
  /** C, the number of clusters. */
  readonly clusters: number;
}

/** What the `routing` reference needs besides q, k, v. */
export interface RoutingSettings extends Common {
  /** w: queries and keys taken per cluster. */
  readonly window: number;
  readonly centroids: RoutingCentroids;
}

/** `u^ = u / max(|u|, 1e-12)` of `count` rows of length D from `data[offset..]`, in float64. */
function unitRows(data: ArrayLike<number>, offset: number, count: number, D: number): Float64Array {
  const out = new Float64Array(count * D);
  for (let n = 0; n < count; n++) {
    let sq = 0;
    for (let d = 0; d < D; d++) sq += data[offset + n * D + d] ** 2;
    const inverse = 1 / Math.max(Math.sqrt(sq), 1e-12);
    for (let d = 0; d < D; d++) out[n * D + d] = data[offset + n * D + d] * inverse;
  }
  return out;
}

/** The centroid of largest cosine with row n of the normalised points (float64; ties to the lower index). */
export function nearestCentroid(points: ArrayLike<number>, n: number, centroids: ArrayLike<number>, clusters: number, D: number): number {
  let best = 0;
  let bestCosine = -Infinity;
  for (let c = 0; c < clusters; c++) {
    let cosine = 0;
    for (let d = 0; d < D; d++) cosine += points[n * D + d] * centroids[c * D + d];
    if (cosine > bestCosine) {
      best = c;
      bestCosine = cosine;
    }
  }
  return best;
}

/**
 * Spherical k-means, one run per query head over that head's rows of every
 * batch (and those of the kv head it reads, under grouped-query attention),
 * normalised: for each batch in turn its Nq query rows, then its Nk key rows
 * (M = B (Nq + Nk) rows in this order). Initial centroids are C distinct rows
 * picked by a partial Fisher-Yates shuffle of the row indices with one
 * `Rng(seed)` (for each head in turn, t = 0..C-1: swap index t with index
 * `t + rng.int(M - t)` and take it). Each of `iterations` steps assigns every
 * row to the centroid of largest cosine (ties to the lower cluster), then
 * sets each centroid to the normalised sum of its members; a cluster with no
 * member keeps its centroid. Returns `[H, C, D]` float32 centroids; needs
 * `1 <= clusters <= M`.
 */
export function fitCentroids(q: Heads, k: Heads, clusters: number, iterations: number, seed: number): Float32Array {
  const { B, H, D } = q;
  const rows = B * (q.N + k.N);
  const out = new Float32Array(H * clusters * D);
  const rng = new Rng(seed);
  for (let h = 0; h < H; h++) {
    const points = new Float64Array(rows * D);
    for (let b = 0; b < B; b++) {
      const at = b * (q.N + k.N) * D;
      points.set(unitRows(q.data, (b * H + h) * q.N * D, q.N, D), at);
      points.set(unitRows(k.data, headOffset(k, b, h, H), k.N, D), at + q.N * D);
    }

    const order = Int32Array.from({ length: rows }, (_, n) => n);
    const centroids = new Float64Array(clusters * D);
    for (let t = 0; t < clusters; t++) {
      const pick = t + rng.int(rows - t);
      [order[t], order[pick]] = [order[pick], order[t]];
      centroids.set(points.subarray(order[t] * D, (order[t] + 1) * D), t * D);
    }

    const assigned = new Int32Array(rows).fill(-1);
    for (let step = 0; step < iterations; step++) {
      let changed = false;
      for (let n = 0; n < rows; n++) {
        const best = nearestCentroid(points, n, centroids, clusters, D);
        if (assigned[n] !== best) changed = true;
        assigned[n] = best;
      }
      // The update depends on the assignment alone: an unchanged assignment is a fixed point.
      if (!changed) break;
      const sums = new Float64Array(clusters * D);
      const members = new Int32Array(clusters);
      for (let n = 0; n < rows; n++) {
        members[assigned[n]]++;
        for (let d = 0; d < D; d++) sums[assigned[n] * D + d] += points[n * D + d];
      }
      for (let c = 0; c < clusters; c++) {
        if (members[c] > 0) centroids.set(unitRows(sums, c * D, 1, D), c * D);
      }
    }
    out.set(centroids, h * clusters * D);
  }
  return out;
}

/**
 * The indices of the `w` largest scores (ties to the lower index), all of
 * them when there are fewer, in increasing index order. A bounded heap keeps
 * the best w seen so far with the worst at its root: O(n log w), no full sort.
 */
export function topIndices(scores: Float64Array, w: number): Int32Array {
  // a is worse than b: lower score, or the same score at a higher index.
  const worse = (a: number, b: number): boolean => scores[a] < scores[b] || (scores[a] === scores[b] && a > b);
  const heap = new Int32Array(Math.min(w, scores.length));
  const siftDown = (from: number): void => {
    let at = from;
    for (;;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let worst = at;
      if (left < heap.length && worse(heap[left], heap[worst])) worst = left;
      if (right < heap.length && worse(heap[right], heap[worst])) worst = right;
      if (worst === at) return;
      [heap[at], heap[worst]] = [heap[worst], heap[at]];
      at = worst;
    }
  };
  for (let n = 0; n < heap.length; n++) heap[n] = n;
  for (let at = (heap.length >> 1) - 1; at >= 0; at--) siftDown(at);
  for (let n = heap.length; n < scores.length; n++) {
    if (heap.length > 0 && worse(heap[0], n)) {
      heap[0] = n;
      siftDown(0);
    }
  }
  return heap.sort();
}

/** Receives the softmax row of member query i in one cluster: weights over `keys[0..count)`. */
export type RowSink = (i: number, keys: Int32Array, weights: Float64Array, count: number) => void;

/** SPEC steps 1-2 for batch b, head h: every (cluster, member query) softmax row that sees a key. */
export function routeHead(q: Heads, k: Heads, s: RoutingSettings, visible: Visible, b: number, h: number, sink: RowSink): void {
  const { D } = q;
  const C = s.centroids.clusters;
  const qBase = (b * q.H + h) * q.N * D;
  const kBase = headOffset(k, b, h, q.H);
  const queryUnits = unitRows(q.data, qBase, q.N, D);
  const keyUnits = unitRows(k.data, kBase, k.N, D);
  const centroidUnits = unitRows(s.centroids.data, h * s.centroids.headStride, C, D);
  const similarity = (units: Float64Array, count: number, c: number): Float64Array => {
    const out = new Float64Array(count);
    for (let n = 0; n < count; n++) {
      for (let d = 0; d < D; d++) out[n] += units[n * D + d] * centroidUnits[c * D + d];
    }
    return out;
  };

  const keys = new Int32Array(Math.min(s.window, k.N));
  const weights = new Float64Array(keys.length);
  for (let c = 0; c < C; c++) {
    // Step 1: the cluster's w closest queries and, separately, its w closest keys.
    const memberQueries = topIndices(similarity(queryUnits, q.N, c), s.window);
    const memberKeys = topIndices(similarity(keyUnits, k.N, c), s.window);
    // Step 2: each member query attends the member keys it may see.
    for (const i of memberQueries) {
      let count = 0;
      let max = -Infinity;
      for (const j of memberKeys) {
        if (!visible(b, h, i, j)) continue;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q.data[qBase + i * D + d] * k.data[kBase + j * D + d];
        keys[count] = j;
        weights[count] = s.scale * dot;
        if (weights[count] > max) max = weights[count];
        count++;
      }
      if (count === 0) continue;
      let sum = 0;
      for (let t = 0; t < count; t++) {
        weights[t] = Math.exp(weights[t] - max);
        sum += weights[t];
      }
      for (let t = 0; t < count; t++) weights[t] /= sum;
      sink(i, keys, weights, count);
    }
  }
}

/** `routing` output `[B, H, Nq, Dv]`. */
export function routingAttention(q: Heads, k: Heads, v: Heads, s: RoutingSettings): Float32Array {
  const { B, H, N: Nq } = q;
  const Dv = v.D;
  const out = new Float32Array(B * H * Nq * Dv);
  const visible = commonVisible(s, Nq, k.N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const sums = new Float64Array(Nq * Dv);
      const joined = new Int32Array(Nq);
      const vBase = headOffset(v, b, h, H);
      routeHead(q, k, s, visible, b, h, (i, keys, weights, count) => {
        joined[i]++;
        for (let t = 0; t < count; t++) {
          for (let d = 0; d < Dv; d++) sums[i * Dv + d] += weights[t] * v.data[vBase + keys[t] * Dv + d];
        }
      });
      // Step 3: the mean over the clusters the query joined and saw a key in; 0 when none.
      for (let i = 0; i < Nq; i++) {
        if (joined[i] > 0) for (let d = 0; d < Dv; d++) sums[i * Dv + d] /= joined[i];
      }
      out.set(sums, (b * H + h) * Nq * Dv);
    }
  }
  return out;
}

/** The dense `[B, H, Nq, Nk]` matrix `routing` applies: the mean of the query's cluster softmax rows. */
export function routingWeights(q: Heads, k: Heads, s: RoutingSettings): Float32Array {
  const { B, H, N: Nq } = q;
  const Nk = k.N;
  const out = new Float32Array(B * H * Nq * Nk);
  const visible = commonVisible(s, Nq, Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const sums = new Float64Array(Nq * Nk);
      const joined = new Int32Array(Nq);
      routeHead(q, k, s, visible, b, h, (i, keys, weights, count) => {
        joined[i]++;
        for (let t = 0; t < count; t++) sums[i * Nk + keys[t]] += weights[t];
      });
      for (let i = 0; i < Nq; i++) {
        if (joined[i] > 0) for (let j = 0; j < Nk; j++) sums[i * Nk + j] /= joined[i];
      }
      out.set(sums, (b * H + h) * Nq * Nk);
    }
  }
  return out;
}
