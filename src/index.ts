/**
 * wasm-attention: efficient self-attention for Node and browsers.
 *
 * ```ts
 * import { createAttention } from 'wasm-attention';
 * const attn = await createAttention();
 * const out = attn.full(q, k, v, { causal: true }); // q: [B, H, Nq, D], k: [B, H, Nk, D], v: [B, H, Nk, Dv]
 * ```
 * @packageDocumentation
 */
import { readInputs } from './inputs.js';
import { inBhnd, outputInLayout, readLayout } from './layout.js';
import { firstHeadOf } from './model.js';
import { onnxAttention, type OnnxAttentionAttributes, type OnnxAttentionInputs, type OnnxAttentionOutputs } from './onnx/attention.js';
import { onnxLinearAttention, type OnnxLinearAttentionAttributes, type OnnxLinearAttentionInputs, type OnnxLinearAttentionOutputs } from './onnx/linear-attention.js';
import { parseRecurrent, recurrentDense, recurrentPlan, recurrentReference, recurrentResult, splitResult, type RecurrentOptions, type RecurrentResult } from './variants/recurrent.js';
import { createRecurrentState, type RecurrentState, type RecurrentStateOptions } from './recurrent-state.js';
import { lookup, parseOptions, variantNames, type VariantName } from './registry.js';
import type { WasmTensor } from './runtime/arena.js';
import { hasRelaxedSimd, hasSimd, type WasmSource } from './runtime/load.js';
import { Runtime } from './runtime/runtime.js';
import { describe, MAX_AXIS, toTensor, type Tensor } from './tensor.js';
import { declareOptions, rejectUndeclared } from './options.js';
import { asOptions, checkFits } from './validate.js';
import type { FullOptions } from './variants/full.js';
import type { LocalOptions } from './variants/local.js';
import type { StridedOptions } from './variants/strided.js';
import type { GlobalOptions } from './variants/global.js';
import type { SparseOptions } from './variants/sparse.js';
import type { MixedOptions } from './variants/mixed.js';
import type { LshOptions } from './variants/lsh.js';
import { fitRoutingCentroidsOn, type RoutingFitOptions, type RoutingOptions } from './variants/routing.js';
import type { SinkhornOptions } from './variants/sinkhorn.js';
import type { LinformerOptions } from './variants/linformer.js';
import type { CompressedOptions } from './variants/compressed.js';
import type { LinearOptions } from './variants/linear.js';
import { createLinearState, type LinearState, type LinearStateOptions } from './variants/linear-state.js';
import type { SynthesizerOptions } from './variants/synthesizer.js';
import { createKvCache, type KvCache, type KvCacheOptions } from './kvcache.js';
import { backwardOf, gradientsInLayout, readGradOutput, readSaved, type GradientTensors, type SavedTensors } from './grad/facade.js';

export type { Tensor, Layout } from './tensor.js';
export type { ScoringOptions, MaskTensor } from './model.js';
export type { OnnxAttentionInputs, OnnxAttentionAttributes, OnnxAttentionOutputs } from './onnx/attention.js';
export type { OnnxLinearAttentionInputs, OnnxLinearAttentionAttributes, OnnxLinearAttentionOutputs } from './onnx/linear-attention.js';
export type { OnnxTensor } from './onnx/tensors.js';
export type { RecurrentOptions, RecurrentResult, Rule } from './variants/recurrent.js';
export type { RecurrentState, RecurrentStateOptions, RecurrentStepInputs } from './recurrent-state.js';
export type { WasmTensor } from './runtime/arena.js';
export type { WasmSource } from './runtime/load.js';
export type { CommonOptions } from './validate.js';
export type { VariantName } from './registry.js';
export { variantNames } from './registry.js';
export { hasRelaxedSimd, hasSimd } from './runtime/load.js';
export type { FullOptions } from './variants/full.js';
export type { LocalOptions } from './variants/local.js';
export type { StridedOptions } from './variants/strided.js';
export type { GlobalOptions } from './variants/global.js';
export type { SparseOptions } from './variants/sparse.js';
export type { MixedOptions, HeadSpec } from './variants/mixed.js';
export type { Pattern, LocalPattern, StridedPattern, GlobalPattern, RandomPattern } from './patterns.js';
export type { LshOptions } from './variants/lsh.js';
export type { RoutingOptions, RoutingFitOptions } from './variants/routing.js';
export type { SinkhornOptions } from './variants/sinkhorn.js';
export type { LinformerOptions } from './variants/linformer.js';
export type { CompressedOptions, CompressedConv } from './variants/compressed.js';
export type { LinearOptions } from './variants/linear.js';
export type { LinearState, LinearStateOptions } from './variants/linear-state.js';
export type { KvCache, KvCacheOptions, KvAttendOptions } from './kvcache.js';
export type { GradientTensors, GradParams, SavedTensors } from './grad/facade.js';
export type { SynthesizerOptions, SynthesizerFactors, SynthesizerDense, RandomSizes, FactorizedSizes, DenseSizes } from './variants/synthesizer.js';
export { linformerProjection } from './variants/linformer.js';
export { favorProjection, rfaProjection } from './variants/linear.js';
export { drawLshRotations as lshRotations } from './variants/lsh.js';
export { fitRoutingCentroids } from './variants/routing.js';
export { synthesizerParams } from './variants/synthesizer.js';


