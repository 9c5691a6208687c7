/**
 * Tensors as the library sees them: the `{ data, dims }` shape of
 * onnxruntime-web and transformers.js tensors, row-major float32.
 */

/** A row-major float32 tensor. */
export interface Tensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/**
 * How a rank-4 input orders its axes (SPEC "Layout"): `'bhnd'` is
 * `[B, H, N, D]`, `'bnhd'` is `[B, N, H, D]` (a projection's output reshaped,
 * onnxruntime's BSNH).
 */
export type Layout = 'bhnd' | 'bnhd';

/**
 * A validated attention input seen as `[B, H, N, D]`. Rank 2 (`[N, D]`) and
 * rank 3 (`[H, N, D]`) inputs mean `B = 1` (and `H = 1`).
 */
export interface Heads {
  readonly data: Float32Array;
  readonly B: number;
  readonly H: number;
  readonly N: number;
  readonly D: number;
  /** The rank the caller used, so that outputs can be given back in the same form. */
  readonly rank: 2 | 3 | 4;
  /**
   * The order of `data`: `'bhnd'` (element (b, h, n, d) at `((b H + h) N + n) D + d`)
   * or `'bnhd'` (at `((b N + n) H + h) D + d`). Variants see `'bhnd'` unless
   * their kernel reads `'bnhd'` in place (src/layout.ts).
   */
  readonly layout: Layout;
}

/** The shape of heads, enough to address them. */
export type HeadShape = Pick<Heads, 'H' | 'N' | 'D' | 'layout'>;

/**
 * Where, in `x.data`, the N rows start that query head h of batch b reads,
 * for a problem of H query heads: x's own head h when x has H heads, else
 * (grouped-query attention, `H mod x.H == 0`) the shared head
 * `floor(h / (H / x.H))`, read in place. The rows are {@link rowStride} apart.
 */
export function headOffset(x: HeadShape, b: number, h: number, H: number): number {
  const head = Math.floor(h / (H / x.H));
  return x.layout === 'bnhd' ? (b * x.N * x.H + head) * x.D : (b * x.H + head) * x.N * x.D;
}

/** The distance between consecutive rows of a head of x, in floats: D, or H D in the `'bnhd'` layout. */
export function rowStride(x: HeadShape): number {
  return x.layout === 'bnhd' ? x.H * x.D : x.D;
}

/** `TypeError` / `RangeError` message naming the argument and what was expected vs received. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return `[${value.map(describe).join(', ')}]`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as unknown as ArrayLike<number>).length})`;
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}

/**
 * WebAssembly memory holds at most 2^30 float32 values, so no axis is longer
 * (even of an empty tensor: kernels take sizes as 32-bit integers).
 */
export const MAX_AXIS = 2 ** 30;

function isDim(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0;
}

/** Checks that `value` is a `{ data: Float32Array, dims }` tensor whose sizes agree. */
export function asTensor(value: unknown, name: string): Tensor {
  if (value === null || typeof value !== 'object') {
    throw new TypeError(`${name}: expected a tensor { data: Float32Array, dims: number[] }, received ${describe(value)}`);
  }
  const { data, dims } = value as { data?: unknown; dims?: unknown };
  if (!(data instanceof Float32Array)) {
    throw new TypeError(`${name}.data: expected a Float32Array, received ${describe(data)}`);
  }
  return { data, dims: checkDims(dims, data.length, name) };
}

/** Checks that `dims` is an array of non-negative integers holding `length` values (the data of `name`). */
export function checkDims(dims: unknown, length: number, name: string): readonly number[] {
  if (!Array.isArray(dims) || !dims.every(isDim)) {
    throw new TypeError(`${name}.dims: expected an array of non-negative integers, received ${describe(dims)}`);
  }
  if (dims.some((n) => n > MAX_AXIS)) {
    throw new RangeError(`${name}.dims: expected sizes of at most ${MAX_AXIS} (what WebAssembly memory holds), received [${dims.join(', ')}]`);
  }
  const size = dims.reduce((a: number, b: number) => a * b, 1);
  if (size !== length) {
    throw new RangeError(`${name}.dims: [${dims.join(', ')}] hold ${size} values, but data has ${length}`);
  }
  return dims;
}

/**
 * Validates an attention input (`[N, D]`, `[H, N, D]` or `[B, H, N, D]`; with
 * `layout: 'bnhd'`, `[B, N, H, D]` only) and views it as heads.
 */
export function asHeads(value: unknown, name: string, layout: Layout = 'bhnd'): Heads {
  const t = asTensor(value, name);
  const r = t.dims.length;
  if (layout === 'bnhd' && r !== 4) {
    throw new RangeError(`options.layout: 'bnhd' needs rank-4 inputs [B, N, H, D], received ${name}.dims [${t.dims.join(', ')}]`);
  }
  if (r < 2 || r > 4) {
    throw new RangeError(`${name}.dims: expected rank 2 [N, D], 3 [H, N, D] or 4 [B, H, N, D], received [${t.dims.join(', ')}]`);
  }
  const [B, second, third, D] = [1, 1, 1, 1, ...t.dims].slice(-4) as [number, number, number, number];
  const [H, N] = layout === 'bnhd' ? [third, second] : [second, third];
  if (D === 0) throw new RangeError(`${name}.dims: the feature size D must be at least 1, received [${t.dims.join(', ')}]`);
  return { data: t.data, B, H, N, D, rank: r as 2 | 3 | 4, layout };
}

/** The output tensor `[B, H, N, D]` (`[B, N, H, D]` for `'bnhd'`), given back in the caller's rank. */
export function toTensor(data: Float32Array, B: number, H: number, N: number, D: number, rank: 2 | 3 | 4, layout: Layout = 'bhnd'): Tensor {
  if (layout === 'bnhd') return { data, dims: [B, N, H, D] };
  const dims = rank === 4 ? [B, H, N, D] : rank === 3 ? [H, N, D] : [N, D];
  return { data, dims };
}
