/**
 * The micro-benchmark suite: every registered variant and the peers, what
 * they run and at which sizes. THE one table of benchmark options is
 * `benchCases` below; a variant registered in src/registry.ts without a
 * case here is reported as "no benchmark options" (nothing else to edit).
 * bench/run.ts schedules, measures and reports.
 */
import { fitRoutingCentroids, linformerProjection, synthesizerParams, variantNames, type Tensor } from 'wasm-attention';

/** The problem every timing uses: B = 1, H heads of D features, N positions. */
export const H = 8;
export const D = 64;

/** The sweep's sizes; linear-time cases (growth <= 1) add `LINEAR_EXTRA`. */
export const SIZES = [256, 1024, 4096, 16384];
export const LINEAR_EXTRA = [65536];

/** What a case's options are computed from: the size and the call's q and k. */
export interface CaseContext {
  N: number;
  H: number;
  D: number;
  q: Tensor;
  k: Tensor;
}

/** One benchmark case of one variant. */
export interface BenchCase {
  /** The registered variant it calls; default: the case's key. */
  variant?: string;
  /**
   * Time grows as N^growth (2 for quadratic, 1 for linear-time): used to
   * predict a size's time from the one before, and growth <= 1 adds N = 65536.
   */
  growth: number;
  /** The options of the call at size N. */
  options(ctx: CaseContext): object;
  /** Inputs passed as null: 'k' for shared query-key lsh, 'qk' for synthesizer (ignores them). */
  nullInputs?: 'k' | 'qk';
  /** Largest N it can run, and why. */
  maxN?: { N: number; why: string };
  /** Accuracy: the exact counterpart to compare with, when it is not `full(q, k, v)`. */
  exact?: { label: string; options(ctx: CaseContext): object };
  /** Counted flops of one call, for GFLOP/s (exact attention only). */
  flops?: (N: number) => number;
  /** Not in the accuracy table (e.g. a second case of full). */
  noAccuracy?: boolean;
  /** One line on the setting, for the report. */
  note: string;
}

const attentionFlops = (N: number) => 4 * H * N * N * D;

const window = 64;
const globalTokens = [0, 1];
const strideSettings = { stride: 64, window: 8 };