/** How `createAttention` loads. */
export interface AttentionInit {
  /**
   * `'auto'` (default): the SIMD WebAssembly kernels where the runtime has
   * WebAssembly SIMD, else the plain-JS backend. `'wasm'` demands SIMD and
   * throws without it; `'js'` always uses the plain-JS (float64 reference) backend.
   */
  backend?: 'auto' | 'wasm' | 'js';
  /**
   * The module: its URL (string or URL), bytes or compiled `WebAssembly.Module`.
   * Default: `attention.wasm` next to this file, found with `import.meta.url`.
   */
  wasm?: WasmSource;
  /**
   * Use the relaxed-SIMD build (fused multiply-add, `f32x4.relaxed_madd`):
   * default where the runtime supports it (Chromium; Node 20 only with
   * `--experimental-wasm-relaxed-simd`); `false` picks the plain SIMD build,
   * `true` demands relaxed SIMD and throws without it. Results stay within
   * the tolerance of the reference either way.
   */
  relaxedSimd?: boolean;
  /**
   * Threads for `attn.run` (a pool over one shared WebAssembly memory).
   * Default: the number of cores where shared memory is available (Node
   * always; browsers when the page is `crossOriginIsolated`), else 1; 1 when
   * `wasm` is given (with more, `wasm` must be a shared-memory build:
   * `attention-shared.wasm` or `attention-relaxed-shared.wasm`). At most 256.
   */
  threads?: number;
}

/** The declaration of {@link AttentionInit} (read by the README generator). @internal */
export const initOptions = declareOptions<AttentionInit>()({
  backend: {
    type: "`'auto' | 'wasm' | 'js'`",
    doc: "`'auto'` (default): the SIMD WebAssembly kernels where the runtime has WebAssembly SIMD, else the plain-JS backend (`attn.backend` says which); `'wasm'` demands SIMD and throws where it is missing; `'js'` is the plain-JS float64 reference",
  },
  wasm: {
    type: '`string` | `URL` | bytes | `WebAssembly.Module`',
    doc: "the module; default `attention.wasm` (or `attention-relaxed.wasm`) next to the package's `index.js`, found with `new URL(..., import.meta.url)`: read with `fs` in Node, fetched and compiled as it streams in browsers",
  },
  relaxedSimd: {
    type: '`boolean`',
    doc: 'the relaxed-SIMD build (fused multiply-add), used by default where the runtime supports it (Chromium; Node 20 with `--experimental-wasm-relaxed-simd`); `false` picks the plain SIMD build, `true` demands it; `attn.features` says which runs',
  },
  threads: { type: '`number`', doc: 'threads of `attn.run`; default the cores where shared memory is available (Node; cross-origin isolated pages), else 1 (see [Threads](#threads))' },
});

/** How many threads `attn.run` uses, and why. */
export interface Threads {
  readonly count: number;
  readonly reason: string;
}

/** What the loaded kernels use. */
export interface Features {
  /** WebAssembly SIMD (128-bit): false only on the JS backend. */
  readonly simd: boolean;
  /** Fused multiply-add through relaxed SIMD. */
  readonly relaxedSimd: boolean;
}

/** Memory figures of an instance (all zero for the JS backend). */
export interface MemoryStats {
  /** Bytes of WebAssembly memory held by pinned tensors and a running call. */
  readonly inUse: number;
  /** Size of the WebAssembly memory in bytes (it never shrinks). */
  readonly size: number;
}

