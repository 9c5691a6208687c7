/**
 * Malformed calls for the hostile property suite: every place of a valid
 * call (q, k, v, their data and dims, every option at any depth, the
 * options object itself) and the values a careless or hostile caller puts
 * there, with what each outcome must be.
 */
import fc from 'fast-check';
import { lengthOf, type Call } from './arbitraries.js';

/** The user's own exception, thrown by a hostile getter: it may propagate as it is. */
export class UserError extends Error {}

/** An object whose every property read (and key listing) throws the user's error. */
function throwingObject(): object {
  const fail = () => {
    throw new UserError('hostile getter');
  };
  return new Proxy({}, { get: fail, has: fail, ownKeys: fail, getOwnPropertyDescriptor: fail });
}

/** A typed array whose buffer has been transferred away (length 0 from now on). */
function detached<A extends Float32Array | Uint8Array>(make: (buffer: ArrayBuffer) => A, bytes: number): A {
  const buffer = new ArrayBuffer(bytes);
  const view = make(buffer);
  structuredClone(buffer, { transfer: [buffer] });
  return view;
}

interface TensorLike {
  data: Float32Array;
  dims: number[];
}

/** Whether x is a tensor (a hostile getter makes it not one: the test must not throw the user's error itself). */
function isTensor(x: unknown): x is TensorLike {
  try {
    return x !== null && typeof x === 'object' && (x as TensorLike).data instanceof Float32Array && Array.isArray((x as TensorLike).dims);
  } catch {
    return false;
  }
}

/** Hostile values; those made from the value they replace keep its shape but break one thing. */
export const hostileValues: readonly ((original: unknown) => unknown)[] = [
  ...[NaN, Infinity, -Infinity, -1, -0.5, 0, 0.5, 2.5, 2 ** 31, 2 ** 32 + 1, 1e300, -1e300].map((x) => () => x),
  ...['3', '', true, null, undefined, [], [1, 2], {}].map((x) => () => (typeof x === 'object' && x !== null ? structuredClone(x) : x)),
  () => 3n,
  () => Symbol('hostile'),
  () => ({ valueOf: () => 3 }),
  () => throwingObject(),
  () => ({ data: detached((b) => new Float32Array(b), 16), dims: [2, 2] }),
  (t) => (isTensor(t) ? { data: detached((b) => new Float32Array(b), t.data.byteLength), dims: t.dims } : detached((b) => new Uint8Array(b), 8)),
  (t) => (isTensor(t) ? { data: t.data, dims: [...t.dims.slice(0, -1), t.dims[t.dims.length - 1] + 1] } : new Uint8Array(1)),
  (t) => (isTensor(t) ? { data: Float64Array.from(t.data), dims: t.dims } : new Int8Array(4)),
  (t) => (isTensor(t) ? { data: t.data, dims: [1, ...t.dims.slice(0, -1), 1, t.dims[t.dims.length - 1]] } : new Uint8ClampedArray(4)),
  (t) => (isTensor(t) ? { data: new Float32Array(0), dims: [2 ** 31, 0] } : [0.5]),
  (t) => (isTensor(t) ? { data: t.data, dims: t.dims.map((d, i) => (i === 0 ? String(d) : d)) } : { data: new Float32Array(1), dims: [1] }),
  (t) => (isTensor(t) ? { data: Array.from(t.data), dims: t.dims } : [NaN]),
  (t) => (isTensor(t) ? { data: t.data, dims: [NaN, ...t.dims.slice(1)] } : [2 ** 31]),
];

/** A place in a call: `q`, `q.dims`, `options`, `options.heads[0].window`, ... */
export type Path = string;

/** The places of a call: its inputs, their data and dims, every option at any depth, and the common options even when absent. */
export function pathsOf(call: Call): Path[] {
  const paths: Path[] = ['q', 'k', 'v', 'options'];
  for (const input of ['q', 'k', 'v'] as const) if (call[input]) paths.push(`${input}.data`, `${input}.dims`);
  const walk = (value: unknown, path: Path): void => {
    if (isTensor(value)) {
      paths.push(`${path}.data`, `${path}.dims`);
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => {
        paths.push(`${path}[${i}]`);
        walk(item, `${path}[${i}]`);
      });
    } else if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value)) {
      for (const [key, item] of Object.entries(value)) {
        paths.push(`${path}.${key}`);
        walk(item, `${path}.${key}`);
      }
    }
  };
  walk(call.options, 'options');
  for (const key of ['scale', 'causal', 'keyPadding']) if (!(key in call.options)) paths.push(`options.${key}`);
  return paths;
}

