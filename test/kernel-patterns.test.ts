// The pattern kernel (local, strided, global, sparse, mixed) on the
// WebAssembly backend against the plain-JS float64 reference, and the
// SPEC's properties through the WebAssembly facade.
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type Pattern } from '../dist/index.js';
import { maxAbsDiff } from './golden.js';
import { padding, randn, type T } from './random.js';

let wasm: Attention;
let js: Attention;
beforeAll(async () => {
  wasm = await createAttention({ backend: 'wasm' });
  js = await createAttention({ backend: 'js' });
});

type Name = 'local' | 'strided' | 'global' | 'sparse';
const longformer: Pattern[] = [{ type: 'local', window: 3 }, { type: 'global', tokens: [0, 5] }];
const bigbird: Pattern[] = [{ type: 'local', window: 2 }, { type: 'global', tokens: [1] }, { type: 'random', count: 3, seed: 7 }];
const sparseTransformer: Pattern[] = [{ type: 'local', before: 4, after: 0 }, { type: 'strided', stride: 4 }];

const cases: [Name, object][] = [
  ['local', { window: 0 }],
  ['local', { window: 3 }],
  ['local', { window: 100 }],
  ['local', { before: 5, after: 1 }],
  ['local', { before: 0, after: 2 }],
  ['strided', { stride: 1 }],
  ['strided', { stride: 3 }],
  ['strided', { stride: 4, window: 2 }],
  ['strided', { stride: 9, window: 1 }],
  ['strided', { stride: 50 }],
  ['global', { tokens: [0] }],
  ['global', { tokens: [0, 12] }],
  ['global', { tokens: [] }],
  ['sparse', { patterns: longformer }],
  ['sparse', { patterns: bigbird }],
  ['sparse', { patterns: sparseTransformer }],
  ['sparse', { patterns: [{ type: 'strided', stride: 2, window: 3 }, { type: 'strided', stride: 5 }, { type: 'local', window: 1 }] }],
  ['sparse', { patterns: [{ type: 'random', count: 4, seed: 1 }] }],
  ['sparse', { patterns: [{ type: 'random', count: 2, seed: 3 }, { type: 'global', tokens: [2] }, { type: 'strided', stride: 3, window: 2 }, { type: 'local', window: 0 }] }],
];

const shapes = [
  // [B, H, Nq, Nk, D, Dv]
  [1, 1, 1, 1, 3, 3],
  [1, 2, 13, 13, 5, 7],
  [2, 3, 30, 30, 8, 8],
  [1, 1, 67, 67, 16, 5],
  [1, 1, 1, 40, 8, 8], // a decoding step
  [2, 1, 9, 23, 4, 6],
  [1, 2, 23, 9, 4, 4],
];

describe('pattern kernel vs JS reference', () => {
  for (const [name, options] of cases) {
    for (const [B, H, Nq, Nk, D, Dv] of shapes) {
      it(`${name} ${JSON.stringify(options)} B=${B} H=${H} Nq=${Nq} Nk=${Nk} D=${D} Dv=${Dv}`, () => {
        // global tokens must be positions below Nk
        const tokens = JSON.stringify(options).match(/"tokens":\[([0-9,]*)\]/)?.[1].split(',').filter(Boolean) ?? [];
        const fits = tokens.every((t) => +t < Nk);
        if (!fits) return expect(() => wasm.apply(name, randn([B, H, Nq, D], 1), randn([B, H, Nk, D], 2), randn([B, H, Nk, Dv], 3), options)).toThrow(RangeError);
        const seed = B + H * 10 + Nq * 100 + Nk * 1000 + D;
        const q = randn([B, H, Nq, D], seed);
        const k = randn([B, H, Nk, D], seed + 1);
        const v = randn([B, H, Nk, Dv], seed + 2);
        for (const causal of [false, true]) {
          for (const keyPadding of [undefined, padding(B, Nk, seed + 3)]) {
            const all = { ...options, causal, keyPadding };
            const got = wasm.apply(name, q, k, v, all);
            const want = js.apply(name, q, k, v, all);
            expect(got.dims).toEqual([B, H, Nq, Dv]);
            expect(maxAbsDiff(got.data, want.data)).toBeLessThanOrEqual(1e-4);
          }
        }
      });
    }
  }

  it('mixed runs each head with its own kernel', () => {
    const q = randn([2, 4, 25, 8], 1);
    const k = randn([2, 4, 25, 8], 2);
    const v = randn([2, 4, 25, 8], 3);
    const heads = [
      { kind: 'local', window: 2 },
      { kind: 'strided', stride: 3 },
      { kind: 'full' },
      { kind: 'sparse', patterns: bigbird },
    ];
    for (const causal of [false, true]) {
      const got = wasm.mixed(q, k, v, { heads, causal });
      expect(maxAbsDiff(got.data, js.mixed(q, k, v, { heads, causal }).data)).toBeLessThanOrEqual(1e-4);
      // and equals running each head alone
      heads.forEach(({ kind, ...options }, h) => {
        const head = (x: T) => ({ data: new Float32Array(2 * 25 * 8).map((_, i) => x.data[(Math.floor(i / 200) * 4 + h) * 200 + (i % 200)]), dims: [2, 1, 25, 8] });
        const alone = wasm.apply(kind as Name, head(q), head(k), head(v), { ...options, causal });
        for (let b = 0; b < 2; b++) {
          expect(maxAbsDiff(got.data.subarray((b * 4 + h) * 200, (b * 4 + h + 1) * 200), alone.data.subarray(b * 200, (b + 1) * 200))).toBe(0);
        }
      });
    }
  });
});

