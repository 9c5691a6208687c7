// SPEC "Errors" for backward() and runBackward(): bad input (gradOutput above all) throws a
// TypeError / RangeError naming the argument, on both backends; the instance keeps working, its
// memory back where it was, and the next backward gives the same gradients as before.
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type GradientTensors, type Tensor } from '../dist/index.js';
import { bytes } from './backends.js';
import { randn } from './random.js';

const q = randn([2, 2, 9, 4], 1);
const k = randn([2, 2, 11, 4], 2);
const v = randn([2, 2, 11, 3], 3);
const gradOutput = randn([2, 2, 9, 3], 4);
const bnhd = { q: randn([2, 9, 2, 4], 5), k: randn([2, 11, 2, 4], 6), v: randn([2, 11, 2, 3], 7) };

type Backward = (attn: Attention, ...args: Parameters<Attention['backward']>) => unknown;
type Case = [string, (attn: Attention, backward: Backward) => unknown, typeof TypeError | typeof RangeError, RegExp];

const cases: Case[] = [
  ['gradOutput missing', (a, b) => b(a, 'full', q, k, v, undefined as never), TypeError, /^gradOutput: expected a tensor/],
  ['gradOutput not a tensor', (a, b) => b(a, 'full', q, k, v, new Float32Array(54) as never), TypeError, /^gradOutput\.data: expected a Float32Array, received undefined/],
  ['gradOutput of float64', (a, b) => b(a, 'full', q, k, v, { data: new Float64Array(108) as never, dims: [2, 2, 9, 3] }), TypeError, /^gradOutput\.data: expected a Float32Array, received Float64Array\(108\)/],
  ['gradOutput dims disagree with data', (a, b) => b(a, 'full', q, k, v, { data: gradOutput.data, dims: [2, 2, 9, 4] }), RangeError, /^gradOutput\.dims: \[2, 2, 9, 4\] hold 144 values, but data has 108/],
  ['gradOutput of the wrong dims', (a, b) => b(a, 'full', q, k, v, randn([2, 2, 9, 4], 8)), RangeError, /^gradOutput\.dims: expected the output's dims \[2, 2, 9, 3\], received \[2, 2, 9, 4\]/],
  ['gradOutput of another rank', (a, b) => b(a, 'full', q, k, v, { data: gradOutput.data, dims: [4, 9, 3] }), RangeError, /^gradOutput\.dims: expected the output's dims \[2, 2, 9, 3\], received \[4, 9, 3\]/],
  ["gradOutput in 'bhnd' for a 'bnhd' call", (a, b) => b(a, 'full', bnhd.q, bnhd.k, bnhd.v, gradOutput, { layout: 'bnhd' }), RangeError, /^gradOutput\.dims: expected the output's dims \[2, 9, 2, 3\], received \[2, 2, 9, 3\]/],
  ['gradOutput of the keys, not the queries', (a, b) => b(a, 'full', q, k, v, randn([2, 2, 11, 3], 9)), RangeError, /^gradOutput\.dims: expected the output's dims \[2, 2, 9, 3\]/],
  ['unknown variant', (a, b) => b(a, 'fast' as never, q, k, v, gradOutput), TypeError, /^name: expected one of 'full'.*received "fast"/],
  ['misspelt option', (a, b) => b(a, 'full', q, k, v, gradOutput, { casual: true }), TypeError, /^options\.casual: unknown option 'casual' \(did you mean 'causal'\? full accepts /],
  ["another variant's option", (a, b) => b(a, 'full', q, k, v, gradOutput, { window: 2 }), TypeError, /^options\.window: unknown option 'window' \(full accepts scale, causal/],
  ["a mixed head's unknown option", (a, b) => b(a, 'mixed', q, k, v, gradOutput, { heads: [{ kind: 'local', widow: 1 }, { kind: 'full' }] }), TypeError, /^options\.heads\[0\]\.widow: unknown option 'widow' \(did you mean 'window'\?/],
  ['options not an object', (a, b) => b(a, 'full', q, k, v, gradOutput, 'causal' as never), TypeError, /^options: expected an object, received "causal"/],
  ['q and k disagree on D', (a, b) => b(a, 'full', q, randn([2, 2, 11, 5], 10), v, gradOutput), RangeError, /^k\.dims: feature size D must match q/],
  ['lsh given a separate k', (a, b) => b(a, 'lsh', q, k, v, gradOutput, { bucketSize: 2, rounds: 1, buckets: 2, seed: 1 }), TypeError, /^k: lsh shares queries and keys/],
  ['linformer asked to be causal', (a, b) => b(a, 'linformer', q, k, v, gradOutput, { e: randn([3, 11], 11), causal: true }), RangeError, /^options\.causal: linformer cannot be causal, received true/],
  ['synthesizer without logits', (a, b) => b(a, 'synthesizer', null, null, v, gradOutput), TypeError, /^options\.logits: required option is missing/],
  ['a bias that does not broadcast', (a, b) => b(a, 'full', q, k, v, gradOutput, { bias: randn([3, 9, 11], 12) }), RangeError, /^options\.bias\.dims: expected/],
];

const backwards: Record<string, Backward> = {
  backward: (attn, ...args) => attn.backward(...args),
  runBackward: (attn, ...args) => attn.runBackward(...args),
};

/** Every gradient's bytes, to compare two results bit for bit. */
const allBytes = (g: GradientTensors): Uint8Array[] => [g.q, g.k, g.v, g.params.bias as Tensor].map((t) => bytes(t!.data));

describe.each(['wasm', 'js'] as const)('backward errors (%s backend)', (backend) => {
  let attn: Attention;
  const valid = { causal: true, bias: randn([9, 11], 13) };
  let before: Uint8Array[];
  beforeAll(async () => {
    attn = await createAttention({ backend });
    before = allBytes(attn.backward('full', q, k, v, gradOutput, valid));
  });

  describe.each(Object.keys(backwards))('%s', (entry) => {
    it.each(cases)('%s', async (_name, call, type, message) => {
      const inUse = attn.memory.inUse;
      let error: unknown;
      try {
        await call(attn, backwards[entry]);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(type);
      expect((error as Error).message).toMatch(message);
      // the instance still works, and its memory is back where it was
      expect(attn.memory.inUse).toBe(inUse);
      expect(allBytes(attn.backward('full', q, k, v, gradOutput, valid))).toEqual(before);
      expect(allBytes(await attn.runBackward('full', q, k, v, gradOutput, valid))).toEqual(before);
    });
  });
});
