/**
 * `attn.recurrentState(options)`: recurrent linear attention (SPEC "Recurrent
 * linear attention") one token at a time, for decoding: each `step` costs
 * O(D Dv) per kv head whatever the position, and gives the rows of
 * `attn.recurrent` on the same tokens. The state lives in a pinned block of
 * WebAssembly memory (float64, as in the chunked kernel) or, on the JS
 * backend, in the float64 reference.
 */
import { declareOptions, rejectUndeclared } from './options.js';
import { SliceRecurrence, type Rule, type TokenParam } from './reference/recurrent.js';
import type { WasmTensor } from './runtime/arena.js';
import type { Runtime } from './runtime/runtime.js';
import { asTensor, MAX_AXIS, type Tensor } from './tensor.js';
import { asOptions, checkFits, optionalNumber, requiredNumber, type Options } from './validate.js';
import { modeOf, parseInitialState, parseRule, ruleInputs, type RecurrentKernels } from './variants/recurrent.js';

/** Options of `attn.recurrentState(options)`: the sizes of one token and the rule. */
export interface RecurrentStateOptions {
  /** The update rule (see `RecurrentOptions.rule`). */
  rule: Rule;
  /** Batch size B; default 1. */
  batch?: number;
  /** Query heads H; default 1. */
  heads?: number;
  /** Key and value heads Hkv (H mod Hkv == 0); default `heads`. */
  kvHeads?: number;
  /** Query and key size D. */
  dim: number;
  /** Value size Dv; default `dim`. */
  valueDim?: number;
  /** Output scale; default `1 / sqrt(dim)`. */
  scale?: number;
  /** The state before the first token, `[B, Hkv, D, Dv]`; default zeros (also after `reset()`). */
  initialState?: Tensor;
}

/** The declaration of {@link RecurrentStateOptions}. */
export const recurrentStateOptions = declareOptions<RecurrentStateOptions>()({
  rule: { type: "`'linear' | 'gated' | 'delta' | 'gatedDelta'`", doc: 'the update rule (required)' },
  batch: { type: '`number`', doc: 'batch size B; default 1' },
  heads: { type: '`number`', doc: 'query heads H; default 1' },
  kvHeads: { type: '`number`', doc: 'key and value heads Hkv; default `heads`' },
  dim: { type: '`number`', doc: 'query and key size D' },
  valueDim: { type: '`number`', doc: 'value size Dv; default `dim`' },
  scale: { type: '`number`', doc: 'output scale; default `1 / sqrt(dim)`' },
  initialState: { type: '`Tensor`', doc: 'the state before the first token, `[B, Hkv, D, Dv]`; default zeros' },
});

/** What one step takes besides q, k, v: the rule's decay and beta for this token. */
export interface RecurrentStepInputs {
  /** Gated rules: log-space decay `[B, Hkv]` (per head) or `[B, Hkv, D]` (per key dim). */
  decay?: Tensor | Float32Array;
  /** Delta rules: `[B, Hkv]`, or `[B, 1]` shared by the kv heads. */
  beta?: Tensor | Float32Array;
}

/** Recurrent linear attention stepped token by token. */
export interface RecurrentState {
  /** Where the state lives: WebAssembly memory ('wasm') or a float64 JS array ('js'). */
  readonly backend: 'wasm' | 'js';
  /** Tokens stepped since creation or the last `reset()`. */
  readonly position: number;
  /**
   * Writes token t into the state and answers its queries: q `[B, H, D]`,
   * k `[B, Hkv, D]`, v `[B, Hkv, Dv]` (tensors or bare Float32Arrays of those
   * sizes); returns `[B, H, Dv]`.
   */
  step(q: Tensor | Float32Array, k: Tensor | Float32Array, v: Tensor | Float32Array, inputs?: RecurrentStepInputs): Tensor;
  /** The current state `[B, Hkv, D, Dv]` (a copy). */
  state(): Tensor;
  /** Back to the initial state: the next step is position 0. */
  reset(): void;
  /** Frees the WebAssembly memory of the state (a no-op for 'js'); the state must not be used afterwards. */
  dispose(): void;
}

interface Sizes {
  readonly B: number;
  readonly H: number;
  readonly Hkv: number;
  readonly D: number;
  readonly Dv: number;
}

/** The declaration of {@link RecurrentStepInputs}. */
const stepInputs = declareOptions<RecurrentStepInputs>()({
  decay: { type: '`Tensor` | `Float32Array`', doc: 'gated rules: log-space decay `[B, Hkv]` or `[B, Hkv, D]`' },
  beta: { type: '`Tensor` | `Float32Array`', doc: 'delta rules: `[B, Hkv]` or `[B, 1]`' },
});

/** A step input of exactly `dims` (a tensor of those dims, or a bare Float32Array of their size). */
function exactly(x: unknown, name: string, dims: readonly number[], names: string): Float32Array {
  const size = dims.reduce((a, b) => a * b, 1);
  if (x instanceof Float32Array) {
    if (x.length !== size) throw new RangeError(`${name}: expected ${size} values (${names} = [${dims.join(', ')}]), received ${x.length}`);
    return x;
  }
  const t = asTensor(x, name);
  if (t.dims.length !== dims.length || !t.dims.every((d, i) => d === dims[i])) throw new RangeError(`${name}.dims: expected ${names} = [${dims.join(', ')}], received [${t.dims.join(', ')}]`);
  return t.data;
}

