// Property suite, the entry points besides the variants: linearState (+
// step), fitRoutingCentroids, tensor() and mask()'s sizes, with valid and
// hostile arguments. Valid: the SIMD backend agrees with the float64
// reference; hostile: a TypeError / RangeError naming the argument, memory
// back at its level, the next call exact.
import { fc, test } from '@fast-check/vitest';
import { beforeAll, describe, expect } from 'vitest';
import { createAttention, type Attention } from '../dist/index.js';
import { FUZZING, fuzzParams } from './fuzz.js';
import { MAX_ROW_WEIGHT, rowWeight, wellConditioned } from './conditioning.js';
import { maxAbsDiff } from './golden.js';
import { hostileValues, namesPath, UserError } from './hostile.js';
import { randn, type T } from './random.js';
import { bytes } from './backends.js';

let one: Attention;
let js: Attention;
beforeAll(async () => {
  one = await createAttention({ backend: 'wasm', threads: 1 });
  js = await createAttention({ backend: 'js' });
});

const timeout = FUZZING ? 3_600_000 : 60_000;
const int = (min: number, max: number) => fc.integer({ min, max });
const seedArb = fc.nat({ max: 2 ** 31 - 1 });
const hostileArb = fc.constantFrom(...hostileValues);

/** What `run` threw, or undefined. */
function thrown(run: () => unknown): unknown {
  try {
    run();
    return undefined;
  } catch (error) {
    return error;
  }
}

/** An error must be a TypeError / RangeError naming `path`, or the user's own error. */
function expectNamed(error: unknown, path: string): void {
  if (error instanceof UserError) return;
  expect(error instanceof TypeError || error instanceof RangeError, String(error)).toBe(true);
  expect(namesPath((error as Error).message, path), `${(error as Error).message} should name ${path}`).toBe(true);
}

/** Options of a recurrent linear state and its sizes. */
const stateArb = fc.record({
  B: int(1, 3),
  H: int(1, 3),
  D: int(1, 40),
  Dv: int(1, 40),
  T: int(1, 30),
  seed: seedArb,
  map: fc.oneof(
    fc.record({ featureMap: fc.constantFrom('elu', 'relu') }),
    fc.record({ featureMap: fc.constant('favor'), numFeatures: int(1, 24), seed: seedArb, scale: fc.double({ min: 0.05, max: 1.2, noNaN: true }) }),
    fc.record({ featureMap: fc.constant('rfa'), numFeatures: int(1, 24), seed: seedArb }),
  ),
});

/** The T tokens of a state as `[B, H, T, D]` tensors, and token t as `[B, H, D]`. */
function tokens(B: number, H: number, T: number, D: number, seed: number): { all: T; at: (t: number) => Float32Array } {
  const all = randn([B, H, T, D], seed);
  const at = (t: number) => {
    const token = new Float32Array(B * H * D);
    for (let bh = 0; bh < B * H; bh++) token.set(all.data.subarray((bh * T + t) * D, (bh * T + t + 1) * D), bh * D);
    return token;
  };
  return { all, at };
}

describe('property: linearState steps are the causal linear rows', () => {
  test.prop([stateArb], fuzzParams(30))('valid states', ({ B, H, D, Dv, T, seed, map }) => {
    const options = { batch: B, heads: H, dim: D, valueDim: Dv, ...map };
    const q = tokens(B, H, T, D, seed);
    const k = tokens(B, H, T, D, seed + 1);
    const v = tokens(B, H, T, Dv, seed + 2);
    fc.pre(wellConditioned({ name: 'linear', q: q.all, k: k.all, v: v.all, options: { causal: true, ...map } }));
    const whole = js.linear(q.all, k.all, v.all, { causal: true, ...(map as object) }).data;
    const weight = rowWeight(js.weights('linear', q.all, k.all, { causal: true, ...(map as object) }).data, T);
    fc.pre(weight <= MAX_ROW_WEIGHT);
    const within = 1e-4 * weight;
    const inUse = one.memory.inUse;
    const wasm = one.linearState(options);
    const reference = js.linearState(options);
    for (let t = 0; t < T; t++) {
      const got = wasm.step(q.at(t), k.at(t), v.at(t)).data;
      const want = reference.step(q.at(t), k.at(t), v.at(t)).data;
      expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(within);
      const row = new Float32Array(B * H * Dv);
      for (let bh = 0; bh < B * H; bh++) row.set(whole.subarray((bh * T + t) * Dv, (bh * T + t + 1) * Dv), bh * Dv);
      expect(maxAbsDiff(want, row)).toBeLessThanOrEqual(within / 10);
    }
    wasm.dispose();
    expect(one.memory.inUse).toBe(inUse);
  }, timeout);

  const stateKeys = ['batch', 'heads', 'dim', 'valueDim', 'featureMap', 'numFeatures', 'seed', 'scale', 'eps', 'sigma', 'projection'];
  test.prop([stateArb, fc.constantFrom(...stateKeys), hostileArb, fc.constantFrom('options', 'q', 'k', 'v', 'keyPadding')], fuzzParams(60))(
    'hostile options and steps',
    ({ B, H, D, Dv, seed, map }, key, make, target) => {
      const options: Record<string, unknown> = { batch: B, heads: H, dim: D, valueDim: Dv, ...map };
      const step = { q: tokens(B, H, 1, D, seed).at(0), k: tokens(B, H, 1, D, seed + 1).at(0), v: tokens(B, H, 1, Dv, seed + 2).at(0), keyPadding: new Uint8Array(B).fill(1) };
      const inUse = one.memory.inUse;
      for (const attn of [one, js]) {
        if (target === 'options') {
          const hostile = make(options[key]);
          const made = (given: Record<string, unknown>) => thrown(() => attn.linearState(given as never).dispose());
          const error = made({ ...options, [key]: hostile });
          // undefined is absent: the state (or the error) of the options without it
          if (hostile === undefined) expect(String(error)).toBe(String(made(Object.fromEntries(Object.entries(options).filter(([name]) => name !== key)))));
          else if (error !== undefined) expectNamed(error, `options.${key}`);
          continue;
        }
        const state = attn.linearState(options as never);
        const twin = attn.linearState(options as never);
        const hostile = { ...step, [target]: make(step[target as keyof typeof step]) };
        const error = thrown(() => state.step(hostile.q, hostile.k, hostile.v, hostile.keyPadding));
        if (error !== undefined) expectNamed(error, target);
        // a failed step leaves the state as it was: the next step is exact
        if (error !== undefined) expect(bytes(state.step(step.q, step.k, step.v, step.keyPadding).data)).toEqual(bytes(twin.step(step.q, step.k, step.v, step.keyPadding).data));
        state.dispose();
        twin.dispose();
      }
      expect(one.memory.inUse).toBe(inUse);
    },
    timeout,
  );
});

