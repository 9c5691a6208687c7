/**
 * Reading an ONNX node's inputs and attributes as onnxruntime-web gives them
 * (`{ type, data, dims }` tensors; attributes as plain numbers), shared by
 * the ONNX operators. Every check throws a TypeError (wrong type, missing,
 * unknown name) or RangeError naming `inputs.<name>` / `attributes.<name>`.
 */
import { checkDims, describe, type Tensor } from '../tensor.js';

/** A tensor as onnxruntime-web makes it: float32, bool (0/1 in a Uint8Array) or int64 (BigInt64Array, or an Int32Array). */
export interface OnnxTensor {
  readonly type?: string;
  readonly data: Float32Array | Uint8Array | BigInt64Array | Int32Array;
  readonly dims: readonly number[];
}

/** The element types the operators read. */
export type ElementType = 'float32' | 'bool' | 'int64';

/** A checked input: its element type, data and dims. */
export interface TypedTensor {
  readonly type: ElementType;
  readonly data: Float32Array | Uint8Array | BigInt64Array | Int32Array;
  readonly dims: readonly number[];
}

/** Is an optional input or attribute given? (ONNX marks an absent input by an empty name: here a missing key.) */
export function isGiven(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** Checks that `value` is undefined or a plain object (the inputs or the attributes of a node). */
export function asRecord(value: unknown, name: string): Readonly<Record<string, unknown>> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TypeError(`${name}: expected an object, received ${describe(value)}`);
  return value as Readonly<Record<string, unknown>>;
}

/** Levenshtein distance, for suggesting a name. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length];
}

/**
 * Throws a TypeError naming the first key of `record` (set to anything but
 * undefined) that `accepted` does not list, with the accepted names and the
 * nearest one when it is close.
 */
export function checkNames(record: Readonly<Record<string, unknown>>, accepted: readonly string[], prefix: string, op: string): void {
  for (const key of Object.keys(record)) {
    if (record[key] === undefined || accepted.includes(key)) continue;
    const nearest = accepted.map((name) => ({ name, distance: editDistance(key.toLowerCase(), name.toLowerCase()) })).sort((a, b) => a.distance - b.distance)[0];
    const hint = nearest && nearest.distance <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean '${nearest.name}'?)` : '';
    throw new TypeError(`${prefix}.${key}: ${op} takes no such ${prefix === 'inputs' ? 'input' : 'attribute'}${hint}; it takes ${accepted.map((n) => `'${n}'`).join(', ')}`);
  }
}

/** The element type of an onnxruntime-web tensor's data and `type`, or null when this library does not read it. */
function elementType(data: unknown, type: unknown): ElementType | null {
  if (data instanceof Float32Array && (type === undefined || type === 'float32')) return 'float32';
  if (data instanceof Uint8Array && type === 'bool') return 'bool';
  if (data instanceof BigInt64Array && (type === undefined || type === 'int64')) return 'int64';
  if (data instanceof Int32Array && (type === undefined || type === 'int64' || type === 'int32')) return 'int64';
  return null;
}

const TYPE_FORMS: Readonly<Record<ElementType, string>> = {
  float32: "float32 (a Float32Array)",
  bool: "bool (a Uint8Array of 0/1 with type: 'bool')",
  int64: 'int64 (a BigInt64Array or an Int32Array)',
};

/** Checks an input tensor of one of the `accepted` element types. */
export function readTensor(value: unknown, name: string, accepted: readonly ElementType[]): TypedTensor {
  const want = accepted.map((t) => TYPE_FORMS[t]).join(' or ');
  if (value === null || typeof value !== 'object') throw new TypeError(`${name}: expected a tensor { type, data, dims } of ${want}, received ${describe(value)}`);
  const { type, data, dims } = value as { type?: unknown; data?: unknown; dims?: unknown };
  const element = elementType(data, type);
  if (element === null || !accepted.includes(element)) {
    throw new TypeError(`${name}: expected a tensor of ${want}, received type ${describe(type)} with data ${describe(data)}`);
  }
  const typed = data as TypedTensor['data'];
  return { type: element, data: typed, dims: checkDims(dims, typed.length, name) };
}

/** A float32 input as a library tensor. */
export function floatTensor(value: unknown, name: string): Tensor {
  const t = readTensor(value, name, ['float32']);
  return { data: t.data as Float32Array, dims: t.dims };
}

/** The values of an int64 tensor as numbers. */
export function integers(t: TypedTensor): number[] {
  return Array.from(t.data as BigInt64Array | Int32Array, Number);
}

/** An integer attribute (a number or a bigint), or `fallback` when absent. */
export function intAttribute(attributes: Readonly<Record<string, unknown>>, key: string, fallback: number): number;
export function intAttribute(attributes: Readonly<Record<string, unknown>>, key: string, fallback: null): number | null;
export function intAttribute(attributes: Readonly<Record<string, unknown>>, key: string, fallback: number | null): number | null {
  const value = attributes[key];
  if (!isGiven(value)) return fallback;
  const n = typeof value === 'bigint' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new TypeError(`attributes.${key}: expected an integer, received ${describe(value)}`);
  return n;
}

/** A float attribute (any number: ranges are the operator's to check), or null when absent. */
export function floatAttribute(attributes: Readonly<Record<string, unknown>>, key: string): number | null {
  const value = attributes[key];
  if (!isGiven(value)) return null;
  if (typeof value !== 'number') throw new TypeError(`attributes.${key}: expected a number, received ${describe(value)}`);
  return value;
}
