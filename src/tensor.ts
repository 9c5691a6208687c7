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
  if (!Array.isArray(dims) || !dims.every(isDim)) {
    throw new TypeError(`${name}.dims: expected an array of non-negative integers, received ${describe(dims)}`);
  }
  if (dims.some((n) => n > MAX_AXIS)) {
    throw new RangeError(`${name}.dims: expected sizes of at most ${MAX_AXIS} (what WebAssembly memory holds), received [${dims.join(', ')}]`);
  }
  const size = dims.reduce((a: number, b: number) => a * b, 1);
  if (size !== data.length) {
    throw new RangeError(`${name}: dims [${dims.join(', ')}] hold ${size} values, but data has ${data.length}`);
  }
  return { data, dims };
}

/** Validates an attention input (`[N, D]`, `[H, N, D]` or `[B, H, N, D]`) and views it as heads. */
export function asHeads(value: unknown, name: string): Heads {
  const t = asTensor(value, name);
  const r = t.dims.length;
  if (r < 2 || r > 4) {
    throw new RangeError(`${name}.dims: expected rank 2 [N, D], 3 [H, N, D] or 4 [B, H, N, D], received [${t.dims.join(', ')}]`);
  }
  const [B, H, N, D] = [1, 1, 1, 1, ...t.dims].slice(-4) as [number, number, number, number];
  if (D === 0) throw new RangeError(`${name}.dims: the feature size D must be at least 1, received [${t.dims.join(', ')}]`);
  return { data: t.data, B, H, N, D, rank: r as 2 | 3 | 4 };
}

/** The output tensor `[B, H, N, D]`, given back in the caller's rank. */
export function toTensor(data: Float32Array, B: number, H: number, N: number, D: number, rank: 2 | 3 | 4): Tensor {
  const dims = rank === 4 ? [B, H, N, D] : rank === 3 ? [H, N, D] : [N, D];
  return { data, dims };
}
