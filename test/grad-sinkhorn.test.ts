// The SIMD backward pass of `sinkhorn` (SPEC "Gradients"): gradients of q,
// k, v and the given sort logits, through the Sinkhorn balancing (or the
// causal softmax over past blocks), against the float64 reference (the JS
// backend) on problems of several blocks: grouped-query heads, padding,
// causal, computed and given sort logits (shared, per head, per batch, per
// both), iterations 0 and many, blocks past the softmax backward's 64 rows
// and heads cut into several calls; zeros where nothing reads (no batch, no
// positions); the pool gives the same bits; bad
// gradOutput leaves the instance usable. (The goldens run in
// grad-golden.test.ts and relaxed-child.mjs.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relative } from './grad-simd.js';
import { createAttention, type Attention, type GradientTensors } from '../dist/index.js';
import { bytes } from './backends.js';
import { flatParams } from './grad-golden.js';
import { padding, randn, type T } from './random.js';

let js: Attention;
let one: Attention;
let two: Attention;
beforeAll(async () => {
  js = await createAttention({ backend: 'js' });
  one = await createAttention({ backend: 'wasm', threads: 1 });
  two = await createAttention({ backend: 'wasm', threads: 2 });
});
afterAll(() => two.dispose());


interface Problem {
  B: number;
  H: number;
  Hkv: number;
  N: number;
  D: number;
  Dv: number;
}

function inputs({ B, H, Hkv, N, D, Dv }: Problem, seed: number): [T, T, T, T] {
  return [randn([B, H, N, D], seed), randn([B, Hkv, N, D], seed + 1), randn([B, Hkv, N, Dv], seed + 2), randn([B, H, N, Dv], seed + 3)];
}

/** Every gradient by path. */
const gradients = (g: GradientTensors) => [...flatParams({ q: g.q, k: g.k, v: g.v }, 'grad'), ...flatParams(g.params)].map(([path, t]) => [path, t] as const);

function expectReference(problem: Problem, options: Record<string, unknown>, seed: number, tolerance = 1e-5): void {
  const [q, k, v, g] = inputs(problem, seed);
  const got = one.backward('sinkhorn', q, k, v, g, options);
  const want = js.backward('sinkhorn', q, k, v, g, options);
  const mine = new Map(gradients(got));
  const theirs = gradients(want);
  expect([...mine.keys()].sort()).toEqual(theirs.map(([path]) => path).sort());
  for (const [path, tensor] of theirs) {
    expect(mine.get(path)!.dims, path).toEqual(tensor.dims);
    expect(relative(mine.get(path)!.data as Float32Array, tensor.data as Float32Array), path).toBeLessThanOrEqual(tolerance);
  }
  expect(one.memory.inUse).toBe(0);
}

const gqa: Problem = { B: 2, H: 4, Hkv: 2, N: 96, D: 16, Dv: 8 };
const nb = (p: Problem, b: number) => p.N / b;

