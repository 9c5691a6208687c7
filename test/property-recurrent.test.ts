// Property suite of attn.recurrent: valid calls of every rule (grouped heads, ranks 2 to 4,
// 'bnhd', decay per head or per key dim, shared beta, initial state) agree with the float64
// recurrence and give the same bits on the pool; hostile values at every place of a call give
// a TypeError / RangeError naming that place (or are a valid call, checked as such), memory
// back at its level and the next call exact.
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { createAttention, type Attention, type RecurrentOptions } from '../dist/index.js';
import { bytes } from './backends.js';
import { FUZZING, fuzzParams } from './fuzz.js';
import { hostileValues, makesOtherShape, namesPath, UserError } from './hostile.js';
import { randn, type T } from './random.js';
import { Rng } from '../dist/prng.js';

let one: Attention;
let two: Attention;
let js: Attention;
beforeAll(async () => {
  one = await createAttention({ backend: 'wasm', threads: 1 });
  two = await createAttention({ backend: 'wasm', threads: 2 });
  js = await createAttention({ backend: 'js' });
});
afterAll(() => two.dispose());

const timeout = FUZZING ? 3_600_000 : 60_000;

interface RecurrentCall {
  q: T;
  k: T;
  v: T;
  options: Record<string, unknown>;
}

/** Values from `draw`, seeded. */
function values(dims: number[], seed: number, draw: (rng: Rng) => number): T {
  const rng = new Rng(seed);
  return { data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => draw(rng)), dims };
}

/** Rows of unit length: the delta rules' contract (contractive updates, a well-conditioned reference). */
function unitRows(t: T): T {
  const D = t.dims[t.dims.length - 1];
  for (let r = 0; r < t.data.length / D; r++) {
    const row = t.data.subarray(r * D, (r + 1) * D);
    const norm = Math.hypot(...row) || 1;
    for (let d = 0; d < D; d++) row[d] /= norm;
  }
  return t;
}

const callArb: fc.Arbitrary<RecurrentCall> = fc
  .record({
    B: fc.integer({ min: 1, max: 2 }),
    Hkv: fc.integer({ min: 1, max: 3 }),
    group: fc.integer({ min: 1, max: 3 }),
    N: fc.integer({ min: 1, max: 150 }),
    D: fc.integer({ min: 1, max: 40 }),
    Dv: fc.integer({ min: 1, max: 40 }),
    rule: fc.constantFrom<RecurrentOptions['rule']>('linear', 'gated', 'delta', 'gatedDelta'),
    perDim: fc.boolean(),
    sharedBeta: fc.boolean(),
    withState: fc.boolean(),
    scale: fc.option(fc.double({ min: -2, max: 2, noNaN: true }), { nil: undefined }),
    form: fc.constantFrom('bhnd', 'bnhd', 'short'),
    seed: fc.nat({ max: 2 ** 31 - 1 }),
  })
  .map(({ B, Hkv, group, N, D, Dv, rule, perDim, sharedBeta, withState, scale, form, seed }) => {
    const H = Hkv * group;
    // ranks 2 and 3 mean B = 1 (and H = 1)
    const short = form === 'short' && B === 1;
    const rank = short ? (H === 1 ? 2 : 3) : 4;
    const bnhd = form === 'bnhd';
    const dims = (heads: number, width: number | null) => {
      const tail = width === null ? [] : [width];
      if (bnhd) return [B, N, heads, ...tail];
      return [...[B, heads].slice(4 - rank), N, ...tail];
    };
    const options: Record<string, unknown> = { rule };
    if (bnhd) options.layout = 'bnhd';
    if (scale !== undefined) options.scale = scale;
    if (rule === 'gated' || rule === 'gatedDelta') options.decay = values(dims(Hkv, perDim ? D : null), seed + 3, (rng) => -rng.uniform());
    if (rule === 'delta' || rule === 'gatedDelta') {
      const betaDims = dims(sharedBeta && rank >= 3 ? 1 : Hkv, null);
      options.beta = values(betaDims, seed + 4, (rng) => rng.uniform());
    }
    if (withState) options.initialState = values([B, Hkv, D, Dv].slice(4 - rank), seed + 5, (rng) => 0.5 * rng.normal());
    return { q: randn(dims(H, D), seed), k: unitRows(randn(dims(Hkv, D), seed + 1)), v: randn(dims(Hkv, Dv), seed + 2), options };
  });

/** The worst `|got - want| / max(floor, |want|)`, Infinity for NaN or a length mismatch. */
function worst(got: ArrayLike<number>, want: ArrayLike<number>, floor = 1): number {
  let w = got.length === want.length ? 0 : Infinity;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(floor, Math.abs(want[i]));
    if (!(e <= w)) w = Number.isNaN(e) ? Infinity : e;
  }
  return w;
}

