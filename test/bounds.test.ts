// SPEC "Errors": no input traps, hangs or does work beyond its sizes. An
// integer option past what the sizes can use means what its definition
// says (a stride wider than the sequence sees only the query itself) or is
// a RangeError; iteration counts stop at 1000; a call whose memory would
// not fit is a RangeError naming the argument before anything is allocated.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type VariantName } from '../dist/index.js';
import { randn } from './random.js';
import { bytes, comparedBackends } from './backends.js';

let one: Attention;
let two: Attention;
let js: Attention;
beforeAll(async () => ({ one, two, js } = await comparedBackends()));
afterAll(() => two.dispose());

const N = 8;
const q = randn([N, 4], 1);
const k = randn([N, 4], 2);
const v = randn([N, 3], 3);

/** Runs a call synchronously and through run() on every backend, and times it. */
async function everywhere(name: VariantName, options: object, kv: 'separate' | 'shared' = 'separate') {
  const key = kv === 'shared' ? null : k;
  const start = performance.now();
  const results = [one.apply(name, q, key, v, options), await one.run(name, q, key, v, options), await two.run(name, q, key, v, options), js.apply(name, q, key, v, options), await js.run(name, q, key, v, options)];
  return { results, ms: performance.now() - start };
}

describe('the calls of issue #14 give the result their meaning defines, promptly', () => {
  // [name, hostile options, the ordinary options they mean, k shared with q]
  const cases: [string, VariantName, object, object, 'separate' | 'shared'][] = [
    // a stride of N or more sees only p - j = 0
    ['strided stride 2^30', 'strided', { stride: 2 ** 30 }, { stride: N }, 'separate'],
    ['strided stride 1e300', 'strided', { stride: 1e300 }, { stride: N }, 'separate'],
    // one slot of all the keys
    ['compressed factor 1e300', 'compressed', { factor: 1e300 }, { factor: N }, 'separate'],
    // every cluster takes every query and key
    ['routing window 2^31', 'routing', { window: 2 ** 31, clusters: 2, seed: 1 }, { window: N, clusters: 2, seed: 1 }, 'separate'],
    // one chunk per round holds every position
    ['lsh bucketSize 2^31', 'lsh', { bucketSize: 2 ** 31, rounds: 1, buckets: 2, seed: 1 }, { bucketSize: N, rounds: 1, buckets: 2, seed: 1 }, 'shared'],
    ['local window 1e300', 'local', { window: 1e300, causal: true }, { window: N, causal: true }, 'separate'],
    ['strided window 2^40', 'strided', { stride: 3, window: 2 ** 40 }, { stride: 3 }, 'separate'],
    ['sparse random count 1e300', 'sparse', { patterns: [{ type: 'random', count: 1e300, seed: 4 }] }, { patterns: [{ type: 'random', count: N, seed: 4 }] }, 'separate'],
  ];
  it.each(cases)('%s', async (_title, name, hostile, meaning, kv) => {
    const { results, ms } = await everywhere(name, hostile, kv);
    const expected = await everywhere(name, meaning, kv);
    expect(ms).toBeLessThan(2000);
    results.forEach((result, i) => expect(bytes(result.data)).toEqual(bytes(expected.results[i].data)));
    expect(one.memory.inUse).toBe(0);
  });
});