/**
 * An attention instance. Every variant is a method `attn.<name>(q, k, v,
 * options)` returning a new tensor of q's rank with dims `[B, H, Nq, Dv]`.
 * Bad input throws a `TypeError` / `RangeError` naming the argument, and the
 * instance stays usable.
 */
export interface Attention {
  /** Which backend runs the calls. */
  readonly backend: 'wasm' | 'js';
  /** The SIMD features the kernels use. */
  readonly features: Features;
  /** The threads of `attn.run`, and why that many. */
  readonly threads: Threads;
  /** Memory held by this instance. */
  readonly memory: MemoryStats;

  /**
   * Exact softmax attention, tiled with an online softmax (no Nq x Nk buffer):
   * `out_i = sum_j softmax_j(scale q_i . k_j) v_j` over visible keys.
   */
  full(q: Tensor, k: Tensor, v: Tensor, options?: FullOptions): Tensor;
  /** Sliding window: key j visible to query position p iff `p - before <= j <= p + after`. */
  local(q: Tensor, k: Tensor, v: Tensor, options: LocalOptions): Tensor;
  /** Dilated window: `(p - j) mod stride == 0` and `|p - j| <= window * stride`. */
  strided(q: Tensor, k: Tensor, v: Tensor, options: StridedOptions): Tensor;
  /** Global tokens: they see everything and everything sees them; other pairs are hidden. */
  global(q: Tensor, k: Tensor, v: Tensor, options: GlobalOptions): Tensor;
  /** The union of patterns: Longformer, BigBird, Sparse Transformer. */
  sparse(q: Tensor, k: Tensor, v: Tensor, options: SparseOptions): Tensor;
  /** Different attention in different heads: one spec per head, of any variant. */
  mixed(q: Tensor, k: Tensor | null, v: Tensor, options: MixedOptions): Tensor;
  /** Reformer LSH attention (shared query-key): pass k = null. */
  lsh(q: Tensor, k: Tensor | null, v: Tensor, options: LshOptions): Tensor;
  /** Routing Transformer: attention inside k-means clusters. */
  routing(q: Tensor, k: Tensor, v: Tensor, options: RoutingOptions): Tensor;
  /** Sparse Sinkhorn attention: each query block attends a sorted block and itself. */
  sinkhorn(q: Tensor, k: Tensor, v: Tensor, options: SinkhornOptions): Tensor;
  /** Linformer: keys and values projected to P rows along the sequence. */
  linformer(q: Tensor, k: Tensor, v: Tensor, options: LinformerOptions): Tensor;
  /** Memory-compressed attention: keys and values pooled (or convolved) into slots of `factor`. */
  compressed(q: Tensor, k: Tensor, v: Tensor, options: CompressedOptions): Tensor;
  /** Linear attention `phi(q) (phi(k)^T v)`: elu, relu, Performer FAVOR+, RFA, Efficient Attention. */
  linear(q: Tensor, k: Tensor, v: Tensor, options?: LinearOptions): Tensor;
  /** Synthesizer: attention logits as parameters; q and k are ignored (pass null). */
  synthesizer(q: Tensor | null, k: Tensor | null, v: Tensor, options: SynthesizerOptions): Tensor;

  /**
   * Linear attention as an RNN: a state whose `step(q_t, k_t, v_t)` gives,
   * token by token, the outputs of `linear(..., { causal: true })` at O(1)
   * cost per token. `dispose()` it when done.
   */
  linearState(options: LinearStateOptions): LinearState;

  /**
   * Recurrent linear attention (SPEC "Recurrent linear attention"): per batch
   * and kv head a state `S [D, Dv]` updated token by token by `options.rule`
   * (`'linear'`, `'gated'` with a log-space `decay`, `'delta'` with `beta`,
   * `'gatedDelta'` with both), every query head of the group reading
   * `o_t = scale S_t^T q_t`. q `[B, H, N, D]`, k `[B, Hkv, N, D]`, v `[B, Hkv,
   * N, Dv]` (grouped-query heads, ranks 2 to 4, `layout: 'bnhd'`). Runs in
   * chunks, linear in N. Returns the output (q's rank and layout) with
   * `state`, the state after the last token `[B, Hkv, D, Dv]`.
   */
  recurrent(q: Tensor, k: Tensor, v: Tensor, options: RecurrentOptions): RecurrentResult;

