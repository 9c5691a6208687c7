// `full` on the WebAssembly backend against the plain-JS float64 reference and the golden vectors.
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention } from '../dist/index.js';
import { loadGolden, maxAbsDiff } from './golden.js';
import { padding, randn } from './random.js';

let wasm: Attention;
let js: Attention;
beforeAll(async () => {
  wasm = await createAttention({ backend: 'wasm' });
  js = await createAttention({ backend: 'js' });
});

describe('full: wasm kernel vs JS reference', () => {
  const shapes = [
    // [B, H, Nq, Nk, D, Dv]
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 7, 3, 5],
    [1, 2, 13, 13, 7, 7],
    [2, 3, 17, 17, 16, 16],
    [1, 1, 37, 37, 64, 64],
    [2, 1, 5, 29, 8, 3],
    [1, 2, 29, 5, 12, 20],
    [1, 1, 130, 130, 33, 9],
    [1, 1, 200, 71, 4, 4],
  ];
  for (const [B, H, Nq, Nk, D, Dv] of shapes) {
    for (const causal of [false, true]) {
      for (const padded of [false, true]) {
        it(`B=${B} H=${H} Nq=${Nq} Nk=${Nk} D=${D} Dv=${Dv} causal=${causal} padded=${padded}`, () => {
          const seed = B * 1000 + H * 100 + Nq + Nk * 7 + D * 13 + Dv;
          const q = randn([B, H, Nq, D], seed);
          const k = randn([B, H, Nk, D], seed + 1);
          const v = randn([B, H, Nk, Dv], seed + 2);
          const options = { causal, ...(padded ? { keyPadding: padding(B, Nk, seed + 3) } : {}) };
          const got = wasm.full(q, k, v, options);
          const want = js.full(q, k, v, options);
          expect(got.dims).toEqual([B, H, Nq, Dv]);
          expect(maxAbsDiff(got.data, want.data)).toBeLessThanOrEqual(1e-4);
        });
      }
    }
  }

  it('honours scale, and large logits stay finite', () => {
    const q = randn([1, 2, 40, 16], 1, 3);
    const k = randn([1, 2, 40, 16], 2, 3);
    const v = randn([1, 2, 40, 16], 3);
    for (const scale of [0.01, 1, 4]) {
      const got = wasm.full(q, k, v, { scale });
      expect(got.data.every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(got.data, js.full(q, k, v, { scale }).data)).toBeLessThanOrEqual(1e-4);
    }
  });

  it('gives rows that see no key zeros, never NaN', () => {
    // causal with Nq > Nk: the first Nq - Nk queries sit before every key
    const q = randn([1, 1, 9, 8], 4);
    const k = randn([1, 1, 4, 8], 5);
    const v = randn([1, 1, 4, 8], 6);
    const got = wasm.full(q, k, v, { causal: true });
    expect(maxAbsDiff(got.data.subarray(0, 5 * 8), new Float32Array(40))).toBe(0);
    expect(maxAbsDiff(got.data, js.full(q, k, v, { causal: true }).data)).toBeLessThanOrEqual(1e-4);
    // every key of batch 1 padded
    const pad = new Uint8Array([1, 0, 1, 1, 0, 0, 0, 0]);
    const q2 = randn([2, 1, 3, 8], 7);
    const k2 = randn([2, 1, 4, 8], 8);
    const out = wasm.full(q2, k2, k2, { keyPadding: pad });
    expect(maxAbsDiff(out.data.subarray(24), new Float32Array(24))).toBe(0);
    expect(maxAbsDiff(out.data, js.full(q2, k2, k2, { keyPadding: pad }).data)).toBeLessThanOrEqual(1e-4);
  });

  it('accepts rank 2 and rank 3 inputs and answers in the same rank', () => {
    const q = randn([11, 6], 9);
    const out2 = wasm.full(q, q, q);
    expect(out2.dims).toEqual([11, 6]);
    const q3 = randn([3, 11, 6], 10);
    const out3 = wasm.full(q3, q3, q3, { causal: true });
    expect(out3.dims).toEqual([3, 11, 6]);
    const as4 = { data: q3.data, dims: [1, 3, 11, 6] };
    expect(maxAbsDiff(out3.data, wasm.full(as4, as4, as4, { causal: true }).data)).toBe(0);
  });

  it('equals weights() times v', () => {
    const q = randn([2, 2, 19, 8], 11);
    const k = randn([2, 2, 23, 8], 12);
    const v = randn([2, 2, 23, 5], 13);
    const options = { causal: true, keyPadding: padding(2, 23, 14) };
    const P = wasm.weights('full', q, k, options);
    expect(P.dims).toEqual([2, 2, 19, 23]);
    const pv = new Float64Array(2 * 2 * 19 * 5);
    for (let bh = 0; bh < 4; bh++)
      for (let i = 0; i < 19; i++)
        for (let j = 0; j < 23; j++)
          for (let c = 0; c < 5; c++) pv[(bh * 19 + i) * 5 + c] += P.data[(bh * 19 + i) * 23 + j] * v.data[(bh * 23 + j) * 5 + c];
    expect(maxAbsDiff(wasm.full(q, k, v, options).data, pv)).toBeLessThanOrEqual(1e-4);
  });

  it('reads inputs that live in WebAssembly memory', () => {
    const q = randn([1, 2, 33, 8], 15);
    const inside = wasm.tensor(q.dims, q.data);
    const before = wasm.memory.inUse;
    expect(maxAbsDiff(wasm.full(inside, inside, inside).data, js.full(q, q, q).data)).toBeLessThanOrEqual(1e-4);
    expect(wasm.memory.inUse).toBe(before);
    inside.free();
    expect(wasm.memory.inUse).toBe(before - 33 * 2 * 8 * 4);
  });
});

