/**
 * `mask`, `bias` and `softcap`, the options of `full` and the pattern family
 * (SPEC "Masks, bias and soft-capping"), parsed once into the views that the
 * float64 reference and the kernels read. The logit of a visible pair is
 * `softcap(scale * q_i . k_j) + bias_ij`; a pair is visible when the
 * variant's pattern, `causal`, `keyPadding` and `mask` allow it and its logit
 * is not `-Infinity`.
 */
import { declareOptions } from './options.js';
import { checkDims, describe, type Tensor } from './tensor.js';
import { FLOAT32_MAX, type Options } from './validate.js';

/**
 * A mask or bias seen as the broadcast `[B, H, Nq, Nk]` it stands for,
 * without materialising it: element (b, h, i, j) is
 * `data[b * sb + h * sh + i * si + j * sj]` with `strides = [sb, sh, si, sj]`,
 * a stride 0 on every axis of size 1 (broadcast). `data` is read through the
 * strides only: for a head of `mixed` it is a subarray that starts at the head.
 */
export interface BroadcastView<T extends Uint8Array | Float32Array> {
  readonly data: T;
  /** The given dims right-aligned to rank 4: `[B|1, H|1, Nq|1, Nk|1]` (1 = broadcast). */
  readonly dims: readonly [number, number, number, number];
  /** Element strides `[sb, sh, si, sj]` into `data`; 0 on broadcast axes. */
  readonly strides: readonly [number, number, number, number];
}

/** `options.mask`: nonzero = the pair may be attended, 0 = hidden. */
export type MaskView = BroadcastView<Uint8Array>;

/** `options.bias`: added to the (soft-capped) logits; `-Infinity` hides the pair. */
export type BiasView = BroadcastView<Float32Array>;

/**
 * The parsed `mask`, `bias` and `softcap` of a `full` or pattern call
 * (part of `FullParsed` and `PatternParsed`), `null` where not given.
 */
export interface LogitOptions {
  readonly mask: MaskView | null;
  readonly bias: BiasView | null;
  /** c > 0: logits become `c * tanh(l / c)` before the bias is added; null: no cap. */
  readonly softcap: number | null;
}

/** A boolean mask tensor: `Uint8Array` data, nonzero = may be attended. */
export interface MaskTensor {
  readonly data: Uint8Array;
  readonly dims: readonly number[];
}

/**
 * Options of `full` and the pattern family (and of `mixed`, for all its
 * heads): a mask, an additive bias and soft-capping of the logits. Dims
 * broadcast to `[B, H, Nq, Nk]` by NumPy's rules: `[Nq|1, Nk|1]`,
 * `[H|1, Nq|1, Nk|1]` or `[B|1, H|1, Nq|1, Nk|1]` (H: query heads).
 */
export interface ScoringOptions {
  /** Nonzero = the key may be attended, 0 = hidden. */
  mask?: MaskTensor;
  /** Added to the logits (ALiBi, T5 buckets, any additive mask); finite values or `-Infinity`, which hides the key. */
  bias?: Tensor;
  /** c > 0: logits become `c * tanh(l / c)` before the bias is added (Gemma 2, ONNX `Attention`). */
  softcap?: number;
}

/** The declaration of {@link ScoringOptions}: the names that {@link parseLogitOptions} reads. */
export const scoringOptions = declareOptions<ScoringOptions>()({
  mask: { type: '`{ data: Uint8Array, dims }`', doc: 'nonzero = the key may be attended; dims broadcast to `[B, H, Nq, Nk]` by NumPy rules' },
  bias: { type: '`Tensor`', doc: 'added to the logits, same broadcasting; `-Infinity` hides the key (ALiBi, T5 buckets, additive masks)' },
  softcap: { type: '`number`', doc: 'c > 0: logits become `c tanh(l / c)` before the bias is added (Gemma 2)' },
});

/** The sizes a mask or bias broadcasts to. */
export interface LogitShape {
  readonly B: number;
  readonly H: number;
  readonly Nq: number;
  readonly Nk: number;
}