  /** {@link Attention.recurrent} on the thread pool (one job per batch and kv head): the same bits. */
  runRecurrent(q: Tensor, k: Tensor, v: Tensor, options: RecurrentOptions): Promise<RecurrentResult>;

  /**
   * The dense matrix `P [B, H, N, N]` with `recurrent(q, k, v, options) = P v`,
   * for the rules whose output is linear in v (`'linear'`, `'gated'`, without
   * `initialState`; a TypeError for the delta rules). For tests and pictures:
   * O(N^2) memory, computed by the float64 reference.
   */
  recurrentWeights(q: Tensor, k: Tensor, options: RecurrentOptions): Tensor;

  /**
   * {@link Attention.recurrent} one token at a time (decoding): `step(q_t,
   * k_t, v_t, { decay, beta })` writes the token into the state and answers
   * its queries at O(D Dv) per kv head whatever the position. `dispose()` it when done.
   */
  recurrentState(options: RecurrentStateOptions): RecurrentState;

  /**
   * A key/value cache for decoding, in WebAssembly memory in the kernels'
   * packed layout: `append(k, v)` adds positions in place, `attend(q,
   * options)` is `full(q, K, V, options)` over every cached position (the
   * queries being the last ones), reading the cache once; with `window: W`
   * each query sees its last W positions and the buffer rolls. `dispose()`
   * it when done.
   */
  kvCache(options: KvCacheOptions): KvCache;

  /**
   * Fits Routing Transformer centroids by seeded spherical k-means on each
   * head's normalised q and k rows (`[H, C, D]`), on this instance's kernels:
   * fit once, then pass them as `routing`'s `centroids`.
   */
  fitRoutingCentroids(q: Tensor, k: Tensor, options: RoutingFitOptions): Tensor;

  /**
   * A variant on the thread pool: the same result, bit for bit, as
   * `attn[name](q, k, v, options)`, with the work split by batch, head and
   * query block (variants whose kernel is not split yet run on the calling
   * thread). Runs queue one after the other; the synchronous methods stay
   * usable meanwhile.
   */
  run(name: VariantName, q: Tensor | null, k: Tensor | null, v: Tensor, options?: object): Promise<Tensor>;

  /**
   * The gradients of `sum(attn[name](q, k, v, options) * gradOutput)` with
   * respect to q, k, v (null where the variant takes that input as null;
   * lsh's q covers both its roles) and, in `params`, the tensor-valued
   * options, nested as they are given (`bias`; linformer `e`, `f`;
   * compressed `convK`, `convV`, `nullKey`, `nullValue`; synthesizer
   * `logits`, `factors`, `dense`; sinkhorn `sortLogits`). Each gradient has
   * the dims and layout of what it is the gradient of; random draws and
   * discrete choices (buckets, memberships, sorts) are constants.
   * `saved.output`, the output of the forward call with these inputs and
   * options, spares `full` and `local` recomputing it (as autograd keeps it).
   */
  backward(name: VariantName, q: Tensor | null, k: Tensor | null, v: Tensor, gradOutput: Tensor, options?: object, saved?: SavedTensors): GradientTensors;

  /** {@link Attention.backward} on the thread pool: the same bits. */
  runBackward(name: VariantName, q: Tensor | null, k: Tensor | null, v: Tensor, gradOutput: Tensor, options?: object, saved?: SavedTensors): Promise<GradientTensors>;

  /** Stops the pool's threads (the synchronous methods keep working). */
  dispose(): void;

  /** Any registered variant by name (the named methods call this). */
  apply(name: VariantName, q: Tensor | null, k: Tensor | null, v: Tensor, options?: object): Tensor;

  /**
   * The dense matrix a variant applies, `P: [B, H, Nq, Nk]` with `out = P v`
   * (for `compressed`, the probabilities over its slots). For tests and pictures:
   * O(Nq * Nk) memory, computed by the float64 reference. `P` is `[B, H, Nq, Nk]`
   * whatever `options.layout` says of q and k.
   */
  weights(name: VariantName, q: Tensor | null, k: Tensor | null, options?: object): Tensor;

  /**
   * The `[Nq, Nk]` visibility pattern (1 = visible) of a pattern-based variant:
   * batch 0 and head 0 of `causal`, `keyPadding` and `mask` included.
   */
  mask(name: VariantName, nq: number, nk: number, options?: object): Uint8Array;

