// The SIMD backward pass of `compressed` (SPEC "Gradients"): gradients of q,
// k, v and of convK / convV (weight, bias), nullKey, nullValue against the
// float64 reference (the JS backend) on problems with several slots and query
// blocks, grouped-query heads, padding (hidden slots included), causal, both
// poolings, null slots, per-head and shared parameters; the pool gives the
// same bits; bad gradOutput leaves the instance usable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type GradientTensors } from '../dist/index.js';
import { bytes } from './backends.js';
import { flatParams } from './grad-golden.js';
import { expectGradients } from './grad-simd.js';
import { padding, randn, swapHeadsAndPositions, type T } from './random.js';

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
  Nq: number;
  Nk: number;
  D: number;
  Dv: number;
}

/** q, k, v and gradOutput of a problem, from `seed`. */
function inputs({ B, H, Hkv, Nq, Nk, D, Dv }: Problem, seed: number): [T, T, T, T] {
  return [randn([B, H, Nq, D], seed), randn([B, Hkv, Nk, D], seed + 1), randn([B, Hkv, Nk, Dv], seed + 2), randn([B, H, Nq, Dv], seed + 3)];
}

/** A Conv1d of `heads` heads (0: the one-head `[Dx, Dx, s]` form), with a bias unless `bias` is false. */
function conv(heads: number, Dx: number, s: number, seed: number, bias = true): { weight: T; bias?: T } {
  const lead = heads === 0 ? [] : [heads];
  const weight = randn([...lead, Dx, Dx, s], seed, 1 / Math.sqrt(Dx * s));
  return bias ? { weight, bias: randn([...lead, Dx], seed + 1, 0.3) } : { weight };
}

/** Padding with slot `slot` (positions slot s .. slot s + s - 1) of batch 0 wholly padded: a hidden slot. */
function paddingWithHiddenSlot(B: number, N: number, s: number, slot: number, seed: number): Uint8Array {
  const mask = padding(B, N, seed);
  mask.fill(0, slot * s, Math.min(N, (slot + 1) * s));
  return mask;
}

/** The bytes of every gradient of a call by path: q, k, v then the params. */
const bitsOf = (g: GradientTensors) => new Map([...flatParams({ q: g.q, k: g.k, v: g.v }, 'grad'), ...flatParams(g.params)].map(([path, t]) => [path, bytes(t.data)]));

const mean: Problem = { B: 2, H: 4, Hkv: 2, Nq: 150, Nk: 130, D: 8, Dv: 6 };
const convProblem: Problem = { B: 2, H: 4, Hkv: 2, Nq: 70, Nk: 90, D: 8, Dv: 5 };
const square: Problem = { B: 1, H: 3, Hkv: 3, Nq: 77, Nk: 77, D: 6, Dv: 6 };
const wide: Problem = { B: 1, H: 2, Hkv: 1, Nq: 150, Nk: 2200, D: 64, Dv: 64 };

const cases: [string, Problem, Record<string, unknown>][] = [
  ['mean, grouped-query heads, causal, padding with a hidden slot', mean, { factor: 4, causal: true, keyPadding: paddingWithHiddenSlot(2, 130, 4, 5, 1) }],
  ['mean with null slots per head, padding, a scale', mean, { factor: 5, keyPadding: padding(2, 130, 2), nullKey: randn([4, 8], 3), nullValue: randn([4, 6], 4), scale: 0.2 }],
  ['mean, factor past Nk (one slot of every key), causal, a null slot', square, { factor: 100, causal: true, nullKey: randn([3, 6], 5), nullValue: randn([3, 6], 6) }],
  [
    'conv per head with biases, null slots per head, grouped-query heads, padding',
    convProblem,
    { factor: 3, convK: conv(4, 8, 3, 10), convV: conv(4, 5, 3, 12), nullKey: randn([4, 8], 14), nullValue: randn([4, 5], 15), keyPadding: paddingWithHiddenSlot(2, 90, 3, 7, 16) },
  ],
  ['conv shared by heads, shared null slot, causal, s not dividing Nk', square, { factor: 4, causal: true, convK: conv(0, 6, 4, 20), convV: conv(1, 6, 4, 22), nullKey: randn([6], 24), nullValue: randn([1, 6], 25) }],
  ['convK alone (values mean-pooled): shared weight, per-head bias, no bias on a per-head convV', convProblem, { factor: 4, convK: { weight: conv(1, 8, 4, 30).weight, bias: randn([4, 8], 31) }, keyPadding: padding(2, 90, 32) }],
  ['convV alone, per head without a bias, causal, Nq != Nk', convProblem, { factor: 2, causal: true, convV: conv(4, 5, 2, 40, false) }],
  ['conv with factor past Nk (taps past the sequence)', { ...square, Nk: 9 }, { factor: 12, convK: conv(3, 6, 12, 50), convV: conv(0, 6, 12, 52), keyPadding: padding(1, 9, 53) }],
  ['1100 slots: several row calls per head', wide, { factor: 2, keyPadding: padding(1, 2200, 60), nullKey: randn([64], 61), nullValue: randn([64], 62) }],
];

