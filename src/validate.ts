/**
 * Option checks shared by every variant. Each throws a `TypeError` (wrong
 * type, missing option) or `RangeError` (out of range, dims that disagree)
 * whose message names the argument and the expected vs received value.
 */
import type { OptionTable } from './options.js';
import { asTensor, describe, type Heads } from './tensor.js';
import { MEMORY_LIMIT } from './runtime/arena.js';

/** The options every variant accepts (SPEC: "Options common to every variant"). */
export interface CommonOptions {
  /** Logit scale; default `1 / sqrt(D)`. A finite float32 (the kernels compute in float32). */
  scale?: number;
  /** Key j visible to query i only if `j <= i + (Nk - Nq)` (bottom-right aligned). */
  causal?: boolean;
  /** `[B, Nk]`, 1 = real key, 0 = padding that is never attended. */
  keyPadding?: Uint8Array;
  /**
   * The axis order of rank-4 inputs and of the output: `'bhnd'` (default,
   * `[B, H, N, D]`) or `'bnhd'` (`[B, N, H, D]`, a projection's output
   * reshaped). `'bnhd'` with rank-2 or rank-3 inputs is a RangeError.
   */
  layout?: 'bhnd' | 'bnhd';
}

/** The declaration of {@link CommonOptions}, spread into every variant's. */
export const commonOptions = {
  scale: { type: '`number`', doc: 'logit scale; default `1 / sqrt(D)`' },
  causal: { type: '`boolean`', doc: 'key j visible to query i only if `j <= i + (Nk - Nq)` (bottom-right aligned)' },
  keyPadding: { type: '`Uint8Array` `[B, Nk]`', doc: '1 = real key, 0 = padding never attended' },
  layout: { type: "`'bhnd' | 'bnhd'`", doc: "rank-4 inputs as `[B, H, N, D]` (default) or `[B, N, H, D]`; the output in the same layout" },
} as const satisfies OptionTable;

export type Options = Readonly<Record<string, unknown>>;

