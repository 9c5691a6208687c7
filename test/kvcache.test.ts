// attn.kvCache: every step of a decoding sequence equals float64 full
// attention (JS backend) over the keys and values appended so far; the cache
// does not grow memory per step, a windowed one stays bounded, the pooled form
// gives the same bits, and bad input throws without harming the cache.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type KvCache, type Tensor } from '../dist/index.js';
import { Rng } from '../src/prng.js';
import { maxAbsDiff } from './golden.js';
import { randn } from './random.js';

let wasm: Attention;
let js: Attention;
let two: Attention;
beforeAll(async () => {
  wasm = await createAttention({ backend: 'wasm', threads: 1 });
  js = await createAttention({ backend: 'js' });
  two = await createAttention({ backend: 'wasm', threads: 2 });
});
afterAll(() => two.dispose());

/** Concatenates [B, Hkv, T_i, W] chunks along the position axis. */
function concat(chunks: Tensor[]): Tensor {
  const [B, H, , W] = chunks[0].dims;
  const N = chunks.reduce((n, c) => n + c.dims[2], 0);
  const data = new Float32Array(B * H * N * W);
  let at = 0;
  for (const c of chunks) {
    const T = c.dims[2];
    for (let bh = 0; bh < B * H; bh++) data.set(c.data.subarray(bh * T * W, (bh + 1) * T * W), (bh * N + at) * W);
    at += T;
  }
  return { data, dims: [B, H, N, W] };
}

function randomMask(dims: number[], seed: number): { data: Uint8Array; dims: number[] } {
  const rng = new Rng(seed);
  const data = new Uint8Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform() < 0.7 ? 1 : 0;
  return { data, dims };
}

interface Case {
  B: number;
  Hkv: number;
  G: number;
  D: number;
  Dv: number;
  window?: number;
  terms?: 'mask' | 'bias' | 'softcap' | 'all' | 'scale';
}

const cases: Case[] = [
  { B: 1, Hkv: 2, G: 2, D: 7, Dv: 7 },
  { B: 2, Hkv: 1, G: 6, D: 16, Dv: 9, terms: 'mask' },
  { B: 1, Hkv: 4, G: 1, D: 64, Dv: 64, terms: 'softcap' },
  { B: 1, Hkv: 2, G: 2, D: 16, Dv: 16, window: 20 },
  { B: 2, Hkv: 4, G: 1, D: 7, Dv: 12, window: 50, terms: 'bias' },
  { B: 1, Hkv: 1, G: 6, D: 64, Dv: 32, window: 3, terms: 'all' },
  { B: 1, Hkv: 2, G: 4, D: 16, Dv: 8, window: 1 },
  { B: 1, Hkv: 1, G: 12, D: 16, Dv: 16, terms: 'scale' },
];

const CHUNKS = [37, 1, 5, 64, 1, 1, 130, 1, 1, 1, 5, 1];

/** The options of step `s` of a case: mask / bias over [.., T, length], softcap. */
function stepOptions(c: Case, T: number, length: number, s: number): Record<string, unknown> {
  const H = c.Hkv * c.G;
  const o: Record<string, unknown> = {};
  if (c.terms === 'mask' || c.terms === 'all') o.mask = randomMask(c.terms === 'all' ? [T, length] : [c.B, H, T, length], 100 + s);
  if (c.terms === 'bias' || c.terms === 'all') o.bias = randn(c.terms === 'all' ? [H, T, length] : [1, H, 1, length], 200 + s);
  if (c.terms === 'softcap' || c.terms === 'all') o.softcap = 2.5;
  if (c.terms === 'scale') o.scale = 0.3;
  return o;
}