/** Every case, keyed by the label of its rows. */
export const benchCases: Record<string, BenchCase> = {
  full: { growth: 2, options: () => ({}), flops: attentionFlops, note: 'exact softmax attention' },
  'full causal': {
    variant: 'full',
    growth: 2,
    options: () => ({ causal: true }),
    flops: (N) => 2 * H * N * (N + 1) * D, // the kept pairs only
    noAccuracy: true,
    note: 'full with causal: true (skips blocks above the diagonal)',
  },
  local: { growth: 1, options: () => ({ window }), note: `window ${window} each side` },
  strided: { growth: 1, options: () => strideSettings, note: `stride ${strideSettings.stride}, window ${strideSettings.window} strides each side` },
  global: { growth: 1, options: () => ({ tokens: globalTokens }), note: `${globalTokens.length} global tokens (alone: others see only them)` },
  sparse: {
    growth: 1,
    options: () => ({ patterns: [{ type: 'local', window }, { type: 'global', tokens: globalTokens }] }),
    note: `Longformer: local ${window} + ${globalTokens.length} global tokens`,
  },
  mixed: {
    growth: 1,
    options: ({ H: heads }) => ({
      heads: Array.from({ length: heads }, (_, h) => (h % 2 === 0 ? { kind: 'local', window } : { kind: 'strided', ...strideSettings })),
    }),
    note: `heads alternating local ${window} / strided ${strideSettings.stride}x${strideSettings.window}`,
  },
  lsh: {
    growth: 1,
    nullInputs: 'k',
    options: ({ N }) => ({ bucketSize: 64, rounds: 2, buckets: Math.max(2, 2 * Math.floor(N / 128)), seed: 1 }),
    // one chunk of N: every query sees every key (self hidden), whatever the hashes
    exact: { label: 'exact shared-QK attention (lsh with one chunk of N)', options: ({ N }) => ({ bucketSize: N, rounds: 1, buckets: 2, seed: 1 }) },
    note: 'Reformer: bucketSize 64, 2 rounds, N/64 buckets, shared QK',
  },
  routing: {
    growth: 1.5,
    options: ({ N, q, k }) => {
      const clusters = Math.max(1, Math.round(Math.sqrt(N)));
      // the centroids are a trained model's parameters: fitted once, outside the timed call
      return { window: Math.ceil(N / clusters), centroids: fitRoutingCentroids(q, k, { clusters, iterations: 3, seed: 1 }) };
    },
    note: 'sqrt(N) clusters of N/sqrt(N) members, centroids fitted once (3 k-means steps)',
  },
  sinkhorn: { growth: 1, options: ({ N }) => ({ blockSize: Math.min(64, N) }), note: 'blockSize 64' },
  linformer: {
    growth: 1,
    options: ({ N }) => ({ e: linformerProjection(Math.min(256, N), N, 1) }),
    note: 'P = 256 (min(256, N)), e = f = linformerProjection',
  },
  compressed: { growth: 2, options: () => ({ factor: 4 }), note: 'factor 4, mean pooling' },
  linear: { growth: 1, options: () => ({ featureMap: 'elu' }), note: 'elu + 1 feature map' },
  synthesizer: {
    growth: 2,
    nullInputs: 'qk',
    options: ({ N, H: heads }) => synthesizerParams('random', { H: heads, Nq: N, Nk: N }, 1),
    maxN: { N: 4096, why: 'its logits are H N^2 floats: 8 GiB at N = 16384, over the 4 GiB of WebAssembly memory' },
    note: 'random logits [H, N, N] (synthesizerParams)',
  },
};

/** The registered variant a case calls. */
export const variantOf = (id: string) => benchCases[id].variant ?? id;

/** Which implementation runs a row: our variants (wasm or js backend), or a peer. */
export interface Impl {
  /** The row's label. */
  id: string;
  kind: 'ours' | 'ours-js' | 'peer';
  /** bench/peers/<worker>.ts runs it. */
  worker: 'ours' | 'tfjs' | 'ort';
  /** Node flags of its process. */
  execArgv?: string[];
  params: Record<string, unknown>;
  growth: number;
  maxN?: { N: number; why: string };
  /** Peers are compared with our `full` as a family (the fastest of its rows at each N). */
  family?: string;
  /** Counted flops of one call (for GFLOP/s), where it is exact attention. */
  flops?: (N: number) => number;
  note: string;
}

/**
 * The peers' processes compile their WebAssembly with V8's optimising
 * compiler up front: by default V8 starts every function in baseline code
 * and optimises a hot one later, in the background, which for
 * onnxruntime-web's large module has come as late as four rounds into a
 * size (its calls 3.5x slower until then). The peers are measured as they
 * run once optimised; ours keep the default (the first-call table shows it).
 */
const PEER_FLAGS = ['--no-liftoff'];