  /**
   * The ONNX `Attention` operator (opsets 23 to 25; opset 26 keeps
   * Attention-25), as the onnx reference implementation computes it, on this
   * instance's kernels: `inputs` by ONNX name (`Q`, `K`, `V`, and optional
   * `attn_mask`, `past_key`, `past_value`, `nonpad_kv_seqlen`), tensors as
   * onnxruntime-web makes them (`{ type, data, dims }`: float32
   * `Float32Array`, bool `Uint8Array` with `type: 'bool'`, int64
   * `BigInt64Array` or `Int32Array`); `attributes` by ONNX name, absent ones
   * taking the ONNX defaults. Returns `{ Y, present_key, present_value }`
   * and, when `qk_matmul_output_mode` is given, `qk_matmul_output`.
   * Synchronous (awaiting the result also works). Inputs the operator
   * rejects, and unknown input or attribute names, throw a TypeError /
   * RangeError naming them.
   */
  onnxAttention(inputs: OnnxAttentionInputs, attributes?: OnnxAttentionAttributes): OnnxAttentionOutputs;

  /**
   * The ONNX `LinearAttention` operator (opset 27) on {@link Attention.recurrent}:
   * `inputs` by ONNX name (`query`, `key`, `value`, and optional `past_state`,
   * `decay`, `beta`), float32 tensors as onnxruntime-web makes them;
   * `attributes` by ONNX name (`q_num_heads`, `kv_num_heads` required;
   * `update_rule` default `'gated_delta'`; `scale` 0 = `1 / sqrt(dk)`;
   * `chunk_size` a hint that never changes the result). Returns `{ output,
   * present_state }`. Inputs the operator rejects (a decay or beta that the
   * rule does not take, or missing where it needs one), and unknown names,
   * throw a TypeError / RangeError naming them.
   */
  onnxLinearAttention(inputs: OnnxLinearAttentionInputs, attributes?: OnnxLinearAttentionAttributes): OnnxLinearAttentionOutputs;

  /**
   * A tensor allocated inside WebAssembly memory: calls read it without a copy.
   * Read `data` afresh after calls (memory growth detaches old views) and `free()` it when done.
   */
  tensor(dims: readonly number[], values?: ArrayLike<number>): WasmTensor;
}

/**
 * Loads the kernels and returns an attention instance.
 * Works unchanged in Node and in browsers.
 */
export async function createAttention(init: AttentionInit = {}): Promise<Attention> {
  const checked = asOptions(init, 'init');
  rejectUndeclared(checked, initOptions, 'createAttention', 'init');
  const { backend = 'auto', relaxedSimd } = checked as AttentionInit;
  if (backend !== 'auto' && backend !== 'wasm' && backend !== 'js') {
    throw new TypeError(`init.backend: expected 'auto', 'wasm' or 'js', received ${describe(backend)}`);
  }
  if (relaxedSimd !== undefined && typeof relaxedSimd !== 'boolean') {
    throw new TypeError(`init.relaxedSimd: expected a boolean, received ${describe(relaxedSimd)}`);
  }
  const simd = hasSimd();
  if (backend === 'wasm' && !simd) {
    throw new Error('wasm-attention: init.backend is "wasm" but this runtime has no WebAssembly SIMD (use "auto" to fall back to the JS backend)');
  }
  const relaxed = hasRelaxedSimd();
  if (relaxedSimd === true && !relaxed) {
    throw new Error('wasm-attention: init.relaxedSimd is true but this runtime has no relaxed SIMD (Node 20 needs --experimental-wasm-relaxed-simd)');
  }
  if (backend === 'js' || !simd) return new Instance(null, { count: 1, reason: 'the JS backend runs on the calling thread' });
  // a module given as it is may be a build without shared memory: one thread unless told
  const threads = init.wasm !== undefined && init.threads === undefined ? { count: 1, reason: 'init.wasm given without init.threads' } : await threadCount(init.threads);
  const runtime = await Runtime.create(init.wasm, relaxedSimd ?? relaxed, threads.count);
  return new Instance(runtime, threads);
}

/** The most threads a pool starts: each is a worker with its own scratch memory. */
const MAX_THREADS = 256;

