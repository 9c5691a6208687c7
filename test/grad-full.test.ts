// The SIMD backward pass of `full` and of the pattern family (SPEC
// "Gradients", FlashAttention-2's: row statistics, then key blocks against
// row blocks, no Nq x Nk buffer; local windows as a band of keys, any other
// pattern as the cover of the forward's passes): the gradient goldens of
// full and the patterns; the float64
// reference (the JS backend) on problems of several key and row blocks with
// grouped-query heads, Nq != Nk, padding, masks, every broadcast of a bias
// (its gradient summed over the broadcast axes), soft-capping, windows,
// strides (by residue in self-attention), global tokens, random picks, their
// unions and mixed heads (their plans side by side);
// the forward's output given as saved.output; the pool gives the same bits;
// bad gradOutput or saved leaves the instance usable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type GradientTensors } from '../dist/index.js';
import { bytes } from './backends.js';
import { expectGradients, loadGradGolden, relative } from './grad-simd.js';
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


type Softmax = 'full' | 'local' | 'strided' | 'global' | 'sparse' | 'mixed';

function expectReference(name: Softmax, q: T, k: T, v: T, options: Record<string, unknown>): GradientTensors {
  const g = randn([...q.dims.slice(0, -1), v.dims[v.dims.length - 1]], 77);
  const got = one.backward(name, q, k, v, g, options);
  const want = js.backward(name, q, k, v, g, options);
  for (const input of ['q', 'k', 'v'] as const) {
    expect(got[input]!.dims, input).toEqual(want[input]!.dims);
    expect(relative(got[input]!.data, want[input]!.data), input).toBeLessThanOrEqual(1e-5);
  }
  // every parameter gradient (a bias, mixed heads' own): the same paths, dims and values
  const mine = new Map(flatParams(got.params));
  const theirs = flatParams(want.params);
  expect([...mine.keys()].sort()).toEqual(theirs.map(([path]) => path).sort());
  for (const [path, tensor] of theirs) {
    expect(mine.get(path)!.dims, path).toEqual(tensor.dims);
    expect(relative(mine.get(path)!.data, tensor.data, 1), path).toBeLessThanOrEqual(1e-5);
  }
  expect(one.memory.inUse).toBe(0);
  return got;
}

const mask = (dims: number[], seed: number) => {
  const m = randn(dims, seed);
  return { data: Uint8Array.from(m.data, (x) => (x > -0.8 ? 1 : 0)), dims };
};