/** `a.b[2].c` as keys `['a', 'b', 2, 'c']`. */
function keysOf(path: Path): (string | number)[] {
  return path.split(/\.|(?=\[)/).map((key) => (key.startsWith('[') ? Number(key.slice(1, -1)) : key));
}

/** The value at a path of the call. */
export function getAt(call: Call, path: Path): unknown {
  return keysOf(path).reduce<unknown>((value, key) => (value as Record<string | number, unknown>)?.[key], call);
}

/**
 * The call with `value` at `path` (copying the containers on the way, never
 * the typed arrays); `undefined` at an object key removes the key.
 */
export function setAt(call: Call, path: Path, value: unknown, remove = false): Call {
  const set = (container: unknown, keys: (string | number)[]): unknown => {
    const [key, ...rest] = keys;
    const copy = (Array.isArray(container) ? [...container] : { ...(container as object) }) as Record<string | number, unknown>;
    if (rest.length > 0) copy[key] = set(copy[key], rest);
    else if (remove) delete copy[key];
    else copy[key] = value;
    return copy;
  };
  return set(call, keysOf(path)) as Call;
}

/**
 * The names a message may give for a hostile value at `path`: the path
 * itself, its tensor or list (for `.data`, `.dims` and list items), or the
 * list's items as `name[]`.
 */
export function acceptedNames(path: Path): Path[] {
  const names = [path];
  const parent = path.replace(/(\.data|\.dims|\[\d+\])$/, '');
  if (parent !== path) names.push(parent, `${parent}[]`);
  return names;
}

/** Does the message name the path (as a whole token: `options.e` is not named by `options.eps`)? */
export function namesPath(message: string, path: Path): boolean {
  return acceptedNames(path).some((name) => {
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return new RegExp(`(^|[^\\w.])${escaped}(?![\\w])`).test(message);
  });
}

/** Options whose value past what the sizes can use means the same as any such value (SPEC "Errors"). */
const reaching = new Set(['window', 'before', 'after', 'stride', 'bucketSize', 'factor', 'count']);

/**
 * The ordinary call a hostile value is meant to equal, when the SPEC gives
 * the value a meaning: an option set to undefined or null (absent), a reach
 * past the sequence (as if it were just past it), a seed (modulo 2^32), an
 * ignored input. Null otherwise: the call must then throw, or be a valid
 * call (checked as such).
 */
export function equivalentCall(call: Call, path: Path, value: unknown): Call | null {
  const keys = keysOf(path);
  const last = keys[keys.length - 1];
  if (path === 'options' && (value === undefined || value === null)) return { ...call, options: {} };
  // a mixed head's null keyPadding is its own "no padding", not the inherited one: an ordinary call
  if (value === null && path.startsWith('options.heads[') && last === 'keyPadding') return null;
  if (path.startsWith('options.') && typeof last === 'string' && (value === undefined || value === null)) {
    // null may be absent for tensors and objects (or a wrong type, as the variant reads it); for numbers, strings and booleans it is a wrong type
    if (value === undefined || !isPrimitiveOption(getAt(call, path))) return setAt(call, path, undefined, true);
    return null;
  }
  if (typeof value === 'number' && Number.isInteger(value)) {
    if (last === 'seed') return setAt(call, path, value >>> 0);
    const span = Math.max(lengthOf(call, call.v), call.q ? lengthOf(call, call.q) : 0) + 1;
    if (typeof last === 'string' && reaching.has(last) && value > span) return setAt(call, path, span);
  }
  if ((path === 'q' && call.name === 'synthesizer') || (path === 'k' && (call.name === 'synthesizer' || (call.name === 'lsh' && value == null)))) return call;
  return null;
}

/** Options that are numbers, strings or booleans: null is a wrong type for them, not absent. */
function isPrimitiveOption(value: unknown): boolean {
  return typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean' || value === undefined;
}

/**
 * Whether the hostile value is a sound tensor of another shape (dims that
 * still hold its data, or a whole tensor that does): the call is then a
 * conflict between two arguments, and an error may name either of them.
 */
export function makesOtherShape(call: Call, path: Path, value: unknown): boolean {
  const holds = (dims: unknown, length: number) =>
    Array.isArray(dims) && dims.every((d) => Number.isInteger(d) && d >= 0) && dims.reduce((a: number, b: number) => a * b, 1) === length;
  if (path.endsWith('.dims')) {
    const tensor = getAt(call, path.slice(0, -'.dims'.length));
    return isTensor(tensor) && holds(value, tensor.data.length);
  }
  return isTensor(value) && holds(value.dims, value.data.length);
}

/** A hostile place and value for a call. */
export interface Hostile {
  readonly path: Path;
  readonly make: (original: unknown) => unknown;
}

export function hostileArb(call: Call): fc.Arbitrary<Hostile> {
  const paths = pathsOf(call);
  return fc.record({ path: fc.constantFrom(...paths), make: fc.constantFrom(...hostileValues) });
}