/** init.threads, or the cores where shared memory is available. */
async function threadCount(requested: unknown): Promise<Threads> {
  if (requested !== undefined) {
    if (typeof requested !== 'number' || !Number.isInteger(requested) || requested < 1) {
      throw new RangeError(`init.threads: expected an integer >= 1, received ${describe(requested)}`);
    }
    if (requested > MAX_THREADS) throw new RangeError(`init.threads: expected at most ${MAX_THREADS} threads, received ${requested}`);
    return { count: requested, reason: 'init.threads' };
  }
  if (typeof process === 'object' && process.versions?.node) {
    const os = 'node:os'; // computed: bundlers leave it to Node
    const { availableParallelism, cpus } = (await import(/* @vite-ignore */ os)) as typeof import('node:os');
    return { count: availableParallelism?.() ?? cpus().length, reason: 'the cores of this machine (Node shares WebAssembly memory with worker threads)' };
  }
  if (typeof crossOriginIsolated === 'boolean' && crossOriginIsolated && typeof navigator === 'object') {
    return { count: navigator.hardwareConcurrency || 1, reason: 'the cores of this machine (the page is cross-origin isolated)' };
  }
  return { count: 1, reason: 'no shared memory: the page is not cross-origin isolated (COOP/COEP headers)' };
}

/** A typed array, or an array whose items are all numbers. */
function isNumbers(values: unknown): values is ArrayLike<number> {
  return (ArrayBuffer.isView(values) && !(values instanceof DataView)) || (Array.isArray(values) && values.every((x) => typeof x === 'number'));
}

class Instance implements Attention {
  readonly backend: 'wasm' | 'js';

  constructor(
    private readonly runtime: Runtime | null,
    readonly threads: Threads,
  ) {
    this.backend = runtime ? 'wasm' : 'js';
    for (const name of variantNames) {
      (this as unknown as Record<string, unknown>)[name] = (q: Tensor | null, k: Tensor | null, v: Tensor, options?: object) =>
        this.apply(name, q, k, v, options);
    }
  }

  declare full: Attention['full'];
  declare local: Attention['local'];
  declare strided: Attention['strided'];
  declare global: Attention['global'];
  declare sparse: Attention['sparse'];
  declare mixed: Attention['mixed'];
  declare lsh: Attention['lsh'];
  declare routing: Attention['routing'];
  declare sinkhorn: Attention['sinkhorn'];
  declare linformer: Attention['linformer'];
  declare compressed: Attention['compressed'];
  declare linear: Attention['linear'];
  declare synthesizer: Attention['synthesizer'];

  get features(): Features {
    return { simd: this.runtime !== null, relaxedSimd: this.runtime?.relaxedSimd ?? false };
  }

  get memory(): MemoryStats {
    if (!this.runtime) return { inUse: 0, size: 0 };
    return { inUse: this.runtime.arena.inUse, size: this.runtime.arena.memory.buffer.byteLength };
  }

  /**
   * Validates a call: its variant, inputs (read in `options.layout`, given
   * to the variant as 'bhnd' unless its SIMD kernel runs and reads the
   * layout in place) and parsed options; `output` gives a result back in the
   * caller's rank and layout. `withValues` is false for the calls that take
   * no v (weights, logits): a v the caller gave as null is then still checked.
   */
  private prepare(name: VariantName, q: Tensor | null, k: Tensor | null, v: Tensor | null, options: object | undefined, withValues = true) {
    const variant = lookup(name, 'name');
    const given = asOptions(options);
    const layout = readLayout(given);
    const read = readInputs(variant, q, k, v, withValues, layout);
    const parsed = parseOptions(variant, read, given);
    const { runtime } = this;
    const inPlace = runtime !== null && withValues && variant.layoutInPlace === true;
    const inputs = inPlace ? read : inBhnd(read);
    const { B, H, Nq, Dv } = parsed.problem;
    checkFits(B * H * Nq * Dv * 4, 'q.dims, v.dims', `the output [B, H, Nq, Dv] = [${B}, ${H}, ${Nq}, ${Dv}]`);
    const output = (data: Float32Array) =>
      toTensor(inPlace ? data : outputInLayout(data, B, H, Nq, Dv, layout), B, H, Nq, Dv, (inputs.q ?? inputs.v!).rank, layout);
    // the SIMD kernel, or the float64 reference on the JS backend
    const here = () => (runtime && variant.kernel ? variant.kernel(runtime, inputs, parsed) : variant.reference(inputs, parsed));
    return { variant, inputs, parsed, output, here, runtime };
  }