describe('full and pattern backward (SIMD)', () => {
  const goldens = [...loadGradGolden('model.json'), ...loadGradGolden('patterns.json')];

  it.each(goldens.map((c) => [`${c.variant} ${c.name}`, c] as const))('matches the golden %s', (_, c) => {
    expectGradients(one.backward(c.variant as 'full', c.q, c.k, c.v, c.gradOutput, c.options), c.expected, 1e-4, c.name);
    expect(one.memory.inUse).toBe(0);
  });

  // 150 x 200: three key blocks and three row blocks (the last of each partial); D, Dv not multiples of 4
  const q = randn([2, 4, 150, 7], 1, 0.8);
  const k = randn([2, 2, 200, 7], 2, 0.8);
  const v = randn([2, 2, 200, 9], 3);
  it.each([
    ['plain', {}],
    ['causal (bottom-right, Nq < Nk)', { causal: true }],
    ['key padding, causal', { causal: true, keyPadding: padding(2, 200, 4) }],
    ['mask [Nq, Nk]', { mask: mask([150, 200], 5) }],
    ['mask [B, H, Nq, Nk], soft-cap', { mask: mask([2, 4, 150, 200], 6), softcap: 1.5 }],
    ['bias [B, H, Nq, Nk]', { bias: randn([2, 4, 150, 200], 7) }],
    ['bias [H, Nq, Nk] (summed over batches), causal', { bias: randn([4, 150, 200], 8), causal: true }],
    ['bias [Nq, Nk] (summed over batches and heads), mask', { bias: randn([150, 200], 9), mask: mask([2, 1, 150, 200], 10) }],
    ['bias [B, 1, 1, Nk] (ALiBi-like rows), soft-cap', { bias: randn([2, 1, 1, 200], 11), softcap: 2 }],
    ['bias [B, H, Nq, 1] (a constant per row: gradient 0)', { bias: randn([2, 4, 150, 1], 12) }],
    ['bias with -Infinity, everything', { bias: { data: randn([150, 200], 13).data.map((x) => (x < -1.2 ? -Infinity : x)), dims: [150, 200] }, causal: true, softcap: 3, keyPadding: padding(2, 200, 14), mask: mask([150, 200], 15) }],
  ] as const)('equals the float64 reference: %s', (_, options) => {
    expectReference('full', q, k, v, options);
  });

  it('rows that see no key get zero gradients', () => {
    const hidden = new Uint8Array(150 * 200).fill(1);
    hidden.fill(0, 10 * 200, 20 * 200); // rows 10-19 see nothing
    const got = expectReference('full', q, k, v, { mask: { data: hidden, dims: [150, 200] } });
    const dq = got.q!.data;
    for (let i = 10 * 7; i < 20 * 7; i++) expect(dq[i]).toBe(0);
  });

  it('more queries than keys, one head, D = 64 (the tiled products in full)', () => {
    expectReference('full', randn([1, 1, 300, 64], 16, 0.3), randn([1, 1, 130, 64], 17, 0.3), randn([1, 1, 130, 64], 18), { causal: true });
  });

  it.each([
    ['window 5', { window: 5 }],
    ['before 70, after 3 (rows 64 keys apart)', { before: 70, after: 3 }],
    ['sliding window, causal, soft-cap, bias', { before: 9, after: 2, causal: true, softcap: 2, bias: randn([150, 200], 19) }],
    ['window over the whole sequence', { window: 500, keyPadding: padding(2, 200, 20) }],
  ] as const)('local equals the float64 reference: %s', (_, options) => {
    expectReference('local', q, k, v, options);
  });

  it.each([
    ['strided 9', 'strided', { stride: 9 }],
    ['strided 5 window 3, causal, bias', 'strided', { stride: 5, window: 3, causal: true, bias: randn([4, 150, 200], 27) }],
    ['strided 64 (one key per block)', 'strided', { stride: 64, keyPadding: padding(2, 200, 28) }],
    ['global tokens', 'global', { tokens: [0, 77, 140] }],
    ['global token, causal, soft-cap', 'global', { tokens: [3, 199], causal: true, softcap: 2 }],
    ['sparse local + strided', 'sparse', { patterns: [{ type: 'local', window: 3 }, { type: 'strided', stride: 9 }] }],
    ['sparse local + global + random, causal', 'sparse', { patterns: [{ type: 'local', before: 8, after: 0 }, { type: 'global', tokens: [1, 100] }, { type: 'random', count: 5, seed: 3 }], causal: true }],
    ['sparse two strides (extra keys), mask', 'sparse', { patterns: [{ type: 'strided', stride: 4 }, { type: 'strided', stride: 7, window: 2 }], mask: mask([150, 200], 29) }],
    ['mixed heads (their plans side by side), a shared bias', 'mixed', {
      heads: [{ kind: 'full', causal: true }, { kind: 'local', window: 6 }, { kind: 'global', tokens: [0, 50] }, { kind: 'strided', stride: 7 }],
      bias: randn([2, 4, 150, 200], 31),
    }],
    ['mixed heads with linear and linformer heads', 'mixed', { heads: [{ kind: 'full' }, { kind: 'linear', causal: true }, { kind: 'linformer', e: randn([16, 200], 33, 0.1) }, { kind: 'local', window: 2 }] }],
  ] as const)('%s equals the float64 reference', (_, name, options) => {
    expectReference(name, q, k, v, options);
  });

  // self-attention: strided runs backward by residue (src/grad/strided.ts), each residue a banded problem of its own
  const qs = randn([2, 4, 200, 7], 40, 0.8);
  const ks = randn([2, 2, 200, 7], 41, 0.8);
  const vs = randn([2, 2, 200, 9], 42);
  it.each([
    ['stride 9 (residues of 23 and 22 positions)', { stride: 9 }],
    ['stride 5 window 3, causal, soft-cap', { stride: 5, window: 3, causal: true, softcap: 2 }],
    ['stride 64 window 1 (residues of 4 and 3), key padding', { stride: 64, window: 1, keyPadding: padding(2, 200, 43) }],
    ['stride 2 window 1', { stride: 2, window: 1 }],
    ['stride 150, scale (residues of 2 and 1)', { stride: 150, scale: 0.3 }],
    ['stride 7 with a bias (the pattern\'s plan)', { stride: 7, bias: randn([200, 200], 44) }],
  ] as const)('strided self-attention equals the float64 reference: %s', (_, options) => {
    expectReference('strided', qs, ks, vs, options);
  });

  it('mixed heads in self-attention, their strided heads by residue, equal the float64 reference', () => {
    expectReference('mixed', qs, ks, vs, { heads: [{ kind: 'strided', stride: 7, window: 2 }, { kind: 'full', causal: true }, { kind: 'strided', stride: 5 }, { kind: 'local', window: 3 }] });
  });

  it('strided self-attention: the pool gives the bits of backward, and saved.output the same gradients', async () => {
    const g = randn([2, 4, 200, 9], 45);
    const options = { stride: 6, window: 4, causal: true, keyPadding: padding(2, 200, 46) };
    const sync = one.backward('strided', qs, ks, vs, g, options);
    const output = one.apply('strided', qs, ks, vs, options);
    const saved = one.backward('strided', qs, ks, vs, g, options, { output });
    const pooled = await two.runBackward('strided', qs, ks, vs, g, options, { output });
    for (const input of ['q', 'k', 'v'] as const) {
      expect(relative(saved[input]!.data, sync[input]!.data), input).toBeLessThanOrEqual(1e-6);
      expect(bytes(pooled[input]!.data), input).toEqual(bytes(saved[input]!.data));
    }
    expect(bytes((await two.runBackward('strided', qs, ks, vs, g, options)).q!.data)).toEqual(bytes(sync.q!.data));
    expect(one.memory.inUse).toBe(0);
    expect(two.memory.inUse).toBe(0);
  });

  it.each([
    ['full, grouped-query heads, bias over heads', 'full', { causal: true, bias: randn([150, 200], 21), keyPadding: padding(2, 200, 22) }],
    ['full, mask and soft-cap', 'full', { mask: mask([2, 4, 150, 200], 23), softcap: 2 }],
    ['local', 'local', { before: 40, after: 8 }],
    ['mixed', 'mixed', { heads: [{ kind: 'full' }, { kind: 'local', window: 6, bias: randn([150, 200], 32) }, { kind: 'linear', causal: true }, { kind: 'global', tokens: [9] }] }],
    ['sparse local + global + random', 'sparse', { patterns: [{ type: 'local', window: 4 }, { type: 'global', tokens: [5] }, { type: 'random', count: 3, seed: 1 }], bias: randn([2, 1, 150, 200], 30) }],
  ] as const)('runBackward on the pool gives the bits of backward: %s', async (_, name, options) => {
    const g = randn([2, 4, 150, 9], 24);
    const sync = one.backward(name, q, k, v, g, options);
    const pooled = await two.runBackward(name, q, k, v, g, options);
    for (const input of ['q', 'k', 'v'] as const) expect(bytes(pooled[input]!.data), input).toEqual(bytes(sync[input]!.data));
    expect(JSON.stringify(pooled.params, (_, x) => (x instanceof Float32Array ? [...bytes(x)] : x))).toBe(JSON.stringify(sync.params, (_, x) => (x instanceof Float32Array ? [...bytes(x)] : x)));
    expect(two.memory.inUse).toBe(0);
  });

  it.each([
    ['full', { causal: true, softcap: 2, bias: randn([150, 200], 34) }],
    ['full', { mask: mask([2, 4, 150, 200], 35), keyPadding: padding(2, 200, 36) }],
    ['local', { before: 20, after: 5 }],
    ['strided', { stride: 6 }],
  ] as const)('%s: given the forward\'s output (saved.output), the same gradients', async (name, options) => {
    const g = randn([2, 4, 150, 9], 37);
    const output = one.apply(name, q, k, v, options);
    const plain = one.backward(name, q, k, v, g, options);
    const saved = one.backward(name, q, k, v, g, options, { output });
    const pooled = await two.runBackward(name, q, k, v, g, options, { output });
    for (const input of ['q', 'k', 'v'] as const) {
      expect(relative(saved[input]!.data, plain[input]!.data), input).toBeLessThanOrEqual(1e-6);
      expect(bytes(pooled[input]!.data), input).toEqual(bytes(saved[input]!.data));
    }
    expect(one.memory.inUse).toBe(0);
  });

  it('checks saved: its keys and the output\'s dims, on every backend, and stays usable', () => {
    const g = randn([2, 4, 150, 9], 38);
    for (const attn of [one, js]) {
      expect(() => attn.backward('full', q, k, v, g, {}, { output: randn([2, 4, 150, 8], 39) })).toThrow(/^saved\.output\.dims: expected the output's dims \[2, 4, 150, 9\], received \[2, 4, 150, 8\]/);
      expect(() => attn.backward('full', q, k, v, g, {}, { out: g } as never)).toThrow(/^saved\.out: unknown option 'out' \(backward accepts output\)/);
      expect(() => attn.backward('full', q, k, v, g, {}, 3 as never)).toThrow(TypeError);
      expect(() => attn.backward('local', q, k, v, g, { window: 3 }, { output: { data: [1], dims: [2, 4, 150, 9] } } as never)).toThrow(/^saved\.output/);
    }
    expect(one.memory.inUse).toBe(0);
    // a variant that recomputes what it needs takes the output and gives the same gradients
    const linear = one.backward('linear', q, k, v, g, { causal: true }, { output: one.apply('linear', q, k, v, { causal: true }) });
    expect(bytes(linear.q!.data)).toEqual(bytes(one.backward('linear', q, k, v, g, { causal: true }).q!.data));
  });

  it('rejects a gradOutput of the wrong dims and stays usable', async () => {
    const g = randn([2, 4, 150, 9], 25);
    const before = one.backward('full', q, k, v, g, { causal: true });
    expect(() => one.backward('full', q, k, v, randn([2, 4, 150, 7], 26), { causal: true })).toThrow(/^gradOutput\.dims: expected the output's dims \[2, 4, 150, 9\], received \[2, 4, 150, 7\]/);
    expect(() => one.backward('local', q, k, v, randn([2, 4, 149, 9], 26), { window: 3 })).toThrow(RangeError);
    await expect(two.runBackward('full', q, k, v, { data: new Float64Array(2 * 4 * 150 * 9), dims: [2, 4, 150, 9] } as never)).rejects.toThrow(TypeError);
    expect(one.memory.inUse).toBe(0);
    expect(two.memory.inUse).toBe(0);
    expect(bytes(one.backward('full', q, k, v, g, { causal: true }).q!.data)).toEqual(bytes(before.q!.data));
  });
});