/** A valid call: the SIMD kernel within 1e-4 of the float64 recurrence, the pool's bits, memory back at 0. */
async function expectAgrees(call: RecurrentCall): Promise<void> {
  const { q, k, v, options } = call;
  const want = js.recurrent(q, k, v, options as never);
  const got = one.recurrent(q, k, v, options as never);
  expect(got.dims).toEqual(want.dims);
  expect(got.state.dims).toEqual(want.state.dims);
  // the output is linear in scale: rounding grows with it past the default 1 / sqrt(D) (inputs of unit scale)
  const D = q.dims[q.dims.length - 1];
  const scale = typeof options.scale === 'number' ? Math.abs(options.scale) : 1 / Math.sqrt(D);
  expect(worst(got.data, want.data, Math.max(1, scale * Math.sqrt(D)))).toBeLessThanOrEqual(1e-4);
  expect(worst(got.state.data, want.state.data)).toBeLessThanOrEqual(1e-4);
  const pooled = await two.runRecurrent(q, k, v, options as never);
  expect(bytes(pooled.data)).toEqual(bytes(got.data));
  expect(bytes(pooled.state.data)).toEqual(bytes(got.state.data));
  expect(one.memory.inUse).toBe(0);
  expect(two.memory.inUse).toBe(0);
}

describe('property: valid recurrent calls agree with the float64 recurrence', () => {
  test.prop([callArb], fuzzParams(60))('every rule, shape and form', expectAgrees, timeout);
});

/** The places of a call: q, k, v, their data and dims, the options object and every option (absent ones too), tensors' data and dims. */
function pathsOf(call: RecurrentCall): string[] {
  const paths = ['q', 'k', 'v', 'q.data', 'q.dims', 'k.data', 'k.dims', 'v.data', 'v.dims', 'options'];
  for (const key of ['rule', 'decay', 'beta', 'initialState', 'scale', 'layout']) {
    paths.push(`options.${key}`);
    if (call.options[key] && typeof call.options[key] === 'object') paths.push(`options.${key}.data`, `options.${key}.dims`);
  }
  return paths;
}

/** The call with the value at `path` replaced (the original is left alone). */
function withValue(call: RecurrentCall, path: string, value: unknown): RecurrentCall {
  const parts = path.split('.');
  const copy: Record<string, unknown> = { ...call, options: { ...call.options } };
  let parent = copy;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = { ...(parent[parts[i]] as object) } as Record<string, unknown>;
    parent[parts[i]] = next;
    parent = next;
  }
  parent[parts[parts.length - 1]] = value;
  return copy as unknown as RecurrentCall;
}

function valueAt(call: RecurrentCall, path: string): unknown {
  return path.split('.').reduce<unknown>((x, key) => (x as Record<string, unknown> | undefined)?.[key], call);
}

const hostileArb = fc
  .tuple(callArb, fc.nat(), fc.constantFrom(...hostileValues))
  .map(([call, at, make]) => {
    const paths = pathsOf(call);
    const path = paths[at % paths.length];
    const value = make(valueAt(call, path));
    return { call, path, value, bad: withValue(call, path, value) };
  });

/** What `run` threw, or undefined. */
function thrown(run: () => unknown): unknown {
  try {
    run();
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('property: hostile values at any place of a recurrent call', () => {
  test.prop([hostileArb], fuzzParams(150))('throw a TypeError / RangeError naming the place, or run as a valid call', async ({ call, path, value, bad }) => {
    const reference = one.recurrent(call.q, call.k, call.v, call.options as never);
    const error = thrown(() => one.recurrent(bad.q, bad.k, bad.v, bad.options as never));
    expect(one.memory.inUse).toBe(0);
    if (error === undefined) {
      // a value the call accepts (a scale, an absent option given as null or undefined): checked as any valid call
      await expectAgrees(bad);
    } else if (!(error instanceof UserError)) {
      expect(error instanceof TypeError || error instanceof RangeError, String(error)).toBe(true);
      // a sound tensor of another shape, or the layout left out (the same data read the other way),
      // makes two arguments disagree: the error may name either
      const conflict = makesOtherShape(call as never, path, value) || (path === 'options.layout' && value === undefined);
      const named = conflict ? pathsOf(call).some((p) => namesPath((error as Error).message, p)) : namesPath((error as Error).message, path);
      expect(named, `${(error as Error).message} should name ${conflict ? 'a place of the call' : path}`).toBe(true);
      // the JS backend refuses it alike
      const jsError = thrown(() => js.recurrent(bad.q, bad.k, bad.v, bad.options as never));
      expect((jsError as Error)?.message).toBe((error as Error).message);
    }
    // the next call is exact
    expect(bytes(one.recurrent(call.q, call.k, call.v, call.options as never).data)).toEqual(bytes(reference.data));
  }, timeout);
});