  apply(name: VariantName, q: Tensor | null, k: Tensor | null, v: Tensor, options?: object): Tensor {
    const { output, here } = this.prepare(name, q, k, v, options);
    return output(here());
  }

  async run(name: VariantName, q: Tensor | null, k: Tensor | null, v: Tensor, options?: object): Promise<Tensor> {
    const { variant, inputs, parsed, output, here, runtime } = this.prepare(name, q, k, v, options);
    if (!runtime || runtime.threads === 1 || !variant.plan) return output(here());
    return output(await runtime.executeParallel(variant.plan(runtime, inputs, parsed)));
  }

  /** A backward call validated: the forward's checks, then gradOutput against the output's shape; inputs in 'bhnd'. */
  private prepareBackward(name: VariantName, q: Tensor | null, k: Tensor | null, v: Tensor, gradOutput: Tensor, options?: object, savedTensors?: SavedTensors) {
    const variant = lookup(name, 'name');
    const backward = backwardOf(name);
    const given = asOptions(options);
    const layout = readLayout(given);
    const read = readInputs(variant, q, k, v, true, layout);
    const parsed = parseOptions(variant, read, given);
    const inputs = inBhnd(read);
    const rank = (read.q ?? read.v)!.rank;
    const dOut = readGradOutput(gradOutput, parsed.problem, rank, layout);
    const saved = readSaved(savedTensors, parsed.problem, rank, layout);
    const output = gradientsInLayout(read, parsed.problem, layout, given);
    return { backward, inputs, parsed, dOut, saved, output };
  }

  backward(name: VariantName, q: Tensor | null, k: Tensor | null, v: Tensor, gradOutput: Tensor, options?: object, saved?: SavedTensors): GradientTensors {
    const prepared = this.prepareBackward(name, q, k, v, gradOutput, options, saved);
    const { backward, inputs, parsed, dOut, output } = prepared;
    const { runtime } = this;
    const simd = runtime && backward.plan?.(runtime, inputs, parsed, dOut, prepared.saved);
    if (!runtime || !simd) return output(backward.reference(inputs, parsed, dOut));
    return output(simd.split(runtime.execute(simd.plan)));
  }

  async runBackward(name: VariantName, q: Tensor | null, k: Tensor | null, v: Tensor, gradOutput: Tensor, options?: object, saved?: SavedTensors): Promise<GradientTensors> {
    const prepared = this.prepareBackward(name, q, k, v, gradOutput, options, saved);
    const { backward, inputs, parsed, dOut, output } = prepared;
    const { runtime } = this;
    const simd = runtime && backward.plan?.(runtime, inputs, parsed, dOut, prepared.saved);
    if (!runtime || !simd) return output(backward.reference(inputs, parsed, dOut));
    return output(simd.split(runtime.threads === 1 ? runtime.execute(simd.plan) : await runtime.executeParallel(simd.plan)));
  }

  dispose(): void {
    this.runtime?.dispose();
  }

  /** A dense `[B, H, Nq, Nk]` matrix of the variant's float64 reference math. */
  private dense(kind: 'weights' | 'logits', name: VariantName, q: Tensor | null, k: Tensor | null, options?: object): Tensor {
    const { variant, inputs, parsed } = this.prepare(name, q, k, null, options, false);
    const read = variant[kind];
    if (!read) throw new TypeError(`name: ${kind}() is defined for full and the pattern-based variants, received '${name}'`);
    const { B, H, Nq, Nk } = parsed.problem;
    checkFits(B * H * Nq * Nk * 4, 'q.dims, k.dims', `the matrix [B, H, Nq, Nk] = [${B}, ${H}, ${Nq}, ${Nk}]`);
    const dense = read.call(variant, inputs, parsed);
    return { data: dense.data, dims: [...dense.dims] };
  }

  weights(name: VariantName, q: Tensor | null, k: Tensor | null, options?: object): Tensor {
    return this.dense('weights', name, q, k, options);
  }

  /**
   * The logits `[B, H, Nq, Nk]` that full and the pattern variants take the
   * softmax of (-Infinity at hidden pairs), from the float64 reference: the
   * ONNX operator's `qk_matmul_output`.
   * @internal
   */
  logits(name: VariantName, q: Tensor, k: Tensor, options?: object): Tensor {
    return this.dense('logits', name, q, k, options);
  }