describe('compressed backward (SIMD)', () => {
  it.each(cases.map(([name, problem, options], index) => [name, problem, options, index] as const))('matches the float64 reference: %s', (name, problem, options, index) => {
    const [q, k, v, g] = inputs(problem, 100 * index + 1);
    const want = js.backward('compressed', q, k, v, g, options);
    const got = one.backward('compressed', q, k, v, g, options);
    expect(Object.keys(got.params), name).toEqual(Object.keys(want.params));
    expectGradients(got, want, 1e-4, name);
    expect(one.memory.inUse).toBe(0);
  });

  it('runs the SIMD pass, not the reference: float32 sums do not round as the float64 ones everywhere', () => {
    const [name, problem, options] = cases[3];
    const [q, k, v, g] = inputs(problem, 5);
    expect(bitsOf(one.backward('compressed', q, k, v, g, options)), name).not.toEqual(bitsOf(js.backward('compressed', q, k, v, g, options)));
  });

  it("matches the float64 reference in the 'bnhd' layout", () => {
    const [q, k, v, g] = inputs(convProblem, 7).map(swapHeadsAndPositions);
    const options = { layout: 'bnhd', factor: 3, convK: conv(4, 8, 3, 70), convV: conv(0, 5, 3, 72), causal: true, keyPadding: padding(2, 90, 74) };
    expectGradients(one.backward('compressed', q, k, v, g, options), js.backward('compressed', q, k, v, g, options), 1e-4, 'bnhd');
  });

  it.each([
    ['conv per head, null slots, grouped-query heads, padding', { factor: 3, convK: conv(4, 16, 3, 80), convV: conv(4, 12, 3, 82), nullKey: randn([4, 16], 84), nullValue: randn([4, 12], 85), keyPadding: padding(2, 650, 86) }],
    ['shared conv, causal', { factor: 4, causal: true, convK: conv(0, 16, 4, 90), convV: conv(1, 12, 4, 92) }],
    ['mean, causal, padding', { factor: 2, causal: true, keyPadding: padding(2, 650, 94) }],
  ] as const)('runBackward on the pool gives the bits of backward: %s', async (_, options) => {
    const [q, k, v, g] = inputs({ B: 2, H: 4, Hkv: 2, Nq: 300, Nk: 650, D: 16, Dv: 12 }, 9);
    const sync = one.backward('compressed', q, k, v, g, options);
    const pooled = await two.runBackward('compressed', q, k, v, g, options);
    expect(bitsOf(pooled)).toEqual(bitsOf(sync));
    expect(two.memory.inUse).toBe(0);
  });

  it('rejects a gradOutput of the wrong dims and stays usable', async () => {
    const [q, k, v, g] = inputs({ B: 1, H: 2, Hkv: 2, Nq: 40, Nk: 40, D: 8, Dv: 8 }, 11);
    const options = { factor: 4, convK: conv(2, 8, 4, 12), nullKey: randn([8], 14), nullValue: randn([8], 15) };
    const before = one.backward('compressed', q, k, v, g, options);
    expect(() => one.backward('compressed', q, k, v, randn([1, 2, 40, 9], 3), options)).toThrow(/^gradOutput\.dims: expected the output's dims \[1, 2, 40, 8\], received \[1, 2, 40, 9\]/);
    expect(() => one.backward('compressed', q, k, v, randn([1, 2, 40, 9], 3), options)).toThrow(RangeError);
    await expect(two.runBackward('compressed', q, k, v, randn([2, 40, 8], 3), options)).rejects.toThrow(RangeError);
    expect(one.memory.inUse).toBe(0);
    expect(two.memory.inUse).toBe(0);
    expect(bitsOf(one.backward('compressed', q, k, v, g, options))).toEqual(bitsOf(before));
  });
});