describe('kvCache: every step equals float64 full attention over the cached positions', () => {
  for (const c of cases) {
    const label = `B=${c.B} Hkv=${c.Hkv} G=${c.G} D=${c.D} Dv=${c.Dv} window=${c.window ?? '-'} terms=${c.terms ?? '-'}`;
    it(label, () => {
      const total = CHUNKS.reduce((a, b) => a + b, 0);
      // a window rolls the buffer: room for the largest chunk and a few more
      const capacity = c.window ? c.window - 1 + 130 + 7 : total;
      const cache = wasm.kvCache({ batch: c.B, heads: c.Hkv, dim: c.D, valueDim: c.Dv, capacity, window: c.window });
      const keys: Tensor[] = [];
      const values: Tensor[] = [];
      let length = 0;
      CHUNKS.forEach((T, s) => {
        const k = randn([c.B, c.Hkv, T, c.D], 1000 * s + 1);
        const v = randn([c.B, c.Hkv, T, c.Dv], 1000 * s + 2);
        cache.append(k, v);
        keys.push(k);
        values.push(v);
        length += T;
        expect(cache.length).toBe(length);
        const q = randn([c.B, c.Hkv * c.G, T, c.D], 1000 * s + 3);
        const K = concat(keys);
        const V = concat(values);
        for (const causal of c.window ? [true] : [true, false]) {
          const options = { ...stepOptions(c, T, length, s), causal };
          const got = cache.attend(q, options);
          const want = c.window
            ? js.local(q, K, V, { ...options, before: c.window - 1, after: 0, causal: true })
            : js.full(q, K, V, options);
          expect(got.dims).toEqual([c.B, c.Hkv * c.G, T, c.Dv]);
          expect(maxAbsDiff(got.data, want.data), `step ${s} (T = ${T}) causal=${causal}`).toBeLessThan(1e-4);
        }
      });
      // the JS backend's cache gives the reference too
      const jsCache = js.kvCache({ batch: c.B, heads: c.Hkv, dim: c.D, valueDim: c.Dv, capacity, window: c.window });
      keys.forEach((k, i) => jsCache.append(k, values[i]));
      const q = randn([c.B, c.Hkv * c.G, 1, c.D], 7);
      expect(maxAbsDiff(jsCache.attend(q).data, cache.attend(q).data)).toBeLessThan(1e-4);
      expect(jsCache.length).toBe(length);
      cache.dispose();
    });
  }

  it('reset() forgets every position', () => {
    const cache = wasm.kvCache({ heads: 2, dim: 8, capacity: 20 });
    cache.append(randn([1, 2, 13, 8], 1), randn([1, 2, 13, 8], 2));
    cache.reset();
    expect(cache.length).toBe(0);
    const k = randn([1, 2, 6, 8], 3);
    const v = randn([1, 2, 6, 8], 4);
    cache.append(k, v);
    const q = randn([1, 4, 2, 8], 5);
    expect(maxAbsDiff(cache.attend(q, { causal: true }).data, js.full(q, k, v, { causal: true }).data)).toBeLessThan(1e-4);
    cache.dispose();
  });

  it('accepts rank-2 and rank-3 inputs when B = 1 (and H = 1)', () => {
    const cache = wasm.kvCache({ dim: 5, capacity: 9 });
    const k = randn([9, 5], 1);
    const v = randn([9, 5], 2);
    cache.append(k, v);
    const q = randn([1, 3, 5], 3);
    const got = cache.attend(q, { causal: true });
    expect(got.dims).toEqual([1, 3, 5]);
    expect(maxAbsDiff(got.data, js.full(q, { data: k.data, dims: [1, 9, 5] }, { data: v.data, dims: [1, 9, 5] }, { causal: true }).data)).toBeLessThan(1e-4);
    cache.dispose();
  });
});

describe('kvCache: memory', () => {
  it('does not grow memory per step, and returns it on dispose()', () => {
    const before = wasm.memory.inUse;
    const cache = wasm.kvCache({ heads: 2, dim: 16, capacity: 600 });
    expect(wasm.memory.inUse).toBe(before + cache.bytes);
    const step = (s: number) => {
      cache.append(randn([1, 2, 1, 16], s), randn([1, 2, 1, 16], s + 1));
      cache.attend(randn([1, 8, 1, 16], s + 2));
    };
    for (let s = 0; s < 50; s++) step(s);
    const size = wasm.memory.size;
    for (let s = 50; s < 600; s++) {
      step(s);
      expect(wasm.memory.inUse).toBe(before + cache.bytes);
    }
    expect(wasm.memory.size).toBe(size);
    cache.dispose();
    expect(wasm.memory.inUse).toBe(before);
  });

  it('a windowed cache holds O(W + T): its pinned bytes stay those of its capacity, however long the sequence', () => {
    const before = wasm.memory.inUse;
    const [W, D] = [16, 32];
    const cache = wasm.kvCache({ heads: 1, dim: D, capacity: W + 15, window: W });
    // capacity W + 15 slots: a key bias rounded up to 4 slots, keys and values up to a block of 64
    expect(cache.bytes).toBeLessThanOrEqual((32 + 64 * 2 * D) * 4);
    const keys: Tensor[] = [];
    const values: Tensor[] = [];
    for (let s = 0; s < 400; s++) {
      const k = randn([1, 1, 1, D], 3 * s);
      const v = randn([1, 1, 1, D], 3 * s + 1);
      cache.append(k, v);
      keys.push(k);
      values.push(v);
      expect(wasm.memory.inUse).toBe(before + cache.bytes);
    }
    expect(cache.length).toBe(400);
    const q = randn([1, 1, 1, D], 5);
    // the last W positions, as local attention over them all
    const want = js.local(q, concat(keys.slice(-W)), concat(values.slice(-W)), { before: W - 1, after: 0, causal: true });
    expect(maxAbsDiff(cache.attend(q).data, want.data)).toBeLessThan(1e-4);
    cache.dispose();
  });
});