describe('out of range is a RangeError naming the option, before any work', () => {
  const cases: [string, VariantName, object, RegExp][] = [
    ['sinkhorn iterations above 1000', 'sinkhorn', { blockSize: 2, iterations: 1001 }, /^options\.iterations: expected an integer <= 1000, received 1001/],
    ['routing iterations above 1000', 'routing', { window: 2, clusters: 2, seed: 1, iterations: 2 ** 31 }, /^options\.iterations: expected an integer <= 1000/],
    ['a scale float32 cannot hold', 'full', { scale: 1e300 }, /^options\.scale: expected a number that float32 holds/],
    ['a temperature that float32 rounds to 0', 'sinkhorn', { blockSize: 2, temperature: 1e-300 }, /^options\.temperature: expected a number that float32 holds/],
    ['numFeatures past memory', 'linear', { featureMap: 'favor', numFeatures: 2 ** 31, seed: 1 }, /^options\.numFeatures: drawing the projection \[M, D\] = \[2147483648, 4\] needs \d+ bytes/],
    ['buckets past their bound', 'lsh', { bucketSize: 2, rounds: 1, buckets: 2 ** 31, seed: 1 }, /^options\.buckets: expected an integer <= 65536/],
    ['rounds of 1e300', 'lsh', { bucketSize: 2, rounds: 1e300, buckets: 2, seed: 1 }, /^options\.rounds: expected an integer <= 1000/],
    ['an rfa sigma whose draws overflow float32', 'linear', { featureMap: 'rfa', numFeatures: 4, seed: 1, sigma: 1e300 }, /^options\.sigma: the projection drawn with it overflows float32/],
  ];
  it.each(cases)('%s', async (_title, name, options, message) => {
    const key = name === 'lsh' ? null : k;
    for (const attn of [one, two, js]) {
      const start = performance.now();
      expect(() => attn.apply(name, q, key, v, options)).toThrow(RangeError);
      expect(() => attn.apply(name, q, key, v, options)).toThrow(message);
      await expect(attn.run(name, q, key, v, options)).rejects.toThrow(message);
      expect(performance.now() - start).toBeLessThan(1000);
      expect(attn.memory.inUse).toBe(0);
    }
  });

  it('fitRoutingCentroids takes at most 1000 iterations', () => {
    for (const attn of [one, js]) {
      expect(() => attn.fitRoutingCentroids(q, k, { clusters: 2, seed: 1, iterations: 1001 })).toThrow(/^options\.iterations: expected an integer <= 1000/);
      expect(attn.fitRoutingCentroids(q, k, { clusters: 2, seed: 1, iterations: 1000 }).dims).toEqual([1, 2, 4]);
    }
  });

  it('a linear state that would not fit names its sizes', () => {
    for (const attn of [one, js]) {
      expect(() => attn.linearState({ dim: 2 ** 20, valueDim: 2 ** 20 })).toThrow(/^options\.batch, options\.heads, options\.dim, options\.valueDim: a state of \[B, H, F, Dv\]/);
      expect(() => attn.linearState({ dim: 4, batch: 1e300 })).toThrow(RangeError);
    }
  });

  it('init.threads is at most 256', async () => {
    await expect(createAttention({ threads: 1e300 })).rejects.toThrow(/^init\.threads: expected at most 256 threads, received 1e\+300/);
  });
});

describe('a problem too large for WebAssembly memory is a RangeError naming its inputs', () => {
  it('an output of 8 GiB from small inputs', async () => {
    // [2^16, 1] queries and [1, 2^15] values: 2^31 output values
    const wide = { q: randn([2 ** 16, 1], 4), k: randn([1, 1], 5), v: randn([1, 2 ** 15], 6) };
    for (const attn of [one, two, js]) {
      expect(() => attn.full(wide.q, wide.k, wide.v)).toThrow(/^q\.dims, v\.dims: the output \[B, H, Nq, Dv\] = \[1, 1, 65536, 32768\] needs 8589934592 bytes/);
      await expect(attn.run('full', wide.q, wide.k, wide.v)).rejects.toThrow(/^q\.dims, v\.dims: the output/);
      expect(attn.memory.inUse).toBe(0);
    }
  });

  it('weights() and mask() of more than memory holds', () => {
    const long = randn([2 ** 16, 1], 7);
    for (const attn of [one, js]) {
      expect(() => attn.weights('full', long, long)).toThrow(/^q\.dims, k\.dims: the matrix \[B, H, Nq, Nk\] = \[1, 1, 65536, 65536\] needs/);
      expect(() => attn.mask('local', 2 ** 17, 2 ** 17, { window: 1 })).toThrow(/^nq, nk: the mask \[Nq, Nk\] = \[131072, 131072\] needs/);
    }
  });

  it('an axis longer than memory holds, even of an empty tensor', () => {
    const empty = { data: new Float32Array(0), dims: [0, 2 ** 31] };
    for (const attn of [one, js]) {
      expect(() => attn.full(empty, empty, empty)).toThrow(/^q\.dims: expected sizes of at most 1073741824/);
      expect(() => attn.tensor([2 ** 31])).toThrow(/^dims: a tensor \[2147483648\] needs/);
    }
  });
});