/** A token's decay: `[B, Hkv]` or `[B, Hkv, D]`. */
function stepDecay(x: unknown, { B, Hkv, D }: Sizes): TokenParam {
  const size = x instanceof Float32Array ? x.length : asTensor(x, 'inputs.decay').data.length;
  const perDim = size === B * Hkv * D && D > 1;
  const data = perDim ? exactly(x, 'inputs.decay', [B, Hkv, D], '[B, Hkv, D]') : exactly(x, 'inputs.decay', [B, Hkv], '[B, Hkv] (per head) or [B, Hkv, D] (per key dim)');
  return { data, heads: Hkv, width: perDim ? D : 1, layout: 'bhnd' };
}

/** A token's beta: `[B, Hkv]` or `[B, 1]`. */
function stepBeta(x: unknown, { B, Hkv }: Sizes): TokenParam {
  const size = x instanceof Float32Array ? x.length : asTensor(x, 'inputs.beta').data.length;
  const shared = size === B && Hkv > 1;
  const data = shared ? exactly(x, 'inputs.beta', [B, 1], '[B, 1]') : exactly(x, 'inputs.beta', [B, Hkv], '[B, Hkv] (or [B, 1])');
  return { data, heads: shared ? 1 : Hkv, width: 1, layout: 'bhnd' };
}

/** One step's inputs, checked. */
function readStep(sizes: Sizes, rule: Rule, q: unknown, k: unknown, v: unknown, inputs: unknown) {
  const { B, H, Hkv, D, Dv } = sizes;
  const extra = asOptions(inputs, 'inputs');
  rejectUndeclared(extra, stepInputs, 'step', 'inputs');
  const params = ruleInputs(rule, extra.decay, extra.beta, { decay: () => stepDecay(extra.decay, sizes), beta: () => stepBeta(extra.beta, sizes) }, 'inputs');
  return {
    q: exactly(q, 'q', [B, H, D], '[B, H, D]'),
    k: exactly(k, 'k', [B, Hkv, D], '[B, Hkv, D]'),
    v: exactly(v, 'v', [B, Hkv, Dv], '[B, Hkv, Dv]'),
    ...params,
  };
}

/** Offset of a token input's value for (b, kv head h). */
const paramAt = (p: TokenParam, b: number, h: number): number => (b * p.heads + (p.heads === 1 ? 0 : h)) * p.width;

/** Creates the state, wired as `attn.recurrentState(options)`. */
export function createRecurrentState(runtime: Runtime | null, options: RecurrentStateOptions): RecurrentState {
  const o = asOptions(options) as Options;
  rejectUndeclared(o, recurrentStateOptions, 'recurrentState', 'options');
  const rule = parseRule(o.rule);
  const size = { integer: true, min: 1, max: MAX_AXIS };
  const D = requiredNumber(o, 'dim', size);
  const B = optionalNumber(o, 'batch', 1, size);
  const H = optionalNumber(o, 'heads', 1, size);
  const Hkv = optionalNumber(o, 'kvHeads', H, size);
  if (H % Hkv !== 0) throw new RangeError(`options.kvHeads: the query heads H must be a multiple of the kv heads Hkv, received H = ${H}, Hkv = ${Hkv}`);
  const Dv = optionalNumber(o, 'valueDim', D, size);
  const scale = optionalNumber(o, 'scale', 1 / Math.sqrt(D), { float32: true });
  const sizes: Sizes = { B, H, Hkv, D, Dv };
  checkFits(B * Hkv * D * Dv * 12, 'options.batch, options.kvHeads, options.dim, options.valueDim', `a state of [B, Hkv, D, Dv] = [${B}, ${Hkv}, ${D}, ${Dv}]`);
  const initial = o.initialState === undefined || o.initialState === null ? null : parseInitialState(o.initialState, 4, sizes);
  return runtime ? new WasmRecurrentState(runtime, rule, scale, sizes, initial) : new JsRecurrentState(rule, scale, sizes, initial);
}

/** The float64 reference state (JS backend). */
class JsRecurrentState implements RecurrentState {
  readonly backend = 'js';
  position = 0;
  private readonly slices: SliceRecurrence[];

  constructor(
    private readonly rule: Rule,
    private readonly scale: number,
    private readonly sizes: Sizes,
    private readonly initial: Float32Array | null,
  ) {
    this.slices = Array.from({ length: sizes.B * sizes.Hkv }, () => new SliceRecurrence(sizes.D, sizes.Dv));
    this.reset();
  }