describe('sinkhorn backward (SIMD)', () => {
  it('matches the reference: computed sort logits, grouped-query heads, padding, several blocks', () => {
    expectReference(gqa, { blockSize: 8, keyPadding: padding(2, 96, 1) }, 10);
    expectReference({ B: 1, H: 2, Hkv: 2, N: 60, D: 12, Dv: 20 }, { blockSize: 5, temperature: 0.5 }, 11);
  });

  it('matches the reference: causal, grouped-query heads, padding', () => {
    expectReference(gqa, { blockSize: 12, causal: true, keyPadding: padding(2, 96, 2) }, 20);
    expectReference({ B: 1, H: 3, Hkv: 1, N: 64, D: 8, Dv: 8 }, { blockSize: 4, causal: true }, 21);
  });

  it('matches the reference: given sort logits, shared, per head, per batch and per both', () => {
    const p = gqa;
    const n = nb(p, 8);
    for (const [dims, seed] of [[[1, 1, n, n], 30], [[1, p.H, n, n], 31], [[p.B, 1, n, n], 32], [[p.B, p.H, n, n], 33]] as const) {
      const sortLogits = randn([...dims], seed, 2);
      expectReference(p, { blockSize: 8, sortLogits, keyPadding: padding(2, 96, seed) }, seed);
      expectReference(p, { blockSize: 8, sortLogits, causal: true }, seed + 10);
    }
  });

  it('matches the reference: no balancing, many steps', () => {
    expectReference(gqa, { blockSize: 8, iterations: 0, temperature: 2 }, 40);
    expectReference(gqa, { blockSize: 16, iterations: 30, sortLogits: randn([1, 4, 6, 6], 41, 3) }, 42);
  });

  it('matches the reference: blocks of more than 64 rows, and heads cut into several calls', () => {
    expectReference({ B: 1, H: 2, Hkv: 1, N: 240, D: 8, Dv: 8 }, { blockSize: 80, keyPadding: padding(1, 240, 50) }, 51);
    expectReference({ B: 1, H: 2, Hkv: 1, N: 160, D: 8, Dv: 8 }, { blockSize: 80, causal: true }, 52);
    expectReference({ B: 1, H: 2, Hkv: 1, N: 1024, D: 64, Dv: 64 }, { blockSize: 64, keyPadding: padding(1, 1024, 53) }, 54);
  });

  /** Two results' gradients bit for bit (as Buffers). */
  const expectSameBits = (got: GradientTensors, want: GradientTensors) => {
    const wanted = new Map(gradients(want));
    expect(gradients(got).map(([path]) => path)).toEqual([...wanted.keys()]);
    for (const [path, t] of gradients(got)) expect(Buffer.from(bytes(t.data)).equals(Buffer.from(bytes(wanted.get(path)!.data))), path).toBe(true);
  };

  it.each([
    ['grouped-query heads, padding', { blockSize: 8, keyPadding: padding(2, 96, 60) }],
    ['causal', { blockSize: 12, causal: true }],
    ['shared sort logits', { blockSize: 8, sortLogits: randn([1, 1, 12, 12], 61) }],
    ['per-head sort logits', { blockSize: 8, sortLogits: randn([1, 4, 12, 12], 62), causal: true }],
  ])('runBackward on the pool gives the bits of backward: %s', async (_, options) => {
    const [q, k, v, g] = inputs(gqa, 70);
    const sync = one.backward('sinkhorn', q, k, v, g, options);
    expectSameBits(await two.runBackward('sinkhorn', q, k, v, g, options), sync);
    expect(two.memory.inUse).toBe(0);
  });

  it('gives zeros where nothing reads, after memory held other values', () => {
    const cases: [Problem, Record<string, unknown>][] = [
      // no batch: nothing reads the given logits
      [{ B: 0, H: 2, Hkv: 1, N: 16, D: 4, Dv: 4 }, { blockSize: 4, sortLogits: randn([1, 2, 4, 4], 90) }],
      // no positions
      [{ B: 2, H: 2, Hkv: 2, N: 0, D: 4, Dv: 4 }, { blockSize: 3 }],
    ];
    for (const [problem, options] of cases) {
      expectReference(gqa, { blockSize: 8, sortLogits: randn([2, 4, 12, 12], 91) }, 92);
      const [q, k, v, g] = inputs(problem, 93);
      const got = one.backward('sinkhorn', q, k, v, g, options);
      for (const [path, t] of gradients(got)) expect(t.data.every((x) => x === 0), path).toBe(true);
      expect(gradients(got).map(([path, t]) => [path, t.dims])).toEqual(gradients(js.backward('sinkhorn', q, k, v, g, options)).map(([path, t]) => [path, t.dims]));
    }
  });

  it('rejects a gradOutput of the wrong dims and stays usable', async () => {
    const [q, k, v, g] = inputs(gqa, 80);
    const options = { blockSize: 8, causal: true };
    const before = one.backward('sinkhorn', q, k, v, g, options);
    expect(() => one.backward('sinkhorn', q, k, v, randn([2, 4, 96, 9], 81), options)).toThrow(/^gradOutput\.dims: expected the output's dims \[2, 4, 96, 8\], received \[2, 4, 96, 9\]/);
    expect(() => one.backward('sinkhorn', q, k, v, randn([2, 4, 96, 8], 82), { ...options, blockSize: 7 })).toThrow(RangeError);
    await expect(two.runBackward('sinkhorn', q, k, v, randn([4, 96, 8], 83), options)).rejects.toThrow(RangeError);
    expect(one.memory.inUse).toBe(0);
    expect(two.memory.inUse).toBe(0);
    expectSameBits(one.backward('sinkhorn', q, k, v, g, options), before);
  });
});