/** The peers, by the name `--peers` takes. */
export const peerImpls: Record<string, Impl[]> = {
  tfjs: [
    {
      id: 'tfjs-wasm',
      kind: 'peer',
      worker: 'tfjs',
      params: {},
      execArgv: PEER_FLAGS,
      growth: 2,
      family: 'tfjs-wasm',
      flops: attentionFlops,
      note: '@tensorflow/tfjs-backend-wasm (SIMD, no threads): per head, matMul(softmax(matMul(q*scale, transpose(k))), v)',
    },
  ],
  ort: [
    {
      id: 'ort MultiHeadAttention',
      kind: 'peer',
      worker: 'ort',
      params: { model: 'mha' },
      execArgv: PEER_FLAGS,
      growth: 2,
      family: 'onnxruntime-web',
      flops: attentionFlops,
      note: 'onnxruntime-web wasm, numThreads 1: com.microsoft MultiHeadAttention, [1, N, H*D] layout',
    },
    {
      id: 'ort MatMul-Softmax-MatMul',
      kind: 'peer',
      worker: 'ort',
      params: { model: 'graph' },
      execArgv: PEER_FLAGS,
      growth: 2,
      family: 'onnxruntime-web',
      flops: attentionFlops,
      note: 'onnxruntime-web wasm, numThreads 1: Mul(q, scale), Transpose(k), MatMul, Softmax, MatMul graph',
    },
  ],
  threads: [
    {
      id: 'full (relaxed SIMD)',
      kind: 'ours',
      worker: 'ours',
      params: { case: 'full', backend: 'wasm', threads: 1 },
      execArgv: ['--experimental-wasm-relaxed-simd'],
      growth: 2,
      flops: attentionFlops,
      note: 'our full on the relaxed-SIMD build (fused multiply-add; Node 20 runs it with --experimental-wasm-relaxed-simd)',
    },
    {
      id: 'full (2 threads)',
      kind: 'ours',
      worker: 'ours',
      params: { case: 'full', backend: 'wasm', threads: 2 },
      growth: 2,
      flops: attentionFlops,
      note: "our full on a pool of 2 threads over shared memory (await attn.run('full', ...))",
    },
    {
      id: 'ort MatMul-Softmax-MatMul (2 threads)',
      kind: 'peer',
      worker: 'ort',
      params: { model: 'graph', threads: 2 },
      execArgv: PEER_FLAGS,
      growth: 2,
      flops: attentionFlops,
      note: 'onnxruntime-web wasm, numThreads 2: Mul(q, scale), Transpose(k), MatMul, Softmax, MatMul graph',
    },
  ],
  js: [
    {
      id: 'full (js backend)',
      kind: 'ours-js',
      worker: 'ours',
      params: { case: 'full', backend: 'js' },
      growth: 2,
      maxN: { N: 1024, why: 'our JS backend runs ~0.9 GFLOP/s: ~40 s per call at N = 4096' },
      flops: attentionFlops,
      note: "our plain-JS float64 reference backend (createAttention({ backend: 'js' }))",
    },
  ],
};

/**
 * The implementations to run: a case of every selected variant (all when
 * `variants` is empty) and the selected peers. `missing` lists selected
 * variants without a case in `benchCases`.
 */
export function selectImpls(variants: string[], peers: string[]): { impls: Impl[]; missing: string[]; unknown: string[] } {
  const registered = variantNames as readonly string[];
  const unknown = variants.filter((v) => !registered.includes(v));
  const chosen = variants.length === 0 ? registered : registered.filter((v) => variants.includes(v));
  const impls: Impl[] = [];
  const missing: string[] = [];
  for (const name of chosen) {
    const ids = Object.keys(benchCases).filter((id) => variantOf(id) === name);
    if (ids.length === 0) missing.push(name);
    for (const id of ids) {
      const c = benchCases[id];
      impls.push({ id, kind: 'ours', worker: 'ours', params: { case: id, backend: 'wasm' }, growth: c.growth, maxN: c.maxN, flops: c.flops, note: c.note });
    }
  }
  for (const peer of peers) impls.push(...(peerImpls[peer] ?? []));
  return { impls, missing, unknown };
}

/** The sizes an implementation runs in a sweep over `sizes` (65536 and such only for linear-time ones, unless asked). */
export function sizesOf(impl: Impl, sizes: number[], explicit: boolean): number[] {
  if (explicit) return sizes;
  return impl.growth <= 1 ? [...sizes, ...LINEAR_EXTRA] : sizes;
}

/** The flat indices of `[1, H, N, D]` outputs compared across implementations (spread over heads, rows, features). */
export function sampleIndices(N: number, heads = H, d = D, count = 64): number[] {
  const total = heads * N * d;
  return Array.from({ length: Math.min(count, total) }, (_, t) => Math.floor(((t + 0.5) * total) / Math.min(count, total)));
}
