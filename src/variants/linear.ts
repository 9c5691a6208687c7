/**
 * `linear`: attention with the order of operations changed (SPEC "Changing
 * the order of operations"), `out_i = phi(q_i)^T S / (phi(q_i)^T z + eps)`
 * with `S = sum_j phi(k_j) v_j^T` and `z = sum_j phi(k_j)`: O(N) instead of
 * O(N^2). Feature maps: elu + 1 (Katharopoulos et al. 2020), relu, Performer
 * FAVOR+ (Choromanski et al. 2021), RFA (Peng et al. 2021), and Efficient
 * Attention (Shen et al. 2021).
 */
import { FEATURE_MAPS, LinearRecurrentState, linearAttention, linearWeights, type FeatureMap, type LinearConfig, type Projection } from '../reference/linear.js';
import { Rng, seedOf } from '../prng.js';
import type { Runtime } from '../runtime/runtime.js';
import { scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import type { WasmTensor } from '../runtime/arena.js';
import { declareOptions, rejectUndeclared } from '../options.js';
import { asTensor, describe, headOffset, MAX_AXIS, type Heads, type Tensor } from '../tensor.js';
import { asOptions, checkFits, commonOptions, drawSizes, headParam, optionalNumber, parseCommon, rejectCausal, requiredNumber, type Common, type CommonOptions, type Options } from '../validate.js';
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
  linearStateBytes(slices: number, F: number, Dv: number, wtFloats: number): number;
  linearStateProjection(): number;
  linearStateInit(st: number, slices: number, H: number, kind: number, D: number, Dv: number, F: number, M: number, wtFloats: number, wtHeadStride: number, scale: number, logEps: number): void;
  linearStateReset(st: number): void;
  linearStep(st: number, q: number, k: number, v: number, pad: number, out: number, s0: number, s1: number): void;
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

/** Options of `attn.linearState(options)`: the sizes of one token and the `linear` options (causal is implied). */
export interface LinearStateOptions extends Omit<LinearOptions, 'causal' | 'keyPadding'> {
  /** Batch size B; default 1. */
  batch?: number;
  /** Heads H; default 1. */
  heads?: number;
  /** Query and key size D. */
  dim: number;
  /** Value size Dv; default `dim`. */
  valueDim?: number;
}

/**
 * Causal linear attention one token at a time (autoregressive decoding):
 * `step` gives exactly the rows of `attn.linear(q, k, v, { causal: true, ...
 * })`, in O(F Dv) per token whatever its position (F = D, M or 2M features).
 */
export interface LinearState {
  /** Where the state lives: WebAssembly memory ('wasm') or a float64 JS array ('js'). */
  readonly backend: 'wasm' | 'js';
  /** Tokens stepped since creation or the last `reset()`. */
  readonly position: number;
  /**
   * Adds token t's key and value to the state, then answers its query.
   * `q`, `k`: `[B, H, D]` (or `[H, D]` when B = 1, `[D]` when B = H = 1, or a
   * bare Float32Array of B H D values); `v`: `[B, H, Dv]` likewise.
   * `keyPadding`: `Uint8Array [B]`, 0 keeps that batch's key out (its query
   * is still answered). Returns `[B, H, Dv]` in q's rank.
   */
  step(q: Tensor | Float32Array, k: Tensor | Float32Array, v: Tensor | Float32Array, keyPadding?: Uint8Array | null): Tensor;
  /** Forgets every token: the next step is position 0. */
  reset(): void;
  /** Frees the WebAssembly memory of the state (a no-op for 'js'); the state must not be used afterwards. */
  dispose(): void;
}

const STATE_SIZES = ['batch', 'heads', 'dim', 'valueDim'] as const;

const { causal: _causal, keyPadding: _keyPadding, ...stepOptions } = linearOptions;

/** The declaration of {@link LinearStateOptions}: linear's options but causal and keyPadding, and the sizes. */
export const linearStateOptions = declareOptions<LinearStateOptions>()({
  ...stepOptions,
  batch: { type: '`number`', doc: 'batch size B; default 1' },
  heads: { type: '`number`', doc: 'heads H; default 1' },
  dim: { type: '`number`', doc: 'query and key size D' },
  valueDim: { type: '`number`', doc: 'value size Dv; default `dim`' },
});

/**
 * A recurrent state for causal `linear` attention, wired as
 * `attn.linearState(options)`: WebAssembly-backed when `runtime` is given
 * (the float64 sums kept in a pinned block of WebAssembly memory, freed by
 * `dispose()`), the float64 JS reference otherwise.
 */
export function createLinearState(runtime: Runtime | null, options: LinearStateOptions): LinearState {
  const o = asOptions(options) as Options;
  // sizes of the tokens' axes, as long as a tensor's may be
  const size = { integer: true, min: 1, max: MAX_AXIS };
  const D = requiredNumber(o, 'dim', size);
  const B = optionalNumber(o, 'batch', 1, size);
  const H = optionalNumber(o, 'heads', 1, size);
  const Dv = optionalNumber(o, 'valueDim', D, size);
  for (const key of ['causal', 'keyPadding'] as const) {
    if (o[key] !== undefined) throw new RangeError(`options.${key}: a recurrent state is causal and takes keyPadding per step, received ${key} = ${describe(o[key])}`);
  }
  rejectUndeclared(o, linearStateOptions, 'linearState', 'options');
  if (parseFeatureMap(o.featureMap) === 'efficient') {
    throw new RangeError(`options.featureMap: 'efficient' normalises keys over the whole sequence and has no recurrent form, received 'efficient'`);
  }
  const rest: Record<string, unknown> = { ...o, causal: true };
  for (const key of STATE_SIZES) delete rest[key];
  const head = (d: number): Heads => ({ data: new Float32Array(0), B, H, N: 0, D: d, rank: 4, layout: 'bhnd' });
  const parsed = linear.parse({ q: head(D), k: head(D), v: head(Dv) }, rest, () => {
    throw new Error('linear has no sub-variants');
  });
  // the float64 sums S [B, H, F, Dv], before any of it is allocated
  const F = featureCountOf(parsed, D);
  checkFits(B * H * F * Dv * 8, 'options.batch, options.heads, options.dim, options.valueDim', `a state of [B, H, F, Dv] = [${B}, ${H}, ${F}, ${Dv}] float64 sums`);
  const shape = { B, H, D, Dv };
  return runtime ? new WasmLinearState(runtime, parsed, shape) : new JsLinearState(parsed, shape);
}

interface StateShape {
  B: number;
  H: number;
  D: number;
  Dv: number;
}

/** A step input as a flat array of `width` values per (batch, head) slice, and the rank it came in. */
function tokenOf(x: unknown, name: string, { B, H }: StateShape, width: number, widthName: string): { data: Float32Array; rank: number } {
  const expected = B * H * width;
  if (x instanceof Float32Array) {
    if (x.length !== expected) throw new RangeError(`${name}: expected ${expected} values ([B, H, ${widthName}] = [${B}, ${H}, ${width}]), received ${x.length}`);
    return { data: x, rank: 3 };
  }
  const t = asTensor(x, name);
  const want = [B, H, width];
  const ok = (t.dims.length === 3 && t.dims.every((d, i) => d === want[i])) || (t.dims.length === 2 && B === 1 && t.dims[0] === H && t.dims[1] === width) || (t.dims.length === 1 && B === 1 && H === 1 && t.dims[0] === width);
  if (!ok) throw new RangeError(`${name}.dims: expected [B, H, ${widthName}] = [${want.join(', ')}] (or [H, ${widthName}] when B = 1, [${widthName}] when B = H = 1), received [${t.dims.join(', ')}]`);
  return { data: t.data, rank: t.dims.length };
}

function outputDims(rank: number, { B, H, Dv }: StateShape): number[] {
  return rank === 3 ? [B, H, Dv] : rank === 2 ? [H, Dv] : [Dv];
}

function readStep(shape: StateShape, q: unknown, k: unknown, v: unknown, keyPadding: unknown) {
  const qt = tokenOf(q, 'q', shape, shape.D, 'D');
  const kt = tokenOf(k, 'k', shape, shape.D, 'D');
  const vt = tokenOf(v, 'v', shape, shape.Dv, 'Dv');
  let pad: Uint8Array | null = null;
  if (keyPadding !== undefined && keyPadding !== null) {
    if (!(keyPadding instanceof Uint8Array)) throw new TypeError(`keyPadding: expected a Uint8Array [B], received ${describe(keyPadding)}`);
    if (keyPadding.length !== shape.B) throw new RangeError(`keyPadding: expected ${shape.B} values ([B]), received ${keyPadding.length}`);
    pad = keyPadding;
  }
  return { q: qt.data, k: kt.data, v: vt.data, pad, dims: outputDims(qt.rank, shape) };
}

/** The float64 reference state (JS backend). */
class JsLinearState implements LinearState {
  readonly backend = 'js';
  position = 0;
  private readonly state: LinearRecurrentState;

  constructor(
    parsed: LinearParsed,
    private readonly shape: StateShape,
  ) {
    this.state = new LinearRecurrentState(parsed, shape);
  }

  step(q: Tensor | Float32Array, k: Tensor | Float32Array, v: Tensor | Float32Array, keyPadding?: Uint8Array | null): Tensor {
    const t = readStep(this.shape, q, k, v, keyPadding);
    const data = this.state.step(t.q, t.k, t.v, t.pad);
    this.position++;
    return { data, dims: t.dims };
  }

  reset(): void {
    this.state.reset();
    this.position = 0;
  }

  dispose(): void {}
}

/** The state in a pinned block of WebAssembly memory: float64 S, z and the log scale per slice. */
class WasmLinearState implements LinearState {
  readonly backend = 'wasm';
  position = 0;
  private block: WasmTensor | null;
  private readonly x: LinearKernels;

  constructor(
    private readonly runtime: Runtime,
    parsed: LinearParsed,
    private readonly shape: StateShape,
  ) {
    const { B, H, D, Dv } = shape;
    const x = (this.x = runtime.exports as unknown as LinearKernels);
    const F = featureCountOf(parsed, D);
    const M = parsed.projection ? parsed.projection.M : 0;
    const wt = transposedProjection(parsed, D);
    const bytes = x.linearStateBytes(B * H, F, Dv, wt.data.length);
    this.block = runtime.arena.tensor([Math.ceil(bytes / 4)]);
    this.block.data.set(wt.data, x.linearStateProjection() / 4);
    x.linearStateInit(this.block.byteOffset, B * H, H, MAP_CODE[parsed.featureMap], D, Dv, F, M, wt.data.length, wt.headStride, parsed.scale, Math.log(parsed.eps));
  }

  private pointer(): number {
    if (!this.block) throw new Error('linearState: the state was disposed');
    return this.block.byteOffset;
  }

  step(q: Tensor | Float32Array, k: Tensor | Float32Array, v: Tensor | Float32Array, keyPadding?: Uint8Array | null): Tensor {
    const st = this.pointer();
    const t = readStep(this.shape, q, k, v, keyPadding);
    const { B, H, Dv } = this.shape;
    const outLength = B * H * Dv;
    const data = this.runtime.call('linearState.step', [t.q, t.k, t.v, outLength * 4, t.pad ?? 0], 3, outLength, ([qp, kp, vp, out, padp]) =>
      this.x.linearStep(st, qp, kp, vp, t.pad ? padp : 0, out, 0, B * H),
    );
    this.position++;
    return { data, dims: t.dims };
  }

  reset(): void {
    this.x.linearStateReset(this.pointer());
    this.position = 0;
  }

  dispose(): void {
    this.block?.free();
    this.block = null;
  }
}
