/**
 * Accuracy: how close each approximate variant's output is to exact
 * attention on the same inputs, on data with structure as well as noise:
 *
 * - `iid`: q, k, v uniform in [-1, 1) (no structure: attention is diffuse);
 * - `clustered`: every position belongs to one of 16 clusters (scattered
 *   over the sequence); q and k are the cluster's centroid plus noise, v the
 *   cluster's value plus noise, so attention concentrates on a cluster;
 * - `local`: q, k and v drift along the sequence (a first-order
 *   autoregressive process), so nearby positions are correlated and
 *   attention concentrates near the diagonal.
 *
 * Errors are over the whole `[1, H, N, D]` output: mean and max absolute
 * error, and the mean over rows of the cosine similarity of a row with the
 * exact row (a row of zeros against a non-zero row counts 0).
 */
import type { Attention, Tensor } from 'wasm-attention';
import { benchCases, variantOf, type CaseContext } from './suite.js';

export const DATASETS = ['iid', 'clustered', 'local'] as const;
export type Dataset = (typeof DATASETS)[number];

export interface AccuracyRow {
  variant: string;
  dataset: Dataset;
  N: number;
  H: number;
  /** What the output is compared with. */
  reference: string;
  meanAbs: number;
  maxAbs: number;
  cosine: number;
  /** Mean absolute value of the reference output (the scale the errors compare with). */
  refMeanAbs: number;
  error?: string;
  /** Why it was not measured (the quick sweep's time budget). */
  skipped?: string;
}

/** A seeded generator: uniform (mulberry32) and standard normal (Box-Muller) draws. */
function generator(seed: number) {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

/** q, k, v `[1, H, N, D]` of a dataset. */
export function makeInputs(dataset: Dataset, N: number, H: number, D: number, seed = 7): { q: Tensor; k: Tensor; v: Tensor } {
  const g = generator(seed);
  const size = H * N * D;
  const [q, k, v] = [new Float32Array(size), new Float32Array(size), new Float32Array(size)];
  if (dataset === 'iid') {
    for (const x of [q, k, v]) for (let i = 0; i < size; i++) x[i] = 2 * g.uniform() - 1;
  } else if (dataset === 'clustered') {
    // centroids of norm ~ 0.8 sqrt(D): same-cluster logits ~ 5, others ~ N(0, 0.6^2)
    const clusters = 16;
    for (let h = 0; h < H; h++) {
      const centre = Array.from({ length: clusters }, () => Float64Array.from({ length: D }, () => 0.8 * g.normal()));
      const value = Array.from({ length: clusters }, () => Float64Array.from({ length: D }, () => g.normal()));
      for (let n = 0; n < N; n++) {
        const c = Math.floor(g.uniform() * clusters);
        for (let d = 0; d < D; d++) {
          const i = (h * N + n) * D + d;
          q[i] = centre[c][d] + 0.3 * g.normal();
          k[i] = centre[c][d] + 0.3 * g.normal();
          v[i] = value[c][d] + 0.5 * g.normal();
        }
      }
    }
  } else {
    // x_n = rho x_(n-1) + sqrt(1 - rho^2) e_n: correlation rho^|i - j| between positions
    const drift = (x: Float32Array, rho: number, sigma: number, noise: Float32Array | null) => {
      const c = Math.sqrt(1 - rho * rho);
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < D; d++) {
          let state = g.normal();
          for (let n = 0; n < N; n++) {
            state = rho * state + c * g.normal();
            const i = (h * N + n) * D + d;
            x[i] = sigma * state + (noise ? noise[i] : 0);
          }
        }
      }
    };
    drift(q, 0.95, 0.8, null);
    // k is q's process plus a little noise, so q_i . k_j ~ 0.64 D 0.95^|i - j|: logits ~ 5 near the diagonal, ~ 0.2 at distance 64
    const noise = Float32Array.from({ length: size }, () => 0.2 * g.normal());
    k.set(q);
    for (let i = 0; i < size; i++) k[i] += noise[i];
    drift(v, 0.9, 1, null);
  }
  const dims = [1, H, N, D];
  return { q: { data: q, dims }, k: { data: k, dims }, v: { data: v, dims } };
}

/** Mean and max absolute error and mean row cosine of `out` against `ref` (rows of length D). */
export function compare(out: Float32Array, ref: Float32Array, D: number): { meanAbs: number; maxAbs: number; cosine: number; refMeanAbs: number } {
  let sum = 0;
  let max = 0;
  let refSum = 0;
  let cosSum = 0;
  const rows = ref.length / D;
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    let nOut = 0;
    let nRef = 0;
    for (let d = r * D; d < (r + 1) * D; d++) {
      const e = Math.abs(out[d] - ref[d]);
      sum += e;
      if (e > max || Number.isNaN(e)) max = e;
      refSum += Math.abs(ref[d]);
      dot += out[d] * ref[d];
      nOut += out[d] * out[d];
      nRef += ref[d] * ref[d];
    }
    cosSum += nOut > 0 && nRef > 0 ? dot / Math.sqrt(nOut * nRef) : nOut === nRef ? 1 : 0;
  }
  return { meanAbs: sum / ref.length, maxAbs: max, cosine: cosSum / rows, refMeanAbs: refSum / ref.length };
}

/** The cases among `caseIds` that have an accuracy row: not full itself, not `noAccuracy`. */
export const accuracyCases = (caseIds: string[]) => caseIds.filter((id) => variantOf(id) !== 'full' && !benchCases[id].noAccuracy);

/**
 * Every accuracy case among `caseIds` against its exact counterpart, on
 * every dataset; `skip` maps cases not to run to the reason.
 */
export function measureAccuracy(
  attn: Attention,
  caseIds: string[],
  { N, H, D, progress, skip = new Map() }: { N: number; H: number; D: number; progress?: (message: string) => void; skip?: Map<string, string> },
): AccuracyRow[] {
  const rows: AccuracyRow[] = [];
  const ids = accuracyCases(caseIds);
  for (const dataset of DATASETS) {
    const { q, k, v } = makeInputs(dataset, N, H, D);
    const ctx: CaseContext = { N, H, D, q, k };
    let exact: Tensor | null = null;
    for (const id of ids) {
      const c = benchCases[id];
      const name = variantOf(id) as Parameters<Attention['apply']>[0];
      progress?.(`accuracy ${dataset} N=${N}: ${id}`);
      const qIn = c.nullInputs === 'qk' ? null : q;
      const kIn = c.nullInputs ? null : k;
      const reference = c.exact ? c.exact.label : 'full';
      if (skip.has(id)) {
        rows.push({ variant: id, dataset, N, H, reference, meanAbs: NaN, maxAbs: NaN, cosine: NaN, refMeanAbs: NaN, skipped: skip.get(id) });
        continue;
      }
      try {
        const maxN = c.maxN?.N ?? Infinity;
        if (N > maxN) throw new Error(`N > ${maxN}: ${c.maxN!.why}`);
        const out = attn.apply(name, qIn, kIn, v, c.options(ctx)).data;
        let ref: Float32Array;
        if (c.exact) ref = attn.apply(name, qIn, kIn, v, c.exact.options(ctx)).data;
        else ref = (exact ??= attn.full(q, k, v)).data;
        rows.push({ variant: id, dataset, N, H, reference, ...compare(out, ref, D) });
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        rows.push({ variant: id, dataset, N, H, reference, meanAbs: NaN, maxAbs: NaN, cosine: NaN, refMeanAbs: NaN, error });
      }
    }
  }
  return rows;
}