describe('the stride pass reads values in place (Dv a multiple of 8)', () => {
  // value rows H Dv floats apart ('bnhd'), each kv head shared by two query heads
  const [B, H, Hkv, N, D, Dv] = [2, 4, 2, 70, 8, 16];
  const bnhd = (dims: number[], seed: number) => randn([dims[0], dims[2], dims[1], dims[3]], seed);
  const q = bnhd([B, H, N, D], 31);
  const k = bnhd([B, Hkv, N, D], 32);
  const v = bnhd([B, Hkv, N, Dv], 33);
  it.each([
    ['strided', { stride: 3, window: 5 }],
    ['strided', { stride: 2 }],
    ['sparse', { patterns: sparseTransformer }],
  ] as const)('%s %j against the reference', (name, options) => {
    for (const causal of [false, true]) {
      const all = { ...options, causal, keyPadding: padding(B, N, 34), layout: 'bnhd' };
      expect(maxAbsDiff(wasm.apply(name, q, k, v, all).data, js.apply(name, q, k, v, all).data)).toBeLessThanOrEqual(1e-4);
    }
  });
});

describe('pattern properties on the WebAssembly backend', () => {
  const N = 41;
  const q = randn([2, 2, N, 12], 11);
  const k = randn([2, 2, N, 12], 12);
  const v = randn([2, 2, N, 12], 13);
  const keyPadding = padding(2, N, 14);

  it('local with window >= N equals full', () => {
    for (const causal of [false, true]) {
      expect(maxAbsDiff(wasm.local(q, k, v, { window: N, causal, keyPadding }).data, wasm.full(q, k, v, { causal, keyPadding }).data)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('strided with stride 1 equals local', () => {
    for (const window of [0, 2, 7]) {
      expect(maxAbsDiff(wasm.strided(q, k, v, { stride: 1, window, keyPadding }).data, wasm.local(q, k, v, { window, keyPadding }).data)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('global with every token equals full', () => {
    const tokens = Array.from({ length: N }, (_, i) => i);
    expect(maxAbsDiff(wasm.global(q, k, v, { tokens, causal: true }).data, wasm.full(q, k, v, { causal: true }).data)).toBeLessThanOrEqual(1e-5);
  });

  it('a decoding step equals the last row of the square problem', () => {
    const last = (x: T) => ({ data: x.data.slice(), dims: x.dims }); // copy, then take the last query row of each head
    const step = { data: new Float32Array(2 * 2 * 12), dims: [2, 2, 1, 12] };
    for (let bh = 0; bh < 4; bh++) step.data.set(q.data.subarray((bh * N + N - 1) * 12, (bh * N + N) * 12), bh * 12);
    const options = [
      ['local', { before: 8, after: 0, causal: true }],
      ['strided', { stride: 4, window: 3, causal: true }],
      ['sparse', { patterns: bigbird, causal: true }],
      ['sparse', { patterns: longformer }],
    ] as const;
    for (const [name, opts] of options) {
      const square = wasm.apply(name, last(q), k, v, { ...opts, keyPadding });
      const one = wasm.apply(name, step, k, v, { ...opts, keyPadding });
      for (let bh = 0; bh < 4; bh++) {
        expect(maxAbsDiff(one.data.subarray(bh * 12, bh * 12 + 12), square.data.subarray((bh * N + N - 1) * 12, (bh * N + N) * 12))).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  it('with causal, changing future tokens never changes earlier outputs', () => {
    const cut = 20;
    const changed = (x: T) => ({ data: x.data.map((value, i) => (i % (N * 12) >= cut * 12 ? value + 3 : value)), dims: x.dims });
    for (const [name, opts] of [
      ['local', { window: 4 }],
      ['strided', { stride: 3 }],
      ['global', { tokens: [0, 30] }],
      ['sparse', { patterns: bigbird }],
      ['sparse', { patterns: sparseTransformer }],
    ] as const) {
      const a = wasm.apply(name, q, k, v, { ...opts, causal: true });
      const b = wasm.apply(name, changed(q), changed(k), changed(v), { ...opts, causal: true });
      for (let bh = 0; bh < 4; bh++) {
        expect(maxAbsDiff(a.data.subarray(bh * N * 12, (bh * N + cut) * 12), b.data.subarray(bh * N * 12, (bh * N + cut) * 12))).toBe(0);
      }
    }
  });

  it('the output is weights() times v, with weights zero where mask() is', () => {
    const options = { patterns: bigbird, causal: true };
    const P = wasm.weights('sparse', q, k, options);
    const out = wasm.sparse(q, k, v, options);
    const mask = wasm.mask('sparse', N, N, options);
    const pv = new Float64Array(out.data.length);
    for (let bh = 0; bh < 4; bh++)
      for (let i = 0; i < N; i++)
        for (let j = 0; j < N; j++) {
          const p = P.data[(bh * N + i) * N + j];
          if (mask[i * N + j] === 0) expect(p).toBe(0);
          for (let c = 0; c < 12; c++) pv[(bh * N + i) * 12 + c] += p * v.data[(bh * N + j) * 12 + c];
        }
    expect(maxAbsDiff(out.data, pv)).toBeLessThanOrEqual(1e-4);
  });
});