/** Checks that options is undefined or a plain object. */
export function asOptions(value: unknown, name = 'options'): Options {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${name}: expected an object, received ${describe(value)}`);
  }
  return value as Options;
}

export interface NumberRule {
  integer?: boolean;
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Values must be strictly greater than this. */
  above?: number;
  max?: number;
  /**
   * The value reaches the float32 kernels as it is: it must stay finite in
   * float32 (and above `above` once rounded to float32).
   */
  float32?: boolean;
}

/** The largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** Iteration counts (`iterations` of sinkhorn and routing) are at most this (SPEC "Errors"). */
export const MAX_ITERATIONS = 1000;

/** The rule of an `iterations` option. */
export const iterationCount: NumberRule = { integer: true, min: 0, max: MAX_ITERATIONS };

function checkNumber(value: unknown, name: string, rule: NumberRule): number {
  const kind = rule.integer ? 'an integer' : 'a finite number';
  if (typeof value !== 'number' || !Number.isFinite(value) || (rule.integer && !Number.isInteger(value))) {
    throw new TypeError(`${name}: expected ${kind}, received ${describe(value)}`);
  }
  if (rule.min !== undefined && value < rule.min) throw new RangeError(`${name}: expected ${kind} >= ${rule.min}, received ${value}`);
  if (rule.above !== undefined && value <= rule.above) throw new RangeError(`${name}: expected ${kind} > ${rule.above}, received ${value}`);
  if (rule.max !== undefined && value > rule.max) throw new RangeError(`${name}: expected ${kind} <= ${rule.max}, received ${value}`);
  if (rule.float32 && (Math.abs(value) > FLOAT32_MAX || (rule.above !== undefined && Math.fround(value) <= rule.above))) {
    throw new RangeError(`${name}: expected a number that float32 holds (magnitude <= ${FLOAT32_MAX}${rule.above !== undefined ? `, above ${rule.above} once rounded` : ''}), received ${value}`);
  }
  return value;
}

/**
 * Checks that `bytes` fit in WebAssembly memory (what a kernel call can hold),
 * before anything is allocated: a `RangeError` naming `name`, the argument
 * whose size asks for them.
 */
export function checkFits(bytes: number, name: string, what: string): void {
  if (bytes > MEMORY_LIMIT) {
    throw new RangeError(`${name}: ${what} needs ${bytes} bytes, more than the ${MEMORY_LIMIT} bytes WebAssembly memory can address`);
  }
}

/**
 * The sizes given to a seeded draw (the exported parameter helpers), each an
 * integer >= 1, and the float32 tensor they make checked to fit in
 * WebAssembly memory before it is drawn.
 */
export function drawSizes(sizes: Readonly<Record<string, unknown>>, prefix: string, floats: (values: number[]) => number): number[] {
  const keys = Object.keys(sizes);
  const values = keys.map((key) => requiredNumber(sizes, key, { integer: true, min: 1 }, prefix));
  checkFits(floats(values) * 4, keys.map((key) => `${prefix}.${key}`).join(', '), `a tensor of ${keys.map((key, i) => `${key} = ${values[i]}`).join(', ')}`);
  return values;
}

/** `options[key]` as a number, or `fallback` when absent. */
export function optionalNumber(options: Options, key: string, fallback: number, rule: NumberRule = {}, prefix = 'options'): number {
  const value = options[key];
  return value === undefined ? fallback : checkNumber(value, `${prefix}.${key}`, rule);
}

/** `options[key]` as a number; a `TypeError` when absent. */
export function requiredNumber(options: Options, key: string, rule: NumberRule = {}, prefix = 'options'): number {
  if (options[key] === undefined) throw new TypeError(`${prefix}.${key}: required option is missing`);
  return checkNumber(options[key], `${prefix}.${key}`, rule);
}

export function optionalBoolean(options: Options, key: string, fallback: boolean, prefix = 'options'): boolean {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new TypeError(`${prefix}.${key}: expected a boolean, received ${describe(value)}`);
  return value;
}

/** A list of non-negative integer positions (deduplicated, ascending). */
export function positions(value: unknown, name: string): number[] {
  if (!Array.isArray(value)) throw new TypeError(`${name}: expected an array of positions, received ${describe(value)}`);
  for (const p of value) checkNumber(p, `${name}[]`, { integer: true, min: 0 });
  return [...new Set(value as number[])].sort((a, b) => a - b);
}

/** The common options, checked against the problem's shapes. */
export interface Common {
  scale: number;
  causal: boolean;
  /** `[B, Nk]` or null. */
  keyPadding: Uint8Array | null;
}

/**
 * Parses `scale`, `causal` and `keyPadding`. `D` is the feature size the
 * default scale is taken from; `B` and `Nk` size the padding mask.
 */
export function parseCommon(options: Options, D: number, B: number, Nk: number, prefix = 'options'): Common {
  const scale = optionalNumber(options, 'scale', 1 / Math.sqrt(D), { float32: true }, prefix);
  const causal = optionalBoolean(options, 'causal', false, prefix);
  const pad = options.keyPadding;
  let keyPadding: Uint8Array | null = null;
  if (pad !== undefined && pad !== null) {
    if (!(pad instanceof Uint8Array)) throw new TypeError(`${prefix}.keyPadding: expected a Uint8Array [B, Nk], received ${describe(pad)}`);
    if (pad.length !== B * Nk) {
      throw new RangeError(`${prefix}.keyPadding: expected ${B * Nk} values ([B, Nk] = [${B}, ${Nk}]), received ${pad.length}`);
    }
    keyPadding = pad;
  }
  return { scale, causal, keyPadding };
}

/** Throws when a variant that cannot be causal is asked to be. */
export function rejectCausal(common: Common, variant: string, prefix = 'options'): void {
  if (common.causal) throw new RangeError(`${prefix}.causal: ${variant} cannot be causal, received true`);
}

/**
 * A parameter tensor whose leading head axis may be `H` or 1 (broadcast over
 * heads), or may be left out (`rank = dims.length` of one head). The returned
 * `headStride` is 0 when the parameter is shared by all heads.
 */
export interface Param {
  data: Float32Array;
  headStride: number;
}

/**
 * Checks a parameter tensor against `inner` (the dims of one head's slice).
 * Accepted: `[...inner]`, `[1, ...inner]` and `[H, ...inner]`.
 */
export function headParam(value: unknown, name: string, H: number, inner: readonly number[], innerNames: string): Param {
  const t = asTensor(value, name);
  const size = inner.reduce((a, b) => a * b, 1);
  const want = `[H|1, ${innerNames}] = [${H}|1, ${inner.join(', ')}]`;
  const d = t.dims;
  const tail = d.length === inner.length ? d : d.slice(1);
  const lead = d.length === inner.length ? 1 : d[0];
  if ((d.length !== inner.length && d.length !== inner.length + 1) || !tail.every((x, i) => x === inner[i]) || (lead !== 1 && lead !== H)) {
    throw new RangeError(`${name}.dims: expected ${want}, received [${d.join(', ')}]`);
  }
  return { data: t.data, headStride: lead === 1 ? 0 : size };
}

/** Checks that two inputs agree on a size. */
export function sameSize(a: number, b: number, what: string, received: string): void {
  if (a !== b) throw new RangeError(`${what}: expected ${a}, received ${b} (${received})`);
}

/**
 * Checks that q, k, v agree on B, k and v on N and on their heads, q and k
 * on D, and that q's H heads share k's Hkv heads evenly (grouped-query
 * attention: `H mod Hkv == 0`; Hkv = H is ordinary multi-head attention).
 * `keyName` is the input the keys came from (`q` for lsh's shared ones).
 */
export function checkQKV(q: Heads, k: Heads, v: Heads | null, keyName = 'k'): void {
  const layout = layoutNote(q, k, v);
  sameSize(q.B, k.B, 'k.dims: batch size B must match q', `q B = ${q.B}, k B = ${k.B}${layout}`);
  if (k.H === 0 ? q.H !== 0 : q.H % k.H !== 0) {
    throw new RangeError(`k.dims: q's head count H must be a multiple of k's head count Hkv (grouped-query attention), received H = ${q.H}, Hkv = ${k.H}${layout}`);
  }
  sameSize(q.D, k.D, 'k.dims: feature size D must match q', `q D = ${q.D}, k D = ${k.D}${layout}`);
  if (v) {
    const key = keyName;
    sameSize(k.B, v.B, `v.dims: batch size B must match ${key}`, `${key} B = ${k.B}, v B = ${v.B}${layout}`);
    sameSize(k.H, v.H, `v.dims: head count must match ${key}`, `${key} heads = ${k.H}, v heads = ${v.H}${layout}`);
    sameSize(k.N, v.N, `v.dims: key count Nk must match ${key}`, `${key} Nk = ${k.N}, v Nk = ${v.N}${layout}`);
  }
}

/**
 * How rank-4 dims were read, for the messages of inputs that disagree: the
 * disagreement may be the layout's (`[B, N, H, D]` inputs read as 'bhnd').
 */
function layoutNote(...inputs: (Heads | null)[]): string {
  const rank4 = inputs.find((x) => x?.rank === 4);
  if (!rank4) return '';
  return rank4.layout === 'bnhd' ? ", rank-4 dims read as [B, N, H, D] (options.layout 'bnhd')" : ", rank-4 dims read as [B, H, N, D] (options.layout 'bhnd')";
}
