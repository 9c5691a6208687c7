/**
 * `linear`: attention with the order of operations changed (SPEC "Changing
 * the order of operations"), `out_i = phi(q_i)^T S / (phi(q_i)^T z + eps)`
 * with `S = sum_j phi(k_j) v_j^T` and `z = sum_j phi(k_j)`: O(N) instead of
 * O(N^2). Feature maps: elu + 1 (Katharopoulos et al. 2020), relu, Performer
 * FAVOR+ (Choromanski et al. 2021), RFA (Peng et al. 2021), and Efficient
 * Attention (Shen et al. 2021).
 */
import { FEATURE_MAPS, linearAttention, linearWeights, type FeatureMap, type LinearConfig, type Projection } from '../reference/linear.js';
import { Rng, seedOf } from '../prng.js';
import { asTensor, describe, type Tensor } from '../tensor.js';
import { headParam, optionalNumber, parseCommon, rejectCausal, requiredNumber, type Common, type CommonOptions, type Options } from '../validate.js';
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

function parseFeatureMap(value: unknown): FeatureMap {
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
  if (options.seed === undefined) throw new TypeError(`options.seed: required with options.numFeatures to draw the projection, received undefined`);
  const seed = seedOf(options.seed, 'options.seed');
  const drawn = featureMap === 'favor' ? favorProjection(M, D, seed) : rfaProjection(M, D, seed, optionalNumber(options, 'sigma', 1, { above: 0 }));
  return { data: drawn.data, headStride: 0, M };
}

export const linear: Variant<LinearParsed> = {
  name: 'linear',
  inputs: { q: 'required', k: 'required' },
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
};

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
  const rng = new Rng(seed);
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
  const rng = new Rng(seed);
  const data = new Float32Array(M * D);
  for (let i = 0; i < M * D; i++) data[i] = sigma * rng.normal();
  return { data, dims: [M, D] };
}