  step(q: Tensor | Float32Array, k: Tensor | Float32Array, v: Tensor | Float32Array, inputs?: RecurrentStepInputs): Tensor {
    const t = readStep(this.sizes, this.rule, q, k, v, inputs);
    const { B, H, Hkv, D, Dv } = this.sizes;
    const group = H / Hkv;
    const out = new Float32Array(B * H * Dv);
    this.slices.forEach((slice, s) => {
      const b = Math.floor(s / Hkv);
      const h = s % Hkv;
      const beta = t.beta ? t.beta.data[paramAt(t.beta, b, h)] : NaN;
      slice.write(t.k, s * D, t.v, s * Dv, t.decay?.data ?? null, t.decay ? paramAt(t.decay, b, h) : 0, t.decay?.width ?? 0, beta);
      for (let g = 0; g < group; g++) slice.read(t.q, (b * H + h * group + g) * D, this.scale, out, (b * H + h * group + g) * Dv);
    });
    this.position++;
    return { data: out, dims: [B, H, Dv] };
  }

  state(): Tensor {
    const { B, Hkv, D, Dv } = this.sizes;
    const data = new Float32Array(B * Hkv * D * Dv);
    this.slices.forEach((slice, s) => data.set(slice.S, s * D * Dv));
    return { data, dims: [B, Hkv, D, Dv] };
  }

  reset(): void {
    const { D, Dv } = this.sizes;
    this.slices.forEach((slice, s) => {
      if (this.initial) slice.S.set(this.initial.subarray(s * D * Dv, (s + 1) * D * Dv));
      else slice.S.fill(0);
    });
    this.position = 0;
  }

  dispose(): void {}
}

/** The state in a pinned block of WebAssembly memory: the kernel's work block, then one state block per (batch, kv head). */
class WasmRecurrentState implements RecurrentState {
  readonly backend = 'wasm';
  position = 0;
  private block: WasmTensor | null;
  private readonly x: RecurrentKernels;
  private readonly workBytes: number;
  private readonly stateBytes: number;

  constructor(
    private readonly runtime: Runtime,
    private readonly rule: Rule,
    private readonly scale: number,
    private readonly sizes: Sizes,
    private readonly initial: Float32Array | null,
  ) {
    const { B, H, Hkv, D, Dv } = sizes;
    const x = (this.x = runtime.exports as unknown as RecurrentKernels);
    this.workBytes = x.recurrentWorkBytes(D, Dv, H / Hkv);
    this.stateBytes = x.recurrentStateBytes(D, Dv);
    const bytes = this.workBytes + B * Hkv * this.stateBytes;
    checkFits(bytes, 'options.batch, options.kvHeads, options.dim, options.valueDim', `the state and its work block`);
    this.block = runtime.arena.tensor([Math.ceil(bytes / 4)]);
    this.reset();
  }

  private pointer(): number {
    if (!this.block) throw new Error('recurrentState: the state was disposed');
    return this.block.byteOffset;
  }

  private slicePointer(s: number): number {
    return this.pointer() + this.workBytes + s * this.stateBytes;
  }

  step(q: Tensor | Float32Array, k: Tensor | Float32Array, v: Tensor | Float32Array, inputs?: RecurrentStepInputs): Tensor {
    this.pointer();
    const t = readStep(this.sizes, this.rule, q, k, v, inputs);
    const { B, H, Hkv, D, Dv } = this.sizes;
    const group = H / Hkv;
    const mode = modeOf({ rule: this.rule, decay: t.decay });
    const outLength = B * H * Dv;
    const parts = [t.q, t.k, t.v, t.decay?.data ?? 0, t.beta?.data ?? 0, outLength * 4];
    const data = this.runtime.call('recurrentState.step', parts, 5, outLength, ([qp, kp, vp, dp, bp, out]) => {
      for (let s = 0; s < B * Hkv; s++) {
        const b = Math.floor(s / Hkv);
        const h = s % Hkv;
        const row = b * H + h * group;
        this.x.recurrentRows(
          this.pointer(), this.slicePointer(s),
          qp + row * D * 4, 0, D, kp + s * D * 4, 0, vp + s * Dv * 4, 0,
          t.decay ? dp + paramAt(t.decay, b, h) * 4 : 0, 0, t.beta ? bp + paramAt(t.beta, b, h) * 4 : 0, 0,
          out + row * Dv * 4, 0, Dv, group, D, Dv, mode, this.scale, 0, 1,
        );
      }
    });
    this.position++;
    return { data, dims: [B, H, Dv] };
  }

  state(): Tensor {
    const { B, Hkv, D, Dv } = this.sizes;
    const length = B * Hkv * D * Dv;
    const data = this.runtime.call('recurrentState.state', [length * 4], 0, length, ([dst]) => {
      for (let s = 0; s < B * Hkv; s++) this.x.recurrentStore(this.slicePointer(s), dst + s * D * Dv * 4, D, Dv);
    });
    return { data, dims: [B, Hkv, D, Dv] };
  }

  reset(): void {
    const { B, Hkv, D, Dv } = this.sizes;
    const init = this.initial;
    this.runtime.call('recurrentState.reset', [init ?? 0], 0, 0, ([ip]) => {
      for (let s = 0; s < B * Hkv; s++) this.x.recurrentLoad(this.slicePointer(s), init ? ip + s * D * Dv * 4 : 0, D, Dv);
    });
    this.position = 0;
  }

  dispose(): void {
    this.block?.free();
    this.block = null;
  }
}
