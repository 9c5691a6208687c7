/**
 * `linear`: attention with the order of operations changed (SPEC "Changing
 * the order of operations"), `out_i = phi(q_i)^T S / (phi(q_i)^T z + eps)`
 * with `S = sum_j phi(k_j) v_j^T` and `z = sum_j phi(k_j)`: O(N) instead of
 * O(N^2). Feature maps: elu + 1 (Katharopoulos et al. 2020), relu, Performer
 * FAVOR+ (Choromanski et al. 2021), RFA (Peng et al. 2021), and Efficient
 * Attention (Shen et al. 2021). Its one-token-at-a-time form
 * (`attn.linearState`) is in linear-state.ts.
 */
import { FEATURE_MAPS, linearAttention, linearWeights, type FeatureMap, type LinearConfig, type Projection } from '../reference/linear.js';
import { Rng, seedOf } from '../prng.js';
import type { Runtime } from '../runtime/runtime.js';
import { scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import { declareOptions } from '../options.js';
import { asTensor, describe, headOffset, type Heads, type Tensor } from '../tensor.js';
import { checkFits, commonOptions, drawSizes, headParam, optionalNumber, parseCommon, rejectCausal, requiredNumber, type Common, type CommonOptions, type Options } from '../validate.js';
import { qkvProblem } from './full.js';
import type { Parsed, Variant } from './variant.js';

/** Options of `attn.linear(q, k, v, options)`. */
export interface LinearOptions extends CommonOptions {
  /**
   * The feature map phi (default `'elu'`):
   * - `'elu'`: `phi(x) = elu(x) + 1` (Katharopoulos et al. 2020);
   * - `'relu'`: `phi(x) = relu(x)`;
   * - `'favor'`: Performer FAVOR+ positive random features
   *   `M^(-1/2) exp(w_m . x' - |x'|^2 / 2)`, `x' = sqrt(scale) x`, estimating
   *   `exp(scale q . k)`; needs `projection` or `numFeatures` + `seed`;
   * - `'rfa'`: Random Feature Attention, `M^(-1/2) [sin(W x^), cos(W x^)]`
   *   of the l2-normalised input, estimating `softmax(sigma^2 q^ . k^)`
   *   (`scale` does not apply); needs `projection` or `numFeatures` + `seed`;
   * - `'efficient'`: Efficient Attention (Shen et al. 2021),
   *   `softmax_rows(q) (softmax_columns(k)^T v)`; cannot be causal.
   *
   * `scale` is used by `'favor'` only.
   */
  featureMap?: FeatureMap;
  /** Added to every denominator `phi(q_i)^T z + eps`; default `1e-6`, at least 0. Not used by `'efficient'`. */
  eps?: number;
  /**
   * `'favor'` / `'rfa'`: the random projection `[H|1, M, D]` or `[M, D]` (M
   * features, the rows `w_m`). Give either this or `numFeatures` and `seed`.
   */
  projection?: Tensor;
  /**
   * `'favor'` / `'rfa'`: draw an M x D projection, shared by all heads, with
   * the library's seeded PRNG (`favorProjection` / `rfaProjection`). M >= 1.
   */
  numFeatures?: number;
  /** Seed of the drawn projection (an integer, taken modulo 2^32); required with `numFeatures`. */
  seed?: number;
  /** `'rfa'` with `numFeatures`: the rows are drawn from `N(0, sigma^2 I)`; default 1, > 0. */
  sigma?: number;
}

/** Parsed `linear` options: the common options and what the math needs. */
export interface LinearParsed extends Parsed, Common, LinearConfig {}

const RANDOM_OPTIONS = ['projection', 'numFeatures', 'seed', 'sigma'] as const;

/** options.featureMap, checked: 'elu' when absent. */
export function parseFeatureMap(value: unknown): FeatureMap {
  if (value === undefined) return 'elu';
  if (typeof value !== 'string') throw new TypeError(`options.featureMap: expected one of ${FEATURE_MAPS.map((m) => `'${m}'`).join(', ')}, received ${describe(value)}`);
  if (!(FEATURE_MAPS as readonly string[]).includes(value)) {
    throw new RangeError(`options.featureMap: expected one of ${FEATURE_MAPS.map((m) => `'${m}'`).join(', ')}, received ${describe(value)}`);
  }
  return value as FeatureMap;
}

/**
 * The projection of `favor` / `rfa`: given (`projection`), or drawn from
 * `numFeatures` and `seed` (and `sigma` for rfa). Exactly one way.
 */
function parseProjection(options: Options, featureMap: 'favor' | 'rfa', H: number, D: number): Projection {
  if (featureMap === 'favor' && options.sigma !== undefined) {
    throw new RangeError(`options.sigma: only featureMap 'rfa' draws with a sigma, received sigma = ${describe(options.sigma)} with featureMap 'favor'`);
  }
  if (options.projection !== undefined) {
    for (const key of ['numFeatures', 'seed', 'sigma'] as const) {
      if (options[key] !== undefined) {
        throw new RangeError(`options.${key}: draws a projection, but options.projection is given; pass one or the other, received ${key} = ${describe(options[key])}`);
      }
    }
    const dims = asTensor(options.projection, 'options.projection').dims;
    const M = dims.length >= 2 ? dims[dims.length - 2] : 0;
    const { data, headStride } = headParam(options.projection, 'options.projection', H, [M, D], 'M, D');
    if (M < 1) throw new RangeError(`options.projection.dims: expected at least one feature (M >= 1), received [${dims.join(', ')}]`);
    return { data, headStride, M };
  }
  if (options.numFeatures === undefined) {
    throw new TypeError(`options.projection: featureMap '${featureMap}' needs options.projection [H|1, M, D] or options.numFeatures and options.seed, received neither`);
  }
  const M = requiredNumber(options, 'numFeatures', { integer: true, min: 1 });
  checkFits((featureMap === 'favor' ? favorDrawFloats(M, D) : M * D) * 4, 'options.numFeatures', `drawing the projection [M, D] = [${M}, ${D}]`);
  if (options.seed === undefined) throw new TypeError(`options.seed: required with options.numFeatures to draw the projection, received undefined`);
  const seed = seedOf(options.seed, 'options.seed');
  if (featureMap === 'favor') return { data: favorProjection(M, D, seed).data, headStride: 0, M };
  const sigma = optionalNumber(options, 'sigma', 1, { above: 0 });
  const { data } = rfaProjection(M, D, seed, sigma);
  // the draws reach float32: a sigma that overflows it would make every feature NaN
  if (!data.every(Number.isFinite)) throw new RangeError(`options.sigma: the projection drawn with it overflows float32, received ${sigma}`);
  return { data, headStride: 0, M };
}

/** The declaration of {@link LinearOptions}. */
export const linearOptions = declareOptions<LinearOptions>()({
  ...commonOptions,
  featureMap: { type: "`'elu' | 'relu' | 'favor' | 'rfa' | 'efficient'`", doc: 'the feature map phi; default `\'elu\'`' },
  eps: { type: '`number`', doc: 'added to every denominator; default `1e-6`' },
  projection: { type: '`Tensor`', doc: '`[H|1, M, D]` random features of `favor` / `rfa` (or `numFeatures`, `seed`)' },
  numFeatures: { type: '`number`', doc: 'features M drawn with `seed`' },
  seed: { type: '`number`', doc: 'seed of the drawn projection' },
  sigma: { type: '`number`', doc: '`rfa` with `numFeatures`: rows drawn from `N(0, sigma^2 I)`; default 1' },
});

export const linear: Variant<LinearParsed> = {
  name: 'linear',
  inputs: { q: 'required', k: 'required' },
  options: linearOptions,
  parse(inputs, options) {
    const problem = qkvProblem(inputs);
    const common = parseCommon(options, problem.D, problem.B, problem.Nk);
    const featureMap = parseFeatureMap(options.featureMap);
    const eps = optionalNumber(options, 'eps', 1e-6, { min: 0 });
    if (featureMap === 'efficient') rejectCausal(common, "featureMap 'efficient'");
    if (featureMap === 'favor' && common.scale < 0) {
      throw new RangeError(`options.scale: featureMap 'favor' takes sqrt(scale), so scale must be >= 0, received ${common.scale}`);
    }
    let projection: Projection | null = null;
    if (featureMap === 'favor' || featureMap === 'rfa') projection = parseProjection(options, featureMap, problem.H, problem.D);
    else {
      for (const key of RANDOM_OPTIONS) {
        if (options[key] !== undefined) {
          throw new RangeError(`options.${key}: only featureMap 'favor' or 'rfa' uses random features, received ${key} with featureMap '${featureMap}'`);
        }
      }
    }
    return { problem, ...common, featureMap, eps, projection };
  },
  reference({ q, k, v }, p) {
    return linearAttention(q!, k!, v!, p);
  },
  weights({ q, k }, p) {
    const { B, H, Nq, Nk } = p.problem;
    return { data: linearWeights(q!, k!, p), dims: [B, H, Nq, Nk] };
  },
  plan(runtime, { q, k, v }, p) {
    return linearPlan(runtime, q!, k!, v!, p);
  },
  kernel(runtime, { q, k, v }, p) {
    return runtime.execute(linearPlan(runtime, q!, k!, v!, p));
  },
};

/** The kernels of assembly/variants/linear.ts. */
interface LinearKernels {
  /** Rows per chunk: causal calls start at multiples of it. */
  linearChunk(): number;
  /** Bytes of one head's context (state and scratch). */
  linearBytes(F: number, Dv: number): number;
  /** Starts a head: map code, sizes, its transposed projection [D][M] (or 0), scale (favor), log(eps). */
  linearHead(ctx: number, kind: number, D: number, Dv: number, F: number, M: number, wt: number, scale: number, logEps: number): void;
  /** Not causal: keys [j0, j1) of the head into the state. */
  linearAddKeys(ctx: number, k: number, v: number, pad: number, j0: number, j1: number): void;
  /** Not causal: output rows [i0, i1) once every key is in. */
  linearQueryRows(ctx: number, q: number, out: number, i0: number, i1: number): void;
  /** Causal: output rows [i0, i1), calls in row order, i0 a multiple of linearChunk(). */
  linearCausalRows(ctx: number, q: number, k: number, v: number, pad: number, out: number, Nq: number, Nk: number, i0: number, i1: number): void;
}

/** Feature map codes of the kernels. */
export const MAP_CODE: Record<FeatureMap, number> = { elu: 0, relu: 1, favor: 2, rfa: 3, efficient: 4 };

/** Features per row: D, M (favor) or 2M (rfa). */
export function featureCountOf(p: LinearConfig, D: number): number {
  if (p.featureMap === 'favor') return p.projection!.M;
  if (p.featureMap === 'rfa') return 2 * p.projection!.M;
  return D;
}

/**
 * The projection as the kernels read it: each head's `[D][M]` (transposed,
 * so the GEMM's B rows are contiguous), times sqrt(scale) for favor
 * (`x' = sqrt(scale) x`). `headStride` 0 when shared by all heads.
 */
export function transposedProjection(p: LinearConfig, D: number): { data: Float32Array; headStride: number } {
  const w = p.projection;
  if (!w || (p.featureMap !== 'favor' && p.featureMap !== 'rfa')) return { data: new Float32Array(0), headStride: 0 };
  const M = w.M;
  const heads = w.headStride === 0 ? 1 : w.data.length / (M * D);
  const factor = p.featureMap === 'favor' ? Math.sqrt(p.scale) : 1;
  const data = new Float32Array(heads * D * M);
  for (let h = 0; h < heads; h++) {
    for (let m = 0; m < M; m++) for (let d = 0; d < D; d++) data[(h * D + d) * M + m] = w.data[(h * M + m) * D + d] * factor;
  }
  return { data, headStride: w.headStride === 0 ? 0 : D * M };
}

/** Multiply-adds per call: V8 tiers a WebAssembly function up between calls, so long heads go in several. */
const WORK_PER_CALL = 2 ** 24;

/**
 * The SIMD kernel as a plan: one job per (batch, head), each starting a
 * context in its thread's scratch and running the head's O(N) calls of whole
 * chunks (causal rows in order through the running state; or every key,
 * then the query rows). The transposed projection is prepared here, in
 * TypeScript, as a part of the frame that every job reads.
 */
function linearPlan(runtime: Runtime, q: Heads, k: Heads, v: Heads, p: LinearParsed): JobPlan {
  const x = runtime.exports as unknown as LinearKernels;
  const { B, H, Nq, Nk, D, Dv } = p.problem;
  const F = featureCountOf(p, D);
  const M = p.projection ? p.projection.M : 0;
  const wt = transposedProjection(p, D);
  const kind = MAP_CODE[p.featureMap];
  const logEps = Math.log(p.eps);
  const pad = p.keyPadding;
  const outLength = B * H * Nq * Dv;
  const chunk = x.linearChunk();
  // rows per call, whole chunks: state read + update, the window product, the features
  const perRow = 2 * F * Dv + chunk * (F + Dv) + (M > 0 ? 2 * D * M : 2 * D);
  const rowsPerCall = chunk * Math.max(1, Math.floor(WORK_PER_CALL / (perRow * chunk)));
  const ctx = scratch(0);
  return {
    what: 'linear',
    parts: [q.data, k.data, v.data, outLength * 4, wt.data.length > 0 ? wt.data : 0, pad ?? 0],
    output: 3,
    length: outLength,
    scratch: [x.linearBytes(F, Dv)],
    jobs: ([qp, kp, vp, out, wtp, padp]) =>
      Array.from({ length: B * H }, (_, bh): Job => {
        const b = Math.floor(bh / H);
        const h = bh % H;
        const qHead = qp + bh * Nq * D * 4;
        // the kv head that query head h reads (grouped-query attention: shared, in place)
        const kHead = kp + headOffset(k, b, h, H) * 4;
        const vHead = vp + headOffset(v, b, h, H) * 4;
        const outHead = out + bh * Nq * Dv * 4;
        const padRow = pad ? padp + b * Nk : 0;
        const job: KernelCall[] = [['linearHead', ctx, kind, D, Dv, F, M, wt.data.length > 0 ? wtp + h * wt.headStride * 4 : 0, p.scale, logEps]];
        if (p.causal) {
          for (let i0 = 0; i0 < Nq; i0 += rowsPerCall) job.push(['linearCausalRows', ctx, qHead, kHead, vHead, padRow, outHead, Nq, Nk, i0, Math.min(Nq, i0 + rowsPerCall)]);
        } else {
          for (let j0 = 0; j0 < Nk; j0 += rowsPerCall) job.push(['linearAddKeys', ctx, kHead, vHead, padRow, j0, Math.min(Nk, j0 + rowsPerCall)]);
          for (let i0 = 0; i0 < Nq; i0 += rowsPerCall) job.push(['linearQueryRows', ctx, qHead, outHead, i0, Math.min(Nq, i0 + rowsPerCall)]);
        }
        return job;
      }),
  };
}

/**
 * Performer's orthogonal random features, `[M, D]`, drawn from
 * `new Rng(seed)` in this order:
 * 1. `ceil(M / D)` blocks, each a D x D matrix G of `rng.normal()` values,
 *    row-major (`G[r][c]` is draw `r * D + c` of the block). With `G = QR`
 *    (Gram-Schmidt over G's columns, R with a positive diagonal), the
 *    block's rows are the columns of Q: D orthonormal rows;
 * 2. then, for m = 0 .. M - 1, D more `rng.normal()` values: a fresh
 *    Gaussian D-vector whose norm becomes the length of row m.
 * The blocks are stacked and the first M rows kept (the last block is drawn
 * whole even when only part of it is kept), as in Performer's
 * `gaussian_orthogonal_random_matrix`.
 */
export function favorProjection(M: number, D: number, seed: number): { data: Float32Array; dims: [number, number] } {
  drawSizes({ M, D }, 'favorProjection', ([m, d]) => favorDrawFloats(m, d));
  const rng = new Rng(seedOf(seed, 'favorProjection.seed'));
  const blocks = Math.ceil(M / D);
  const rows = new Float64Array(blocks * D * D);
  for (let block = 0; block < blocks; block++) {
    const gaussian = new Float64Array(D * D);
    for (let i = 0; i < D * D; i++) gaussian[i] = rng.normal();
    rows.set(orthonormalColumns(gaussian, D), block * D * D);
  }
  const data = new Float32Array(M * D);
  for (let m = 0; m < M; m++) {
    let norm = 0;
    for (let d = 0; d < D; d++) norm += rng.normal() ** 2;
    norm = Math.sqrt(norm);
    for (let d = 0; d < D; d++) data[m * D + d] = norm * rows[m * D + d];
  }
  return { data, dims: [M, D] };
}

/** Float32 values' worth of memory drawing `favorProjection(M, D)` takes: its ceil(M / D) orthogonal D x D float64 blocks, or the result. */
function favorDrawFloats(M: number, D: number): number {
  return Math.max(M * D, 2 * Math.ceil(M / D) * D * D);
}

/**
 * The Q of `G = QR` for a row-major D x D matrix G, returned transposed (row
 * c = column c of Q): classical Gram-Schmidt over G's columns, each
 * orthogonalised twice ("twice is enough") so that float64 rounding leaves
 * no visible loss of orthogonality.
 */
function orthonormalColumns(g: Float64Array, D: number): Float64Array {
  const q = new Float64Array(D * D);
  const column = new Float64Array(D);
  for (let c = 0; c < D; c++) {
    for (let r = 0; r < D; r++) column[r] = g[r * D + c];
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < c; p++) {
        let dot = 0;
        for (let r = 0; r < D; r++) dot += column[r] * q[p * D + r];
        for (let r = 0; r < D; r++) column[r] -= dot * q[p * D + r];
      }
    }
    let norm = 0;
    for (let r = 0; r < D; r++) norm += column[r] ** 2;
    norm = Math.sqrt(norm);
    for (let r = 0; r < D; r++) q[c * D + r] = column[r] / norm;
  }
  return q;
}

/**
 * RFA's random Fourier projection, `[M, D]` with rows from `N(0, sigma^2 I)`:
 * `M * D` draws of `rng.normal()` from `new Rng(seed)`, row-major, each
 * times sigma.
 */
export function rfaProjection(M: number, D: number, seed: number, sigma: number): { data: Float32Array; dims: [number, number] } {
  drawSizes({ M, D }, 'rfaProjection', ([m, d]) => m * d);
  requiredNumber({ sigma }, 'sigma', { above: 0 }, 'rfaProjection');
  const rng = new Rng(seedOf(seed, 'rfaProjection.seed'));
  const data = new Float32Array(M * D);
  for (let i = 0; i < M * D; i++) data[i] = sigma * rng.normal();
  return { data, dims: [M, D] };
}