function given(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** Checks a `{ data, dims }` mask or bias and views it as the broadcast `[B, H, Nq, Nk]`. */
function broadcastView<T extends Uint8Array | Float32Array>(value: unknown, name: string, dataType: 'Uint8Array' | 'Float32Array', shape: LogitShape): BroadcastView<T> {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) {
    throw new TypeError(`${name}: expected a tensor { data: ${dataType}, dims: number[] }, received ${describe(value)}`);
  }
  const { data, dims: givenDims } = value as { data?: unknown; dims?: unknown };
  if (!(data instanceof (dataType === 'Uint8Array' ? Uint8Array : Float32Array))) {
    throw new TypeError(`${name}.data: expected a ${dataType}, received ${describe(data)}`);
  }
  const dims = checkDims(givenDims, (data as T).length, name);
  const { B, H, Nq, Nk } = shape;
  const want = `[Nq|1, Nk|1], [H|1, Nq|1, Nk|1] or [B|1, H|1, Nq|1, Nk|1] with [B, H, Nq, Nk] = [${B}, ${H}, ${Nq}, ${Nk}]`;
  const aligned = [1, 1, ...dims].slice(-4) as [number, number, number, number];
  const sizes = [B, H, Nq, Nk];
  if (dims.length < 2 || dims.length > 4 || !aligned.every((d, axis) => d === 1 || d === sizes[axis])) {
    throw new RangeError(`${name}.dims: expected ${want}, received [${dims.join(', ')}]`);
  }
  const strides = [0, 0, 0, 0] as [number, number, number, number];
  let stride = 1;
  for (let axis = 3; axis >= 0; axis--) {
    strides[axis] = aligned[axis] === 1 ? 0 : stride;
    stride *= aligned[axis];
  }
  return { data: data as T, dims: aligned, strides };
}

/**
 * Reads `mask`, `bias` and `softcap` (prefix: where the options sit, e.g.
 * `options`) against the problem's `[B, H, Nq, Nk]`: TypeError for wrong
 * types, RangeError for dims that do not broadcast or a cap that is not > 0.
 */
export function parseLogitOptions(options: Options, shape: LogitShape, prefix = 'options'): LogitOptions {
  const mask = given(options.mask) ? broadcastView<Uint8Array>(options.mask, `${prefix}.mask`, 'Uint8Array', shape) : null;
  const bias = given(options.bias) ? broadcastView<Float32Array>(options.bias, `${prefix}.bias`, 'Float32Array', shape) : null;
  let softcap: number | null = null;
  if (given(options.softcap)) {
    const c = options.softcap;
    if (typeof c !== 'number' || !Number.isFinite(c)) throw new TypeError(`${prefix}.softcap: expected a finite number > 0, received ${describe(c)}`);
    if (c <= 0) throw new RangeError(`${prefix}.softcap: expected a finite number > 0, received ${c}`);
    // the kernels cap in float32, where a larger cap is Infinity (and Infinity * tanh(0) is NaN)
    if (c > FLOAT32_MAX) throw new RangeError(`${prefix}.softcap: expected a number that float32 holds (at most ${FLOAT32_MAX}), received ${c}`);
    softcap = c;
  }
  return { mask, bias, softcap };
}

/**
 * A well-formed mask or bias of rank 3 or 4 as its batch 0, head 0 slice
 * `[Nq|1, Nk|1]`, for `mask()`, which draws one batch and head; anything
 * else is given back as it is, for the parser to judge.
 */
export function firstHeadOf(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  const { data, dims } = value as { data?: unknown; dims?: unknown };
  if (!(data instanceof Uint8Array || data instanceof Float32Array) || !Array.isArray(dims) || dims.length < 3) return value;
  if (!dims.every((d) => Number.isInteger(d) && d >= 0) || dims.reduce((a: number, b: number) => a * b, 1) !== data.length) return value;
  const [rows, keys] = dims.slice(-2) as [number, number];
  return { data: data.subarray(0, rows * keys), dims: [rows, keys] };
}

/** Does the call use any of them? */
export function hasLogitOptions(parsed: LogitOptions): boolean {
  return parsed.mask !== null || parsed.bias !== null || parsed.softcap !== null;
}

/** Head h of a view, as the view of a one-head problem (a head of `mixed`). */
export function viewOfHead<T extends Uint8Array | Float32Array>(view: BroadcastView<T>, h: number): BroadcastView<T> {
  const [sb, sh, si, sj] = view.strides;
  const [db, , dq, dk] = view.dims;
  return { data: view.data.subarray(h * sh) as T, dims: [db, 1, dq, dk], strides: [sb, 0, si, sj] };
}

/** Where element (b, h, i, 0) of the broadcast sits in `view.data`: add `j * strides[3]`. */
export function rowStart(view: BroadcastView<Uint8Array | Float32Array>, b: number, h: number, i: number): number {
  const [sb, sh, si] = view.strides;
  return b * sb + h * sh + i * si;
}
