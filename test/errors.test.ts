// SPEC "Errors": bad input throws a TypeError / RangeError naming the argument,
// and the instance keeps working with its memory back where it was.
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention } from '../dist/index.js';
import { maxAbsDiff } from './golden.js';
import { randn } from './random.js';

const q = randn([2, 2, 9, 4], 1);
const k = randn([2, 2, 11, 4], 2);
const v = randn([2, 2, 11, 3], 3);

type Case = [string, (attn: Attention) => unknown, typeof TypeError | typeof RangeError, RegExp];

const cases: Case[] = [
  ['q not an object', (a) => a.full(42 as never, k, v), TypeError, /^q: expected a tensor/],
  ['q.data not a Float32Array', (a) => a.full({ data: [1, 2] as never, dims: [1, 2] }, k, v), TypeError, /^q\.data: expected a Float32Array, received Array|^q\.data: expected a Float32Array, received \[/],
  ['q.data Float64Array', (a) => a.full({ data: new Float64Array(4) as never, dims: [2, 2] }, k, v), TypeError, /^q\.data: expected a Float32Array, received Float64Array\(4\)/],
  ['k.dims not integers', (a) => a.full(q, { data: k.data, dims: [2, 2, 11, 4.5] }, v), TypeError, /^k\.dims: expected an array of non-negative integers/],
  ['v.dims disagree with data', (a) => a.full(q, k, { data: v.data, dims: [2, 2, 11, 4] }), RangeError, /^v\.dims: \[2, 2, 11, 4\] hold 176 values, but data has 132/],
  ['rank 1', (a) => a.full({ data: new Float32Array(4), dims: [4] }, k, v), RangeError, /^q\.dims: expected rank 2 .* received \[4\]/],
  ['rank 5', (a) => a.full({ data: new Float32Array(4), dims: [1, 1, 1, 1, 4] }, k, v), RangeError, /^q\.dims: expected rank 2/],
  ['D = 0', (a) => a.full({ data: new Float32Array(0), dims: [3, 0] }, k, v), RangeError, /^q\.dims: the feature size D must be at least 1/],
  ['q and k disagree on D', (a) => a.full(q, randn([2, 2, 11, 5], 4), v), RangeError, /^k\.dims: feature size D must match q: expected 4, received 5/],
  ['q and k disagree on B', (a) => a.full(q, randn([1, 2, 11, 4], 4), v), RangeError, /^k\.dims: batch size B must match q: expected 2, received 1/],
  ['q heads not a multiple of k heads', (a) => a.full(q, randn([2, 3, 11, 4], 4), randn([2, 3, 11, 3], 5)), RangeError, /^k\.dims: q's head count H must be a multiple of k's head count Hkv .* received H = 2, Hkv = 3/],
  ['k and v disagree on heads', (a) => a.full(q, randn([2, 1, 11, 4], 4), v), RangeError, /^v\.dims: head count must match k: expected 1, received 2/],
  ['k and v disagree on Nk', (a) => a.full(q, k, randn([2, 2, 10, 3], 4)), RangeError, /^v\.dims: key count Nk must match k: expected 11, received 10/],
  // a null v is not weights()' absent v: every variant names it
  ...(['full', 'local', 'lsh', 'compressed', 'synthesizer'] as const).map((name): Case => [`v null (${name})`, (a) => a.apply(name, name === 'synthesizer' ? null : q, name === 'full' || name === 'local' || name === 'compressed' ? k : null, null as never), TypeError, /^v: expected a tensor \{ data: Float32Array, dims: number\[\] \}, received null/]),
  ['options not an object', (a) => a.full(q, k, v, 'causal' as never), TypeError, /^options: expected an object, received "causal"/],
  ['scale not a number', (a) => a.full(q, k, v, { scale: '0.5' as never }), TypeError, /^options\.scale: expected a finite number, received "0\.5"/],
  ['scale NaN', (a) => a.full(q, k, v, { scale: NaN }), TypeError, /^options\.scale: expected a finite number, received NaN/],
  ['causal not boolean', (a) => a.full(q, k, v, { causal: 1 as never }), TypeError, /^options\.causal: expected a boolean, received 1/],
  ['keyPadding not Uint8Array', (a) => a.full(q, k, v, { keyPadding: [1, 0] as never }), TypeError, /^options\.keyPadding: expected a Uint8Array \[B, Nk\]/],
  ['keyPadding wrong length', (a) => a.full(q, k, v, { keyPadding: new Uint8Array(11) }), RangeError, /^options\.keyPadding: expected 22 values \(\[B, Nk\] = \[2, 11\]\), received 11/],
  ['mask not a tensor', (a) => a.full(q, k, v, { mask: new Uint8Array(99) as never }), TypeError, /^options\.mask: expected a tensor \{ data: Uint8Array, dims: number\[\] \}, received Uint8Array\(99\)/],
  ['mask of floats', (a) => a.full(q, k, v, { mask: { data: new Float32Array(99), dims: [9, 11] } as never }), TypeError, /^options\.mask\.data: expected a Uint8Array, received Float32Array\(99\)/],
  ['mask dims that do not broadcast', (a) => a.local(q, k, v, { window: 1, mask: { data: new Uint8Array(99), dims: [11, 9] } }), RangeError, /^options\.mask\.dims: expected \[Nq\|1, Nk\|1\], .* \[B, H, Nq, Nk\] = \[2, 2, 9, 11\], received \[11, 9\]/],
  ['mask of rank 1', (a) => a.full(q, k, v, { mask: { data: new Uint8Array(11), dims: [11] } }), RangeError, /^options\.mask\.dims: expected .* received \[11\]/],
  ['mask of rank 5', (a) => a.full(q, k, v, { mask: { data: new Uint8Array(99), dims: [1, 1, 1, 9, 11] } }), RangeError, /^options\.mask\.dims: expected/],
  ['mask dims disagree with data', (a) => a.full(q, k, v, { mask: { data: new Uint8Array(98), dims: [9, 11] } }), RangeError, /^options\.mask\.dims: \[9, 11\] hold 99 values, but data has 98/],
  ['bias of float64', (a) => a.strided(q, k, v, { stride: 2, bias: { data: new Float64Array(99), dims: [9, 11] } as never }), TypeError, /^options\.bias\.data: expected a Float32Array, received Float64Array\(99\)/],
  ['bias of rank 3 with 3 heads', (a) => a.full(q, k, v, { bias: { data: new Float32Array(3 * 99), dims: [3, 9, 11] } }), RangeError, /^options\.bias\.dims: expected .* received \[3, 9, 11\]/],
  ['bias of 3 heads', (a) => a.full(q, k, v, { bias: { data: new Float32Array(3 * 99), dims: [1, 3, 9, 11] } }), RangeError, /^options\.bias\.dims: expected .* received \[1, 3, 9, 11\]/],
  ['softcap 0', (a) => a.full(q, k, v, { softcap: 0 }), RangeError, /^options\.softcap: expected a finite number > 0, received 0/],
  ['softcap negative', (a) => a.global(q, k, v, { tokens: [0], softcap: -2 }), RangeError, /^options\.softcap: expected a finite number > 0, received -2/],
  ['softcap not a number', (a) => a.full(q, k, v, { softcap: '5' as never }), TypeError, /^options\.softcap: expected a finite number > 0, received "5"/],
  ['softcap infinite', (a) => a.full(q, k, v, { softcap: Infinity }), TypeError, /^options\.softcap: expected a finite number > 0, received Infinity/],
  ['softcap past float32', (a) => a.full(q, k, v, { softcap: 1e300 }), RangeError, /^options\.softcap: expected a number that float32 holds .* received 1e\+300/],
  ['a mixed head that takes no mask', (a) => a.mixed(q, k, v, { heads: [{ kind: 'full' }, { kind: 'linear' }], mask: { data: new Uint8Array(99), dims: [9, 11] } }), TypeError, /^options\.mask: mixed applies it to every head, but options\.heads\[1\]\.kind is 'linear', which takes no mask/],
  ["a mixed head's own bias of the wrong dims", (a) => a.mixed(q, k, v, { heads: [{ kind: 'full' }, { kind: 'full', bias: { data: new Float32Array(2 * 99), dims: [2, 9, 11] } }] }), RangeError, /^options\.heads\[1\]\.bias\.dims: expected .* \[B, H, Nq, Nk\] = \[2, 1, 9, 11\]/],
  ['mixed top-level mask dims', (a) => a.mixed(q, k, v, { heads: [{ kind: 'full' }, { kind: 'full' }], mask: { data: new Uint8Array(3 * 99), dims: [3, 9, 11] } }), RangeError, /^options\.mask\.dims: expected/],
  ['layout unknown', (a) => a.full(q, k, v, { layout: 'nhd' as never }), RangeError, /^options\.layout: expected 'bhnd' or 'bnhd', received "nhd"/],
  ['layout not a string', (a) => a.full(q, k, v, { layout: 1 as never }), TypeError, /^options\.layout: expected 'bhnd' or 'bnhd', received 1/],
  ["layout 'bnhd' with rank 3 inputs", (a) => a.full(randn([2, 9, 4], 1), randn([2, 11, 4], 2), randn([2, 11, 3], 3), { layout: 'bnhd' }), RangeError, /^options\.layout: 'bnhd' needs rank-4 inputs \[B, N, H, D\], received q\.dims \[2, 9, 4\]/],
  ["layout 'bnhd' with rank 2 values", (a) => a.synthesizer(null, null, randn([11, 3], 3), { layout: 'bnhd', logits: randn([1, 9, 11], 4) }), RangeError, /^options\.layout: 'bnhd' needs rank-4 inputs \[B, N, H, D\], received v\.dims \[11, 3\]/],
  ["layout 'bnhd': q heads not a multiple of k's", (a) => a.full(randn([2, 9, 2, 4], 1), randn([2, 11, 3, 4], 2), randn([2, 11, 3, 3], 3), { layout: 'bnhd' }), RangeError, /^k\.dims: q's head count H must be a multiple of k's head count Hkv .* H = 2, Hkv = 3/],
  // bnhd inputs whose options lost their layout: the message says how the dims were read
  ["'bnhd' inputs read without options.layout", (a) => a.full(randn([2, 3, 1, 2], 1), randn([2, 4, 1, 2], 2), randn([2, 4, 1, 1], 3), {}), RangeError, /^k\.dims: q's head count H must be a multiple .* H = 3, Hkv = 4, rank-4 dims read as \[B, H, N, D\] \(options\.layout 'bhnd'\)/],
  ['lsh buckets past its bound', (a) => a.lsh(randn([8, 1], 1), null, randn([8, 1], 2), { bucketSize: 2, rounds: 1, buckets: 2 ** 31, seed: 1 }), RangeError, /^options\.buckets: expected an integer <= 65536, received 2147483648/],
  ['lsh rounds past its bound', (a) => a.lsh(randn([8, 1], 1), null, randn([8, 1], 2), { bucketSize: 2, rounds: 2 ** 30, buckets: 2, seed: 1 }), RangeError, /^options\.rounds: expected an integer <= 1000, received 1073741824/],
  ['unknown variant', (a) => a.apply('fast' as never, q, k, v), TypeError, /^name: expected one of 'full'.*received "fast"/],
  ['weights of unknown variant', (a) => a.weights('fast' as never, q, k), TypeError, /^name: expected one of/],
  ['mask of a variant without pattern', (a) => a.mask('full', 4, 4), TypeError, /^name: mask\(\) is defined for pattern-based variants, received 'full'/],
  ['tensor dims not integers', (a) => a.tensor([2, -1]), TypeError, /^dims: expected an array of non-negative integers/],
  ['tensor values of the wrong length', (a) => a.tensor([2, 2], [1, 2, 3]), RangeError, /^values: expected 4 values for dims \[2, 2\], received 3/],
];

describe.each(['wasm', 'js'] as const)('errors (%s backend)', (backend) => {
  let attn: Attention;
  let reference: Float32Array;
  beforeAll(async () => {
    attn = await createAttention({ backend });
    reference = attn.full(q, k, v, { causal: true }).data;
  });

  it.each(cases)('%s', (_name, call, type, message) => {
    const inUse = attn.memory.inUse;
    let error: unknown;
    try {
      call(attn);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(type);
    expect((error as Error).message).toMatch(message);
    // the instance still works, and its memory is back where it was
    expect(attn.memory.inUse).toBe(inUse);
    expect(maxAbsDiff(attn.full(q, k, v, { causal: true }).data, reference)).toBe(0);
  });
});

describe('errors that only WebAssembly memory can raise', () => {
  it('a tensor that would not fit in WebAssembly memory is a RangeError', async () => {
    const attn = await createAttention({ backend: 'wasm' });
    const inUse = attn.memory.inUse;
    expect(() => attn.tensor([2 ** 31])).toThrow(RangeError);
    expect(() => attn.tensor([2 ** 31])).toThrow(/^dims: a tensor \[2147483648\] needs \d+ bytes, more than the 4294967296 bytes WebAssembly memory can address/);
    expect(attn.memory.inUse).toBe(inUse);
    expect(maxAbsDiff(attn.full(q, k, v).data, (await createAttention({ backend: 'js' })).full(q, k, v).data)).toBeLessThan(1e-4);
  });

  it('createAttention rejects a bad backend and a wasm demand it cannot meet is explicit', async () => {
    await expect(createAttention({ backend: 'gpu' as never })).rejects.toThrow(/^init\.backend: expected 'auto', 'wasm' or 'js', received "gpu"/);
    await expect(createAttention({ wasm: new Uint8Array([1, 2, 3]) })).rejects.toThrow();
  });
});
