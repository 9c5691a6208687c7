/**
 * The public API's shape: how `createAttention` loads (`AttentionInit`) and
 * what it returns (`Attention`, with `Threads`, `Features`, `MemoryStats`).
 * index.ts implements it.
 */
import type { OnnxAttentionAttributes, OnnxAttentionInputs, OnnxAttentionOutputs } from './onnx/attention.js';
import type { OnnxLinearAttentionAttributes, OnnxLinearAttentionInputs, OnnxLinearAttentionOutputs } from './onnx/linear-attention.js';
import type { RecurrentOptions, RecurrentResult } from './variants/recurrent.js';
import type { RecurrentState, RecurrentStateOptions } from './recurrent-state.js';
import type { VariantName } from './registry.js';
import type { WasmTensor } from './runtime/arena.js';
import type { WasmSource } from './runtime/load.js';
import type { Tensor } from './tensor.js';
import { declareOptions } from './options.js';
import type { FullOptions } from './variants/full.js';
import type { LocalOptions } from './variants/local.js';
import type { StridedOptions } from './variants/strided.js';
import type { GlobalOptions } from './variants/global.js';
import type { SparseOptions } from './variants/sparse.js';
import type { MixedOptions } from './variants/mixed.js';
import type { LshOptions } from './variants/lsh.js';
import type { RoutingFitOptions, RoutingOptions } from './variants/routing.js';
import type { SinkhornOptions } from './variants/sinkhorn.js';
import type { LinformerOptions } from './variants/linformer.js';
import type { CompressedOptions } from './variants/compressed.js';
import type { LinearOptions } from './variants/linear.js';
import type { LinearState, LinearStateOptions } from './variants/linear-state.js';
import type { SynthesizerOptions } from './variants/synthesizer.js';
import type { KvCache, KvCacheOptions } from './kvcache.js';
import type { GradientTensors, SavedTensors } from './grad/facade.js';

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