describe('kvCache: the pooled form', () => {
  it('run() on 2 threads equals attend() bit for bit', async () => {
    for (const window of [undefined, 40]) {
      const cache = two.kvCache({ batch: 2, heads: 4, dim: 16, valueDim: 24, capacity: 300, window });
      for (const T of [37, 1, 64, 1, 130, 1]) {
        cache.append(randn([2, 4, T, 16], T), randn([2, 4, T, 24], T + 1));
        const q = randn([2, 8, T, 16], T + 2);
        const options = { causal: true, bias: randn([8, T, cache.length], T + 3), softcap: 3 };
        const sync = cache.attend(q, options);
        const pooled = await cache.run(q, options);
        expect(pooled.dims).toEqual(sync.dims);
        expect(Buffer.from(pooled.data.buffer).equals(Buffer.from(sync.data.buffer))).toBe(true);
      }
      cache.dispose();
    }
  });

  it('refuses to change the cache while a run() is pending', async () => {
    const cache = two.kvCache({ heads: 2, dim: 8, capacity: 64 });
    cache.append(randn([1, 2, 40, 8], 1), randn([1, 2, 40, 8], 2));
    const q = randn([1, 4, 1, 8], 3);
    const pending = cache.run(q);
    expect(() => cache.append(randn([1, 2, 1, 8], 4), randn([1, 2, 1, 8], 5))).toThrow(/^cache: append\(\) while a run\(\) is pending/);
    expect(() => cache.dispose()).toThrow(TypeError);
    const out = await pending;
    expect(out.data).toEqual(cache.attend(q).data);
    cache.append(randn([1, 2, 1, 8], 4), randn([1, 2, 1, 8], 5));
    expect(cache.length).toBe(41);
    cache.dispose();
  });
});

