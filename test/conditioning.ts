/**
 * Which drawn calls a float32 kernel can be held to the float64 reference
 * on: a discrete choice (an LSH bucket, a routing cluster's members,
 * sinkhorn's main block under key padding) whose deciding values are closer
 * than float32 rounding can tell apart may go either way, legitimately. The
 * property suites discard such calls (with random unit-scale inputs they
 * are rare) instead of loosening the tolerance.
 */
import { readInputs } from '../dist/inputs.js';
import { lookup } from '../dist/registry.js';
import { fitCentroids } from '../dist/reference/routing.js';
import { sortMatrices, type SinkhornSettings } from '../dist/reference/sinkhorn.js';
import type { Heads } from '../dist/tensor.js';
import type { LinearParsed } from '../dist/variants/linear.js';
import type { LshParsed } from '../dist/variants/lsh.js';
import type { MixedParsed } from '../dist/variants/mixed.js';
import type { RoutingParsed } from '../dist/variants/routing.js';
import type { Inputs, Parsed } from '../dist/variants/variant.js';
import type { Call } from './arbitraries.js';

/**
 * How much float32 rounding a call's output can carry: the largest row sum
 * of |P| (1 for every softmax; more where the weights have signs, as
 * Linformer's projected keys and RFA's features give them), since each
 * term's rounding is taken with its weight. The tolerance is 1e-4 times it.
 */
export function rowWeight(P: Float32Array, Nk: number): number {
  let worst = 1;
  for (let row = 0; row < P.length / Nk; row++) {
    let sum = 0;
    for (let j = 0; j < Nk; j++) sum += Math.abs(P[row * Nk + j]);
    worst = Math.max(worst, sum);
  }
  return worst;
}

/**
 * Past this row weight a denominator is near cancellation (RFA's features are
 * not positive: the method's own weakness, SPEC "linear"); its rounding then
 * grows with the square of the weight, and such calls are discarded.
 */
export const MAX_ROW_WEIGHT = 100;

/** Decisions closer than this (on unit-scale values) are near-ties. */
const MARGIN = 1e-3;

/** Whether every discrete choice of the call is clear of near-ties (a call that does not parse is, trivially). */
export function wellConditioned(call: Call): boolean {
  let inputs: Inputs;
  let parsed: Parsed;
  try {
    const variant = lookup(call.name, 'name');
    inputs = readInputs(variant, call.q, call.k, call.v, true);
    parsed = variant.parse(inputs, call.options, lookup);
  } catch {
    return true;
  }
  return clear(call.name, inputs, parsed);
}

function clear(name: string, inputs: Inputs, parsed: Parsed): boolean {
  switch (name) {
    case 'lsh':
      return lshClear(inputs.q!, parsed as LshParsed);
    case 'routing':
      return routingClear(inputs.q!, inputs.k!, parsed as RoutingParsed);
    case 'sinkhorn':
      return sinkhornClear(inputs.q!, inputs.k!, parsed as unknown as SinkhornSettings);
    case 'linear':
      return (parsed as LinearParsed).featureMap !== 'rfa' || rfaClear(inputs.q!, inputs.k!, parsed as LinearParsed);
    case 'mixed':
      return (parsed as MixedParsed).heads.every(({ variant, parsed: head }, h) =>
        clear(variant.name, { q: inputs.q && headOf(inputs.q, h), k: inputs.k && headOf(inputs.k, h), v: inputs.v && headOf(inputs.v, h) }, head),
      );
    default:
      return true;
  }
}

/** Head h of `[B, H, N, D]` as `[B, 1, N, D]`. */
function headOf(x: Heads, h: number): Heads {
  const data = new Float32Array(x.B * x.N * x.D);
  for (let b = 0; b < x.B; b++) data.set(x.data.subarray((b * x.H + h) * x.N * x.D, (b * x.H + h + 1) * x.N * x.D), b * x.N * x.D);
  return { data, B: x.B, H: 1, N: x.N, D: x.D, rank: 4 };
}

/** Every position's best hash score leads the runner-up by MARGIN, in every round. */
function lshClear(x: Heads, p: LshParsed): boolean {
  const { data, headStride, rounds, buckets } = p.rotations;
  const half = buckets / 2;
  const { D } = x;
  for (let b = 0; b < x.B; b++) {
    for (let h = 0; h < x.H; h++) {
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < x.N; i++) {
          const scores: number[] = [];
          for (let m = 0; m < half; m++) {
            let dot = 0;
            for (let d = 0; d < D; d++) dot += x.data[((b * x.H + h) * x.N + i) * D + d] * data[h * headStride + (r * D + d) * half + m];
            scores.push(dot, -dot);
          }
          if (!separated(scores, 1)) return false;
        }
      }
    }
  }
  return true;
}

