// The SIMD backward pass of `routing` (SPEC "Gradients": memberships and
// centroids fixed, each cluster a softmax backward of its member queries
// over its member keys): the float64 reference (the JS backend) on problems
// of several clusters with grouped-query heads, Nq != Nk, padding, causal,
// given and fitted centroids, windows past N; the pool gives the same bits;
// bad gradOutput leaves the instance usable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relative } from './grad-simd.js';
import { createAttention, type Attention } from '../dist/index.js';
import { bytes } from './backends.js';
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


function expectReference(q: T, k: T, v: T, options: Record<string, unknown>): void {
  const g = randn([...q.dims.slice(0, -1), v.dims[v.dims.length - 1]], 77);
  const got = one.backward('routing', q, k, v, g, options as never);
  const want = js.backward('routing', q, k, v, g, options as never);
  for (const input of ['q', 'k', 'v'] as const) {
    expect(got[input]!.dims, input).toEqual(want[input]!.dims);
    expect(relative(got[input]!.data, want[input]!.data), input).toBeLessThanOrEqual(1e-5);
  }
  expect(got.params).toEqual({});
  expect(one.memory.inUse).toBe(0);
}

describe('routing backward (SIMD)', () => {
  // grouped-query heads (4 query heads on 2 kv heads), Nq != Nk, D and Dv not multiples of 4
  const q = randn([2, 4, 150, 7], 1);
  const k = randn([2, 2, 200, 7], 2);
  const v = randn([2, 2, 200, 9], 3);
  const centroids = randn([4, 6, 7], 4);
  it.each([
    ['given centroids per head, w = 40', { window: 40, centroids }],
    ['shared centroids [C, D], causal (bottom-right, Nq < Nk)', { window: 50, centroids: randn([5, 7], 5), causal: true }],
    ['fitted centroids, key padding', { window: 70, clusters: 4, iterations: 3, seed: 9, keyPadding: padding(2, 200, 6) }],
    ['fitted, causal, key padding, scale', { window: 30, clusters: 7, seed: 2, causal: true, keyPadding: padding(2, 200, 7, 0.5), scale: 0.6 }],
    ['one cluster with every query and key (w past N)', { window: 1000, centroids: randn([1, 7], 8), causal: true }],
    ['w = 1', { window: 1, centroids }],
  ] as const)('equals the float64 reference: %s', (_, options) => {
    expectReference(q, k, v, options);
  });

  it('more queries than keys, D = 64, several row blocks per cluster', () => {
    expectReference(randn([1, 2, 300, 64], 10, 0.3), randn([1, 1, 130, 64], 11, 0.3), randn([1, 1, 130, 64], 12), { window: 90, clusters: 3, seed: 4, causal: true });
  });

  it.each([
    ['given centroids, causal, padding', { window: 40, centroids, causal: true, keyPadding: padding(2, 200, 13) }],
    ['fitted centroids', { window: 60, clusters: 5, seed: 1 }],
  ] as const)('runBackward on the pool gives the bits of backward: %s', async (_, options) => {
    const g = randn([2, 4, 150, 9], 24);
    const sync = one.backward('routing', q, k, v, g, options as never);
    const pooled = await two.runBackward('routing', q, k, v, g, options as never);
    for (const input of ['q', 'k', 'v'] as const) expect(bytes(pooled[input]!.data), input).toEqual(bytes(sync[input]!.data));
    expect(two.memory.inUse).toBe(0);
  });

  it('rejects a gradOutput of the wrong dims and stays usable', async () => {
    const options = { window: 40, centroids };
    const g = randn([2, 4, 150, 9], 25);
    const before = one.backward('routing', q, k, v, g, options);
    expect(() => one.backward('routing', q, k, v, randn([2, 4, 150, 7], 26), options)).toThrow(/^gradOutput\.dims: expected the output's dims \[2, 4, 150, 9\], received \[2, 4, 150, 7\]/);
    await expect(two.runBackward('routing', q, k, v, randn([2, 4, 149, 9], 26), options)).rejects.toThrow(RangeError);
    expect(one.memory.inUse).toBe(0);
    expect(two.memory.inUse).toBe(0);
    expect(bytes(one.backward('routing', q, k, v, g, options).q!.data)).toEqual(bytes(before.q!.data));
  });
});
