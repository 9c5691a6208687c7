// The SIMD backward pass of `lsh` (SPEC "Gradients": buckets and chunks
// fixed, the rounds one softmax over every entry looked at, q's gradient
// covering its roles as queries and as normalised keys): the float64
// reference (the JS backend) on problems of several chunks and rounds with
// padding, causal, given and drawn rotations, a chunk of N, D not a multiple
// of 4; the pool gives the same bits; bad gradOutput leaves the instance usable.
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


function expectReference(x: T, v: T, options: Record<string, unknown>): void {
  const g = randn([...x.dims.slice(0, -1), v.dims[v.dims.length - 1]], 77);
  const got = one.backward('lsh', x, null, v, g, options as never);
  const want = js.backward('lsh', x, null, v, g, options as never);
  expect(got.k).toBeNull();
  for (const input of ['q', 'v'] as const) {
    expect(got[input]!.dims, input).toEqual(want[input]!.dims);
    expect(relative(got[input]!.data, want[input]!.data), input).toBeLessThanOrEqual(1e-5);
  }
  expect(got.params).toEqual({});
  expect(one.memory.inUse).toBe(0);
}

describe('lsh backward (SIMD)', () => {
  const x = randn([2, 3, 150, 7], 1);
  const v = randn([2, 3, 150, 9], 2);
  it.each([
    ['2 rounds, 8 buckets, c = 16', { bucketSize: 16, rounds: 2, buckets: 8, seed: 1 }],
    ['causal, key padding', { bucketSize: 20, rounds: 3, buckets: 6, seed: 2, causal: true, keyPadding: padding(2, 150, 3) }],
    ['given rotations per head, scale, c not dividing N', { bucketSize: 33, rotations: randn([3, 2, 7, 4], 4), scale: 0.7 }],
    ['one chunk of N per round (exact shared-QK attention), causal', { bucketSize: 150, rounds: 1, buckets: 2, seed: 5, causal: true }],
    ['two rounds of one chunk each, half the keys padded', { bucketSize: 500, rounds: 2, buckets: 4, seed: 6, keyPadding: padding(2, 150, 7, 0.5) }],
    ['c = 1 (a query sees only itself and one other)', { bucketSize: 1, rounds: 2, buckets: 4, seed: 8, causal: true }],
  ] as const)('equals the float64 reference: %s', (_, options) => {
    expectReference(x, v, options);
  });

  it('D = 64, chunks of 100 (several row blocks), a zero row (no radial part)', () => {
    const y = randn([1, 2, 300, 64], 10, 0.3);
    y.data.fill(0, 17 * 64, 18 * 64);
    expectReference(y, randn([1, 2, 300, 64], 11), { bucketSize: 100, rounds: 2, buckets: 4, seed: 3 });
  });

  it.each([
    ['drawn rotations, causal, padding', { bucketSize: 16, rounds: 3, buckets: 8, seed: 9, causal: true, keyPadding: padding(2, 150, 12) }],
    ['given rotations', { bucketSize: 25, rotations: randn([2, 7, 3], 13) }],
  ] as const)('runBackward on the pool gives the bits of backward: %s', async (_, options) => {
    const g = randn([2, 3, 150, 9], 24);
    const sync = one.backward('lsh', x, null, v, g, options as never);
    const pooled = await two.runBackward('lsh', x, null, v, g, options as never);
    for (const input of ['q', 'v'] as const) expect(bytes(pooled[input]!.data), input).toEqual(bytes(sync[input]!.data));
    expect(two.memory.inUse).toBe(0);
  });

  it('rejects a gradOutput of the wrong dims and stays usable', async () => {
    const options = { bucketSize: 16, rounds: 2, buckets: 8, seed: 1 };
    const g = randn([2, 3, 150, 9], 25);
    const before = one.backward('lsh', x, null, v, g, options);
    expect(() => one.backward('lsh', x, null, v, randn([2, 3, 150, 7], 26), options)).toThrow(/^gradOutput\.dims: expected the output's dims \[2, 3, 150, 9\], received \[2, 3, 150, 7\]/);
    await expect(two.runBackward('lsh', x, null, v, randn([2, 3, 149, 9], 26), options)).rejects.toThrow(RangeError);
    expect(one.memory.inUse).toBe(0);
    expect(two.memory.inUse).toBe(0);
    expect(bytes(one.backward('lsh', x, null, v, g, options).q!.data)).toEqual(bytes(before.q!.data));
  });
});
