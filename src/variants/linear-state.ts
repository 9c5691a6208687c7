/**
 * The recurrent state of `linear` (`attn.linearState`): causal linear
 * attention one token at a time, its float64 sums in WebAssembly memory
 * (assembly/variants/linear-state.ts) or in a JS array (the float64
 * reference). The batch variant and its options are in linear.ts.
 */
import { LinearRecurrentState } from '../reference/linear.js';
import type { Runtime } from '../runtime/runtime.js';
import type { WasmTensor } from '../runtime/arena.js';
import { declareOptions, rejectUndeclared } from '../options.js';
import { asTensor, describe, MAX_AXIS, type Heads, type Tensor } from '../tensor.js';
import { asOptions, checkFits, optionalNumber, requiredNumber, type Options } from '../validate.js';
import { featureCountOf, linear, linearOptions, MAP_CODE, parseFeatureMap, transposedProjection, type LinearOptions, type LinearParsed } from './linear.js';

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

/** The kernels of assembly/variants/linear-state.ts. */
interface LinearStateKernels {
  /** Bytes of a state block for `slices` (batch, head) pairs and the transposed projections (`wtFloats`). */
  linearStateBytes(slices: number, F: number, Dv: number, wtFloats: number): number;
  /** Where the transposed projections go in a state block (bytes from its start). */
  linearStateProjection(): number;
  /** Lays out a state block (projections already in place) and empties it. */
  linearStateInit(st: number, slices: number, H: number, kind: number, D: number, Dv: number, F: number, M: number, wtFloats: number, wtHeadStride: number, scale: number, logEps: number): void;
  /** Forgets every key. */
  linearStateReset(st: number): void;
  /** One token for slices [s0, s1): adds its key and value, answers its query. */
  linearStep(st: number, q: number, k: number, v: number, pad: number, out: number, s0: number, s1: number): void;
}

/** The state in a pinned block of WebAssembly memory: float64 S, z and the log scale per slice. */
class WasmLinearState implements LinearState {
  readonly backend = 'wasm';
  position = 0;
  private block: WasmTensor | null;
  private readonly x: LinearStateKernels;

  constructor(
    private readonly runtime: Runtime,
    parsed: LinearParsed,
    private readonly shape: StateShape,
  ) {
    const { B, H, D, Dv } = shape;
    const x = (this.x = runtime.exports as unknown as LinearStateKernels);
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