  onnxAttention(inputs: OnnxAttentionInputs, attributes?: OnnxAttentionAttributes): OnnxAttentionOutputs {
    return onnxAttention(this, inputs, attributes);
  }

  onnxLinearAttention(inputs: OnnxLinearAttentionInputs, attributes?: OnnxLinearAttentionAttributes): OnnxLinearAttentionOutputs {
    return onnxLinearAttention(this, inputs, attributes);
  }

  recurrent(q: Tensor, k: Tensor, v: Tensor, options: RecurrentOptions): RecurrentResult {
    const call = parseRecurrent(q, k, v, options);
    const { runtime } = this;
    if (!runtime) {
      const { out, state } = recurrentReference(call);
      return recurrentResult(call, out, state);
    }
    return splitResult(call, runtime.execute(recurrentPlan(runtime, call)));
  }

  async runRecurrent(q: Tensor, k: Tensor, v: Tensor, options: RecurrentOptions): Promise<RecurrentResult> {
    const call = parseRecurrent(q, k, v, options);
    const { runtime } = this;
    if (!runtime || runtime.threads === 1) return this.recurrent(q, k, v, options);
    return splitResult(call, await runtime.executeParallel(recurrentPlan(runtime, call)));
  }

  recurrentWeights(q: Tensor, k: Tensor, options: RecurrentOptions): Tensor {
    return recurrentDense(parseRecurrent(q, k, null, options, false));
  }

  recurrentState(options: RecurrentStateOptions): RecurrentState {
    return createRecurrentState(this.runtime, options);
  }

  mask(name: VariantName, nq: number, nk: number, options?: object): Uint8Array {
    const variant = lookup(name, 'name');
    if (!variant.mask) throw new TypeError(`name: mask() is defined for pattern-based variants, received '${name}'`);
    for (const [arg, n] of [['nq', nq], ['nk', nk]] as const) {
      if (!Number.isInteger(n) || n < 0 || n > MAX_AXIS) throw new RangeError(`${arg}: expected an integer from 0 to ${MAX_AXIS}, received ${describe(n)}`);
    }
    checkFits(nq * nk, 'nq, nk', `the mask [Nq, Nk] = [${nq}, ${nk}]`);
    // the pattern needs only the sizes: shape-only inputs of one batch and head, and that head's mask and bias
    const shape = (N: number) => ({ data: new Float32Array(0), B: 1, H: 1, N, D: 1, rank: 2 as const, layout: 'bhnd' as const });
    const inputs = { q: shape(nq), k: shape(nk), v: null };
    const given = asOptions(options);
    const firstHead = { ...given, mask: firstHeadOf(given.mask), bias: firstHeadOf(given.bias) };
    return variant.mask(parseOptions(variant, inputs, firstHead));
  }

  linearState(options: LinearStateOptions): LinearState {
    return createLinearState(this.runtime, options);
  }

  kvCache(options: KvCacheOptions): KvCache {
    return createKvCache(this.runtime, (name, q, k, v, o) => this.apply(name, q, k, v, o), options);
  }

  fitRoutingCentroids(q: Tensor, k: Tensor, options: RoutingFitOptions): Tensor {
    return fitRoutingCentroidsOn(this.runtime, q, k, options);
  }

  tensor(dims: readonly number[], values?: ArrayLike<number>): WasmTensor {
    if (!Array.isArray(dims) || !dims.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new TypeError(`dims: expected an array of non-negative integers, received ${describe(dims)}`);
    }
    const length = dims.reduce((a: number, b: number) => a * b, 1);
    checkFits(length * 4, 'dims', `a tensor [${dims.join(', ')}]`);
    if (values !== undefined && !isNumbers(values)) {
      throw new TypeError(`values: expected an array or typed array of numbers, received ${describe(values)}`);
    }
    if (values !== undefined && values.length !== length) {
      throw new RangeError(`values: expected ${length} values for dims [${dims.join(', ')}], received ${values.length}`);
    }
    if (!this.runtime) {
      const data = Float32Array.from(values ?? new Float32Array(length));
      return { data, dims: [...dims], byteOffset: 0, free: () => {} };
    }
    return this.runtime.arena.tensor(dims, values);
  }
}