describe('full: golden vectors', () => {
  for (const c of loadGolden('patterns.json').filter((g) => g.variant === 'full')) {
    it(c.name, () => {
      for (const attn of [wasm, js]) {
        const out = attn.full(c.q!, c.k!, c.v!, c.options);
        expect(out.dims).toEqual(c.expected.dims);
        expect(maxAbsDiff(out.data, c.expected.data)).toBeLessThanOrEqual(1e-4);
      }
    });
  }
});

describe('full: memory', () => {
  it('10,000 calls leave WebAssembly memory size unchanged after the first', () => {
    const q = randn([1, 2, 24, 8], 16);
    wasm.full(q, q, q, { causal: true });
    const size = wasm.memory.size;
    const inUse = wasm.memory.inUse;
    for (let i = 0; i < 10_000; i++) wasm.full(q, q, q, { causal: true });
    expect(wasm.memory.size).toBe(size);
    expect(wasm.memory.inUse).toBe(inUse);
  });

  it('runs N = 32768, D = 64 in under 64 MiB beyond its inputs and output', async () => {
    const attn = await createAttention({ backend: 'wasm' });
    const N = 32768;
    const D = 64;
    const q = randn([1, 1, N, D], 17);
    const k = randn([1, 1, N, D], 18);
    const v = randn([1, 1, N, D], 19);
    const out = attn.full(q, k, v, { causal: true });
    const tensors = 4 * N * D * 4;
    expect(attn.memory.size - tensors).toBeLessThan(64 * 2 ** 20);
    // spot-check rows against the reference on a prefix (causal rows see only the past)
    const rows = 50;
    const prefix = (t: typeof q) => ({ data: t.data.subarray(0, rows * D), dims: [1, 1, rows, D] });
    const want = js.full(prefix(q), prefix(k), prefix(v), { causal: true });
    expect(maxAbsDiff(out.data.subarray(0, rows * D), want.data)).toBeLessThanOrEqual(1e-4);
    expect(out.data.every(Number.isFinite)).toBe(true);
  });
});