const fitArb = fc.record({ B: int(1, 3), H: int(1, 3), Nq: int(1, 40), Nk: int(1, 40), D: int(1, 20), iterations: int(0, 8), seed: seedArb, fraction: fc.double({ min: 0, max: 1, noNaN: true }) });

describe('property: fitRoutingCentroids', () => {
  test.prop([fitArb], fuzzParams(30))('SIMD fit equals the reference bit for bit', ({ B, H, Nq, Nk, D, iterations, seed, fraction }) => {
    const q = randn([B, H, Nq, D], seed);
    const k = randn([B, H, Nk, D], seed + 1);
    const clusters = Math.max(1, Math.round(fraction * Math.min(8, B * (Nq + Nk))));
    const options = { clusters, iterations, seed };
    expect(bytes(one.fitRoutingCentroids(q, k, options).data)).toEqual(bytes(js.fitRoutingCentroids(q, k, options).data));
  }, timeout);

  test.prop([fitArb, fc.constantFrom('q', 'k', 'options', 'options.clusters', 'options.iterations', 'options.seed'), hostileArb], fuzzParams(40))(
    'hostile arguments',
    ({ B, H, Nq, Nk, D, seed }, path, make) => {
      const q = randn([B, H, Nq, D], seed);
      const k = randn([B, H, Nk, D], seed + 1);
      const valid = { q, k, options: { clusters: 1, iterations: 2, seed } as Record<string, unknown> };
      const args = { ...valid, options: { ...valid.options } };
      if (path.startsWith('options.')) args.options[path.slice(8)] = make(valid.options[path.slice(8)]);
      else (args as Record<string, unknown>)[path] = make(valid[path as 'q' | 'k' | 'options']);
      for (const attn of [one, js]) {
        const inUse = attn.memory.inUse;
        // accepted, it is an ordinary fit (a seed taken modulo 2^32, a valid count)
        const error = thrown(() => expect(attn.fitRoutingCentroids(args.q, args.k, args.options as never).dims.length).toBe(3));
        if (error !== undefined) expectNamed(error, path);
        expect(attn.memory.inUse).toBe(inUse);
        expect(bytes(attn.fitRoutingCentroids(q, k, valid.options as never).data)).toEqual(bytes(js.fitRoutingCentroids(q, k, valid.options as never).data));
      }
    },
    timeout,
  );
});

describe('property: tensor() and mask() sizes', () => {
  test.prop([fc.record({ H: int(1, 3), N: int(1, 40), D: int(1, 20), seed: seedArb })], fuzzParams(30))('calls read tensors in WebAssembly memory without a copy', ({ H, N, D, seed }) => {
    const q = randn([H, N, D], seed);
    const inUse = one.memory.inUse;
    const pinned = one.tensor(q.dims, q.data);
    expect(bytes(one.full(pinned, q, q, { causal: true }).data)).toEqual(bytes(one.full(q, q, q, { causal: true }).data));
    expect(bytes(pinned.data)).toEqual(bytes(q.data));
    pinned.free();
    expect(one.memory.inUse).toBe(inUse);
  }, timeout);

  test.prop([fc.constantFrom('dims', 'values', 'nq', 'nk'), hostileArb], fuzzParams(40))('hostile sizes', (path, make) => {
    const inUse = one.memory.inUse;
    const value = make([2, 3]);
    for (const attn of [one, js]) {
      const error = thrown(() => {
        if (path === 'dims') attn.tensor(value as number[]).free();
        else if (path === 'values') attn.tensor([2, 3], value as number[]).free();
        else attn.mask('local', path === 'nq' ? (value as number) : 4, path === 'nk' ? (value as number) : 4, { window: 1 });
      });
      if (error !== undefined) expectNamed(error, path);
    }
    expect(one.memory.inUse).toBe(inUse);
    const q: T = randn([5, 3], 1);
    expect(bytes(one.full(q, q, q).data)).toEqual(bytes(one.full(q, q, q).data));
  }, timeout);
});