/** The w-th and (w+1)-th cosine to every centroid differ by MARGIN, for queries and for keys. */
function routingClear(q: Heads, k: Heads, p: RoutingParsed): boolean {
  const C = p.centroids ? p.centroids.clusters : p.fit!.clusters;
  const centroids = p.centroids ?? { data: fitCentroids(q, k, C, p.fit!.iterations, p.fit!.seed), headStride: C * q.D };
  for (let b = 0; b < q.B; b++) {
    for (let h = 0; h < q.H; h++) {
      for (let c = 0; c < C; c++) {
        const mu = unit(centroids.data, h * centroids.headStride + c * q.D, q.D);
        for (const x of [q, k]) {
          if (p.window >= x.N) continue;
          const cosines = Array.from({ length: x.N }, (_, n) => dot(unit(x.data, ((b * x.H + h) * x.N + n) * x.D, x.D), mu));
          cosines.sort((a, z) => z - a);
          if (cosines[p.window - 1] - cosines[p.window] < MARGIN) return false;
        }
      }
    }
  }
  return true;
}

/** With key padding, each row of S picks its main block by a MARGIN. */
function sinkhornClear(q: Heads, k: Heads, s: SinkhornSettings): boolean {
  if (!s.keyPadding) return true;
  const nb = q.N / s.blockSize;
  const S = sortMatrices(q, k, s);
  for (let row = 0; row < S.length / nb; row++) {
    const values = Array.from(S.subarray(row * nb, (row + 1) * nb));
    if (values.some((x) => x > 0) && !separated(values, 1)) return false;
  }
  return true;
}

/**
 * RFA's features have signs, so a denominator `phi(q_i) . z + eps` may cancel
 * (the method's own weakness, SPEC "linear"); its float32 rounding is then
 * that of its terms, and the output's that much larger. A row whose
 * denominator is below 1/MAX_CANCELLATION of the sum of its terms' sizes is
 * too close to 0 to be held to 1e-4.
 */
const MAX_CANCELLATION = 20;

function rfaClear(q: Heads, k: Heads, p: LinearParsed): boolean {
  const { M, data, headStride } = p.projection!;
  const features = (x: Heads, b: number, h: number, n: number): number[] => {
    const row = unit(x.data, ((b * x.H + h) * x.N + n) * x.D, x.D);
    const angles = Array.from({ length: M }, (_, m) => dot(row, Array.from(data.subarray(h * headStride + m * x.D, h * headStride + (m + 1) * x.D))));
    return [...angles.map(Math.sin), ...angles.map(Math.cos)].map((f) => f / Math.sqrt(M));
  };
  const shift = k.N - q.N;
  for (let b = 0; b < q.B; b++) {
    for (let h = 0; h < q.H; h++) {
      const keys = Array.from({ length: k.N }, (_, j) => features(k, b, h, j));
      for (let i = 0; i < q.N; i++) {
        const phi = features(q, b, h, i);
        let den = p.eps;
        let size = p.eps;
        keys.forEach((key, j) => {
          if ((p.causal && j > i + shift) || (p.keyPadding && p.keyPadding[b * k.N + j] === 0)) return;
          key.forEach((f, t) => {
            den += phi[t] * f;
            size += Math.abs(phi[t] * f);
          });
        });
        if (size > 0 && Math.abs(den) * MAX_CANCELLATION < size) return false;
      }
    }
  }
  return true;
}

/** The largest value leads the next by MARGIN (relative to `scale`). */
function separated(values: number[], scale: number): boolean {
  if (values.length < 2) return true;
  const sorted = [...values].sort((a, z) => z - a);
  return sorted[0] - sorted[1] >= MARGIN * scale;
}

function unit(data: ArrayLike<number>, offset: number, D: number): number[] {
  const row = Array.from({ length: D }, (_, d) => data[offset + d]);
  const norm = Math.max(Math.hypot(...row), 1e-12);
  return row.map((x) => x / norm);
}

function dot(a: number[], b: number[]): number {
  return a.reduce((sum, x, d) => sum + x * b[d], 0);
}
