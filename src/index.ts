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
import { hasRelaxedSimd, hasSimd } from './runtime/load.js';
import { Runtime } from './runtime/runtime.js';
import { describe, MAX_AXIS, toTensor, type Tensor } from './tensor.js';
import { rejectUndeclared } from './options.js';
import { asOptions, checkFits } from './validate.js';
import { fitRoutingCentroidsOn, type RoutingFitOptions } from './variants/routing.js';
import { createLinearState, type LinearState, type LinearStateOptions } from './variants/linear-state.js';
import { createKvCache, type KvCache, type KvCacheOptions } from './kvcache.js';
import { backwardOf, gradientsInLayout, readGradOutput, readSaved, type GradientTensors, type SavedTensors } from './grad/facade.js';
import { initOptions, type Attention, type AttentionInit, type Features, type MemoryStats, type Threads } from './attention.js';

export type { Attention, AttentionInit, Features, MemoryStats, Threads } from './attention.js';
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