describe('kvCache: bad input', () => {
  let cache: KvCache;
  let probe: Tensor;
  let answer: Float32Array;
  beforeAll(() => {
    cache = wasm.kvCache({ batch: 1, heads: 2, dim: 8, valueDim: 4, capacity: 10 });
    cache.append(randn([1, 2, 6, 8], 1), randn([1, 2, 6, 4], 2));
    probe = randn([1, 4, 1, 8], 3);
    answer = cache.attend(probe).data;
  });

  /** Throws `type` with a message matching `message`; memory back to its level; the cache still answers. */
  function rejects(run: () => unknown, type: typeof TypeError | typeof RangeError, message: RegExp) {
    const inUse = wasm.memory.inUse;
    const length = cache.length;
    expect(run).toThrow(type);
    expect(run).toThrow(message);
    expect(wasm.memory.inUse).toBe(inUse);
    expect(cache.length).toBe(length);
    expect(Buffer.from(cache.attend(probe).data.buffer).equals(Buffer.from(answer.buffer))).toBe(true);
  }

  it('rejects bad creation options, naming them', () => {
    const ok = { heads: 2, dim: 8, capacity: 10 };
    rejects(() => wasm.kvCache({ ...ok, dim: undefined } as never), TypeError, /options\.dim: required/);
    rejects(() => wasm.kvCache({ ...ok, capacity: NaN }), TypeError, /options\.capacity/);
    rejects(() => wasm.kvCache({ ...ok, capacity: 2 ** 31 }), RangeError, /options\.capacity/);
    rejects(() => wasm.kvCache({ ...ok, capacity: 1e300 }), RangeError, /options\.capacity/);
    rejects(() => wasm.kvCache({ ...ok, capacity: 0 }), RangeError, /options\.capacity/);
    rejects(() => wasm.kvCache({ ...ok, heads: 2 ** 31 }), RangeError, /options\.capacity/);
    rejects(() => wasm.kvCache({ ...ok, dim: 1.5 }), TypeError, /options\.dim/);
    rejects(() => wasm.kvCache({ ...ok, window: 0 }), RangeError, /options\.window/);
    rejects(() => wasm.kvCache({ ...ok, window: 11 }), RangeError, /options\.window: expected an integer <= 10/);
    rejects(() => wasm.kvCache({ ...ok, window: 1e300 }), RangeError, /options\.window/);
    rejects(() => wasm.kvCache({ ...ok, capcity: 5 } as never), TypeError, /options\.capcity: unknown option 'capcity' \(did you mean 'capacity'\?/);
    rejects(() => wasm.kvCache({ ...ok, causal: true } as never), TypeError, /options\.causal: unknown option .*kvCache accepts batch, heads, dim, valueDim, capacity, window/);
    rejects(() => wasm.kvCache(42 as never), TypeError, /options: expected an object/);
    expect(() => js.kvCache({ ...ok, widow: 3 } as never)).toThrow(/did you mean 'window'/);
  });

  it('rejects bad appends, leaving the cache as it was', () => {
    rejects(() => cache.append(randn([1, 2, 1, 7], 1), randn([1, 2, 1, 4], 2)), RangeError, /^k\.dims: expected \[B, Hkv, T, D\] = \[1, 2, T, 8\], received \[1, 2, 1, 7\]/);
    rejects(() => cache.append(randn([1, 2, 1, 8], 1), randn([1, 2, 1, 8], 2)), RangeError, /^v\.dims: expected/);
    rejects(() => cache.append(randn([1, 4, 1, 8], 1), randn([1, 4, 1, 4], 2)), RangeError, /^k\.dims/);
    rejects(() => cache.append(randn([2, 2, 1, 8], 1), randn([2, 2, 1, 4], 2)), RangeError, /^k\.dims/);
    rejects(() => cache.append(randn([1, 2, 2, 8], 1), randn([1, 2, 1, 4], 2)), RangeError, /^v\.dims: expected T = 2/);
    rejects(() => cache.append(randn([1, 2, 5, 8], 1), randn([1, 2, 5, 4], 2)), RangeError, /^k\.dims: 5 more positions would hold 11, past options\.capacity 10/);
    rejects(() => cache.append({ data: [1, 2], dims: [1, 2] } as never, randn([1, 2, 1, 4], 2)), TypeError, /^k\.data: expected a Float32Array/);
    rejects(() => cache.append(randn([1, 2, 1, 8], 1), null as never), TypeError, /^v: expected a tensor/);
    rejects(() => cache.append({ data: new Float32Array(16), dims: [1, 2, 1, NaN] }, randn([1, 2, 1, 4], 2)), TypeError, /^k\.dims/);
  });

  it('rejects bad queries and options, naming them', async () => {
    rejects(() => cache.attend(randn([1, 4, 1, 7], 1)), RangeError, /^q\.dims: expected \[B, H, T, D\]/);
    rejects(() => cache.attend(randn([1, 3, 1, 8], 1)), RangeError, /^q\.dims: H mod Hkv must be 0 \(H = 3, the cache has Hkv = 2/);
    rejects(() => cache.attend(randn([1, 4, 7, 8], 1)), RangeError, /^q\.dims: expected 1 <= T <= 6/);
    rejects(() => cache.attend(randn([1, 4, 0, 8], 1)), RangeError, /^q\.dims: expected 1 <= T/);
    rejects(() => cache.attend(probe, { casual: true } as never), TypeError, /options\.casual: unknown option 'casual' \(did you mean 'causal'\? kvCache\.attend accepts scale, causal, mask, bias, softcap\)/);
    rejects(() => cache.attend(probe, { keyPadding: new Uint8Array(6) } as never), TypeError, /options\.keyPadding: unknown option/);
    rejects(() => cache.attend(probe, { window: 3 } as never), TypeError, /options\.window: unknown option/);
    rejects(() => cache.attend(probe, { scale: NaN }), TypeError, /options\.scale/);
    rejects(() => cache.attend(probe, { causal: 1 as never }), TypeError, /options\.causal: expected a boolean/);
    rejects(() => cache.attend(probe, { softcap: -1 }), RangeError, /options\.softcap/);
    rejects(() => cache.attend(probe, { mask: { data: new Uint8Array(5), dims: [1, 5] } }), RangeError, /options\.mask\.dims: expected .*\[1, 4, 1, 6\]/);
    rejects(() => cache.attend(probe, { bias: { data: new Float32Array(6), dims: [6] } }), RangeError, /options\.bias\.dims/);
    await expect(cache.run(probe, { casual: true } as never)).rejects.toThrow(/options\.casual/);
    rejects(() => cache.attend(probe, 'causal' as never), TypeError, /options: expected an object/);
  });

  it('a windowed cache is causal and takes chunks that fit', () => {
    const windowed = wasm.kvCache({ heads: 1, dim: 4, capacity: 8, window: 5 });
    windowed.append(randn([1, 1, 4, 4], 1), randn([1, 1, 4, 4], 2));
    expect(() => windowed.attend(randn([1, 1, 1, 4], 3), { causal: false })).toThrow(/options\.causal: a cache with a window is causal/);
    expect(() => windowed.append(randn([1, 1, 5, 4], 1), randn([1, 1, 5, 4], 2))).toThrow(/k\.dims: a chunk of T = 5 positions needs capacity >= window - 1 \+ T = 9/);
    windowed.append(randn([1, 1, 4, 4], 1), randn([1, 1, 4, 4], 2));
    windowed.append(randn([1, 1, 4, 4], 1), randn([1, 1, 4, 4], 2));
    expect(windowed.length).toBe(12);
    // the first of 5 queries at position 7 needs position 3, no longer held
    expect(() => windowed.attend(randn([1, 1, 5, 4], 3))).toThrow(/q\.dims: the window of the first of T = 5 queries/);
    expect(windowed.attend(randn([1, 1, 4, 4], 3)).dims).toEqual([1, 1, 4, 4]);
    windowed.dispose();
  });

  it('refuses every use after dispose(), and the instance stays usable', () => {
    const inUse = wasm.memory.inUse;
    const gone = wasm.kvCache({ heads: 1, dim: 4, capacity: 8 });
    gone.append(randn([1, 1, 2, 4], 1), randn([1, 1, 2, 4], 2));
    gone.dispose();
    expect(wasm.memory.inUse).toBe(inUse);
    expect(() => gone.append(randn([1, 1, 1, 4], 1), randn([1, 1, 1, 4], 2))).toThrow(TypeError);
    expect(() => gone.append(randn([1, 1, 1, 4], 1), randn([1, 1, 1, 4], 2))).toThrow(/^cache: append\(\) on a disposed cache/);
    expect(() => gone.attend(randn([1, 1, 1, 4], 1))).toThrow(/^cache: attend\(\) on a disposed cache/);
    expect(() => gone.reset()).toThrow(TypeError);
    gone.dispose();
    expect(wasm.memory.inUse).toBe(inUse);
    expect(cache.attend(probe).data).toEqual(answer);
  });

  it('the JS backend checks the same way', () => {
    const j = js.kvCache({ batch: 1, heads: 2, dim: 8, valueDim: 4, capacity: 10 });
    j.append(randn([1, 2, 6, 8], 1), randn([1, 2, 6, 4], 2));
    expect(() => j.attend(randn([1, 3, 1, 8], 1))).toThrow(/^q\.dims: H mod Hkv must be 0/);
    expect(() => j.attend(probe, { casual: true } as never)).toThrow(/did you mean 'causal'/);
    expect(() => j.append(randn([1, 2, 5, 8], 1), randn([1, 2, 5, 4], 2))).toThrow(RangeError);
    expect(maxAbsDiff(j.attend(probe).data, answer)).toBeLessThan(1e-4);
    j.dispose();
    expect(() => j.attend(probe)).toThrow(/disposed/);
  });
});
