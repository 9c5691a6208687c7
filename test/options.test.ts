// Unknown option names are TypeErrors at every level; the README's option tables come from the declarations.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, fitRoutingCentroids, synthesizerParams, type Attention, type VariantName } from '../dist/index.js';
import { nearestName } from '../src/options.js';
import { variants } from '../src/registry.js';
import { loadGolden, maxAbsDiff } from './golden.js';
import { optionTables, readmeOptionTables, writeOptionTables } from './option-tables.js';
import { randn } from './random.js';

let wasm: Attention;
let js: Attention;
beforeAll(async () => {
  wasm = await createAttention({ backend: 'wasm', threads: 1 });
  js = await createAttention({ backend: 'js' });
});

const q = randn([1, 2, 8, 4], 1);
const k = randn([1, 2, 8, 4], 2);
const v = randn([1, 2, 8, 4], 3);

/** Runs `call`, expecting a TypeError whose message names `key`; returns the message. */
function rejects(call: () => unknown, key: string): string {
  let error: unknown;
  try {
    call();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(TypeError);
  const message = (error as Error).message;
  expect(message).toContain(`'${key}'`);
  return message;
}

describe('the README option tables', () => {
  it('are the ones the declarations generate', () => {
    if (process.env.WRITE_OPTION_TABLES) writeOptionTables();
    expect(readmeOptionTables()).toBe(optionTables());
  });
});

describe('suggestions', () => {
  it.each([
    ['casual', ['scale', 'causal', 'keyPadding'], 'causal'],
    ['widow', ['window', 'before', 'after'], 'window'],
    ['featuremap', ['featureMap', 'eps'], 'featureMap'],
    ['bucket_size', ['bucketSize', 'rounds'], 'bucketSize'],
    ['blocksize', ['blockSize', 'temperature'], 'blockSize'],
    ['E', ['e', 'f'], 'e'],
    ['logit', ['logits', 'factors', 'dense'], 'logits'],
    ['keypadding', ['scale', 'causal', 'keyPadding'], 'keyPadding'],
    ['thread', ['backend', 'wasm', 'relaxedSimd', 'threads'], 'threads'],
  ])('%s -> %s', (name, accepted, want) => {
    expect(nearestName(name, accepted)).toBe(want);
  });

  it('suggests nothing when no name is close', () => {
    expect(nearestName('temperature', ['scale', 'causal', 'keyPadding'])).toBeUndefined();
  });
});

describe('the misspellings new users make', () => {
  const lshRotations = { rounds: 1, buckets: 2, seed: 1 };
  const cases: [string, (a: Attention) => unknown, string, string][] = [
    ['full causal', (a) => a.full(q, k, v, { casual: true } as never), 'casual', 'causal'],
    ['full keyPadding', (a) => a.full(q, k, v, { keypadding: new Uint8Array(8) } as never), 'keypadding', 'keyPadding'],
    ['full window (of another variant)', (a) => a.full(q, k, v, { window: 2 } as never), 'window', ''],
    ['local window', (a) => a.local(q, k, v, { widow: 3 } as never), 'widow', 'window'],
    ['linear featureMap', (a) => a.linear(q, k, v, { featuremap: 'relu' } as never), 'featuremap', 'featureMap'],
    ['lsh bucketSize', (a) => a.lsh(q, null, v, { bucket_size: 8, ...lshRotations } as never), 'bucket_size', 'bucketSize'],
    ['sinkhorn blockSize', (a) => a.sinkhorn(q, k, v, { blocksize: 4 } as never), 'blocksize', 'blockSize'],
    ['linformer e', (a) => a.linformer(q, k, v, { E: randn([4, 8], 4) } as never), 'E', 'e'],
    ['synthesizer logits', (a) => a.synthesizer(null, null, v, { logit: randn([8, 8], 5) } as never), 'logit', 'logits'],
    ['a sparse pattern', (a) => a.sparse(q, k, v, { patterns: [{ type: 'local', widow: 1 }] } as never), 'widow', 'window'],
    ['a mixed head', (a) => a.mixed(q, k, v, { heads: [{ kind: 'full' }, { kind: 'local', widow: 1 }] } as never), 'widow', 'window'],
    ['a convolution', (a) => a.compressed(q, k, v, { factor: 2, convK: { weight: randn([4, 4, 2], 6), bais: randn([4], 7) } } as never), 'bais', 'bias'],
    ['synthesizer factors', (a) => a.synthesizer(null, null, v, { factors: { a: randn([8, 2], 8), b: randn([8, 2], 9), c: 1 } } as never), 'c', ''],
    ['weights()', (a) => a.weights('full', q, k, { casual: true }), 'casual', 'causal'],
    ['mask()', (a) => a.mask('local', 8, 8, { widow: 1 }), 'widow', 'window'],
    ['linearState', (a) => a.linearState({ dim: 4, valuedim: 4 } as never), 'valuedim', 'valueDim'],
    ['kvCache', (a) => a.kvCache({ dim: 4, capacity: 8, value_dim: 4 } as never), 'value_dim', 'valueDim'],
    ['kvCache.attend', (a) => {
      const cache = a.kvCache({ dim: 4, capacity: 8 });
      cache.append(randn([1, 1, 2, 4], 10), randn([1, 1, 2, 4], 11));
      try {
        return cache.attend(randn([1, 1, 1, 4], 12), { sofcap: 3 } as never);
      } finally {
        cache.dispose();
      }
    }, 'sofcap', 'softcap'],
    ['fitRoutingCentroids', (a) => a.fitRoutingCentroids(q, k, { cluster: 2, seed: 1 } as never), 'cluster', 'clusters'],
  ];
  for (const [what, call, key, near] of cases) {
    it.each(['wasm', 'js'])(`${what} (%s)`, async (backend) => {
      const attn = backend === 'wasm' ? wasm : js;
      const before = attn.memory.inUse;
      const message = rejects(() => call(attn), key);
      if (near) expect(message).toContain(`did you mean '${near}'?`);
      expect(attn.memory.inUse).toBe(before);
    });
  }

  it.each(['wasm', 'js'])('run() (%s)', async (backend) => {
    const attn = backend === 'wasm' ? wasm : js;
    await expect(attn.run('full', q, k, v, { casual: true })).rejects.toThrow(/options\.casual: unknown option 'casual' \(did you mean 'causal'\?/);
  });

  it('createAttention', async () => {
    await expect(createAttention({ thread: 1 } as never)).rejects.toThrow(TypeError);
    await expect(createAttention({ thread: 1 } as never)).rejects.toThrow(/init\.thread: unknown option 'thread' \(did you mean 'threads'\?/);
  });

  it('the exported helpers', () => {
    rejects(() => fitRoutingCentroids(q, k, { clusters: 2, seed: 1, iteration: 3 } as never), 'iteration');
    rejects(() => synthesizerParams('random', { Nq: 4, Nk: 4, NK: 4 } as never, 1), 'NK');
  });

  it('counts undefined as absent', () => {
    const spread = { ...{ causal: true }, casual: undefined, causal: undefined };
    expect(wasm.full(q, k, v, spread as never).data).toEqual(wasm.full(q, k, v).data);
  });
});

describe('property: one wrong name in a valid call', () => {
  const cases = ['patterns.json', 'linear.json', 'lsh.json', 'routing.json', 'sinkhorn.json', 'linformer.json', 'compressed.json', 'synthesizer.json'].flatMap(loadGolden);
  const accepted = (variant: string) => Object.keys(variants[variant as VariantName].options);

  /** The call's options with one key added: a random name, or an accepted one with one character changed. */
  const misspelled = fc
    .record({
      index: fc.nat({ max: cases.length - 1 }),
      fresh: fc.boolean(),
      name: fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789') }),
      at: fc.nat(),
      char: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz_'),
    })
    .map(({ index, fresh, name, at, char }) => {
      const c = cases[index];
      const names = accepted(c.variant);
      let key = name;
      if (!fresh) {
        const base = names[at % names.length];
        const i = at % base.length;
        key = base.slice(0, i) + char + base.slice(i + 1);
      }
      return { c, key, names };
    })
    .filter(({ key, names }) => !names.includes(key) && !['__proto__', 'constructor'].includes(key));

  it.each(['wasm', 'js'])('throws a TypeError naming the key, and the call without it is still exact (%s)', (backend) => {
    const attn = backend === 'wasm' ? wasm : js;
    fc.assert(
      fc.property(misspelled, ({ c, key }) => {
        const call = (options: object) => attn.apply(c.variant as VariantName, c.q, c.k, c.v!, options);
        rejects(() => call({ ...c.options, [key]: 1 }), key);
        expect(maxAbsDiff(call(c.options).data, c.expected.data)).toBeLessThanOrEqual(1e-4);
      }),
      { seed: 21, numRuns: 200 },
    );
  });
});