describe('more of the same kind', () => {
  it('a freed tensor passed again is read as it is, not overwritten by the call', () => {
    // the call's own buffers are laid out where the freed queries were
    const x = randn([40, 2], 8);
    const keys = randn([40, 2], 9);
    const values = randn([40, 16], 10);
    const pinned = one.tensor(x.dims, x.data);
    const stale = { data: pinned.data, dims: x.dims };
    pinned.free();
    expect(bytes(one.full(stale, keys, values).data)).toEqual(bytes(one.full(x, keys, values).data));
    expect(one.memory.inUse).toBe(0);
  });

  it('a mixed spec list that contains itself is a TypeError, not a stack overflow', () => {
    const heads: { kind: string; heads: unknown }[] = [];
    heads.push({ kind: 'mixed', heads });
    for (const attn of [one, js]) expect(() => attn.mixed(q, k, v, { heads })).toThrow(/^options\.heads\[0\]\.heads: expected specs that do not contain themselves/);
  });

  it('mask() of 2^30 rows and no key is empty at once, however many random picks', () => {
    const start = performance.now();
    expect(one.mask('sparse', 2 ** 30, 0, { patterns: [{ type: 'random', count: 3, seed: 1 }] })).toEqual(new Uint8Array(0));
    expect(performance.now() - start).toBeLessThan(3000);
    expect(() => one.mask('local', 2 ** 31, 0, { window: 1 })).toThrow(/^nq: expected an integer from 0 to 1073741824, received 2147483648/);
  });

  it('the seeded parameter helpers check their sizes before drawing', async () => {
    const { favorProjection, linformerProjection, lshRotations, rfaProjection, synthesizerParams } = await import('../dist/index.js');
    expect(() => linformerProjection(2 ** 20, 2 ** 20, 1)).toThrow(/^linformerProjection\.P, linformerProjection\.N: a tensor of P = 1048576, N = 1048576 needs/);
    expect(() => favorProjection(2 ** 31, 4, 1)).toThrow(/^favorProjection\.M, favorProjection\.D: a tensor/);
    expect(() => favorProjection(1, 2 ** 15, 1)).toThrow(/^favorProjection\.M, favorProjection\.D: a tensor/);
    expect(() => favorProjection(Number.NaN, 4, 1)).toThrow(/^favorProjection\.M: expected an integer, received NaN/);
    expect(() => rfaProjection(4, 4, 1, -1)).toThrow(/^rfaProjection\.sigma: expected a finite number > 0/);
    expect(() => lshRotations(1, 1, 4, 3)).toThrow(/^lshRotations\.buckets: expected an even integer/);
    expect(() => lshRotations(1, 1e300, 4, 2)).toThrow(/^lshRotations\.rounds, lshRotations\.D, lshRotations\.buckets: a tensor/);
    expect(() => synthesizerParams('random', { Nq: 2 ** 20, Nk: 2 ** 20 }, 1)).toThrow(/^synthesizerParams\.sizes: a matrix \[H, rows, columns\] = \[1, 1048576, 1048576\] needs/);
  });
});

describe('numbers at the edge of float32', () => {
  it('a subnormal eps over keys that are all padded gives zeros, not NaN', () => {
    for (const featureMap of ['elu', 'relu', 'rfa'] as const) {
      for (const causal of [false, true]) {
        const options = { featureMap, eps: 9e-41, causal, keyPadding: new Uint8Array(N), ...(featureMap === 'rfa' ? { numFeatures: 4, seed: 1 } : {}) };
        for (const attn of [one, js]) expect(attn.linear(q, k, v, options).data).toEqual(new Float32Array(N * 3));
      }
    }
  });
});

describe('undefined is absent everywhere', () => {
  it('a mixed head whose keyPadding is undefined inherits the call-wide one', () => {
    const keyPadding = Uint8Array.from([1, 0, 1, 0, 1, 1, 0, 1]);
    const heads = [{ kind: 'full', keyPadding: undefined }];
    for (const attn of [one, js]) {
      expect(bytes(attn.mixed(q, k, v, { keyPadding, heads }).data)).toEqual(bytes(attn.mixed(q, k, v, { keyPadding, heads: [{ kind: 'full' }] }).data));
    }
  });
});

describe('a head that cannot take an inherited option names where it was given', () => {
  it('causal given to every head, refused by a linformer head', () => {
    const heads = [{ kind: 'linformer', e: randn([1, 2, N], 11) }];
    for (const attn of [one, js]) {
      expect(() => attn.mixed(q, k, v, { causal: true, heads })).toThrow(/^options\.causal \(given to options\.heads\[0\]\): linformer cannot be causal, received true/);
      expect(() => attn.mixed(q, k, v, { heads: [{ ...heads[0], causal: true }] })).toThrow(/^options\.heads\[0\]\.causal: linformer cannot be causal/);
    }
  });
});
