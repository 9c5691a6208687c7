/**
 * The float64 reference of the pattern-based variants (`local`, `strided`,
 * `global`, `sparse`, `mixed`, and `full`): golden vectors, SPEC properties,
 * the `mask()` descriptions (test/patterns.test.ts: the row spans the
 * kernels use), and option errors.
 */
import { describe, expect, it } from 'vitest';
import { readInputs } from '../src/inputs.js';
import { positionPicks } from '../src/patterns.js';
import { full } from '../src/variants/full.js';
import { mixed } from '../src/variants/mixed.js';
import type { Lookup, Parsed, Variant } from '../src/variants/variant.js';
import { loadGolden, maxAbsDiff } from './golden.js';
import { lookup, prepare, variants } from './pattern-variants.js';
import { padding, randn, type T } from './random.js';

function run(name: string, q: T, k: T, v: T, options: Record<string, unknown>): Float32Array {
  const variant = variants[name];
  const { inputs, parsed } = prepare(variant, q, k, v, options);
  return variant.reference(inputs, parsed);
}

function maskOf(name: string, Nq: number, Nk: number, options: Record<string, unknown>, B = 1): Uint8Array {
  const variant = variants[name];
  const { parsed } = prepare(variant, randn([B, 1, Nq, 4], 1), randn([B, 1, Nk, 4], 2), null, options);
  return variant.mask!(parsed);
}

/** Rows `from .. to` of every [b, h] of a `[B, H, N, D]` tensor. */
function rows(t: T, from: number, to: number): T {
  const [B, H, N, D] = t.dims;
  const data = new Float32Array(B * H * (to - from) * D);
  for (let bh = 0; bh < B * H; bh++) data.set(t.data.subarray((bh * N + from) * D, (bh * N + to) * D), bh * (to - from) * D);
  return { data, dims: [B, H, to - from, D] };
}

/** Head h of a `[B, H, N, D]` tensor as `[B, 1, N, D]`. */
function head(t: T, h: number): T {
  const [B, H, N, D] = t.dims;
  const data = new Float32Array(B * N * D);
  for (let b = 0; b < B; b++) data.set(t.data.subarray((b * H + h) * N * D, (b * H + h + 1) * N * D), b * N * D);
  return { data, dims: [B, 1, N, D] };
}

/** Key j visible to query row i, restated from the SPEC table (without causal / keyPadding). */
function specSees(pattern: Record<string, unknown>, i: number, j: number, Nq: number, Nk: number): boolean {
  const p = i + (Nk - Nq);
  switch (pattern.type) {
    case 'local': {
      const a = (pattern.window ?? pattern.before ?? 0) as number;
      const b = (pattern.window ?? pattern.after ?? 0) as number;
      return p - a <= j && j <= p + b;
    }
    case 'strided': {
      const s = pattern.stride as number;
      const w = pattern.window as number | undefined;
      return (((p - j) % s) + s) % s === 0 && (w === undefined || Math.abs(p - j) <= w * s);
    }
    case 'global': {
      const tokens = pattern.tokens as number[];
      return tokens.includes(p) || tokens.includes(j);
    }
    case 'random': {
      const picks = positionPicks(pattern.seed as number, pattern.count as number, p, Nk);
      return picks.includes(j);
    }
  }
  throw new Error(`test: unknown pattern ${String(pattern.type)}`);
}

/** The SPEC mask of batch b: the patterns' union, causal, keyPadding. */
function specMask(patterns: Record<string, unknown>[], Nq: number, Nk: number, causal: boolean, keyPadding: Uint8Array | null, b = 0): Uint8Array {
  const m = new Uint8Array(Nq * Nk);
  for (let i = 0; i < Nq; i++) {
    for (let j = 0; j < Nk; j++) {
      const allowed = (!causal || j <= i + Nk - Nq) && (!keyPadding || keyPadding[b * Nk + j] === 1);
      m[i * Nk + j] = allowed && patterns.some((pattern) => specSees(pattern, i, j, Nq, Nk)) ? 1 : 0;
    }
  }
  return m;
}

/** Naive masked softmax attention, written out here independently of src/reference. */
function bruteAttention(q: T, k: T, v: T, scale: number, maskOf: (b: number) => Uint8Array): Float64Array {
  const [B, H, Nq, D] = q.dims;
  const Nk = k.dims[2];
  const Dv = v.dims[3];
  const out = new Float64Array(B * H * Nq * Dv);
  for (let b = 0; b < B; b++) {
    const mask = maskOf(b);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        const logits: number[] = [];
        for (let j = 0; j < Nk; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q.data[((b * H + h) * Nq + i) * D + d] * k.data[((b * H + h) * Nk + j) * D + d];
          logits.push(mask[i * Nk + j] ? scale * dot : -Infinity);
        }
        const max = Math.max(...logits);
        if (max === -Infinity) continue;
        const e = logits.map((x) => Math.exp(x - max));
        const sum = e.reduce((x, y) => x + y, 0);
        for (let j = 0; j < Nk; j++) {
          for (let d = 0; d < Dv; d++) out[((b * H + h) * Nq + i) * Dv + d] += (e[j] / sum) * v.data[((b * H + h) * Nk + j) * Dv + d];
        }
      }
    }
  }
  return out;
}

function problem(B: number, H: number, Nq: number, Nk: number, D: number, seed: number) {
  return { q: randn([B, H, Nq, D], seed), k: randn([B, H, Nk, D], seed + 1), v: randn([B, H, Nk, D + 1], seed + 2) };
}

describe('golden vectors (test/golden/patterns.json)', () => {
  const cases = loadGolden('patterns.json');
  it('covers full and the five pattern variants', () => {
    expect(new Set(cases.map((c) => c.variant))).toEqual(new Set(['full', 'local', 'strided', 'global', 'sparse', 'mixed']));
  });
  it.each(cases.map((c, index) => [`${index} ${c.name} ${JSON.stringify(c.options, (key, val) => (key === 'keyPadding' ? 'u8' : val))}`, c] as const))('%s', (_, c) => {
    const variant = variants[c.variant];
    const inputs = readInputs(variant, c.q, c.k, c.v, true);
    const parsed = variant.parse(inputs, c.options, lookup);
    const out = variant.reference(inputs, parsed);
    expect(out.length).toBe(c.expected.data.length);
    expect(maxAbsDiff(out, c.expected.data)).toBeLessThanOrEqual(1e-4);
  });
});

describe('agreement with the SPEC restated', () => {
  const specs: { name: string; options: Record<string, unknown>; patterns: Record<string, unknown>[] }[] = [
    { name: 'local', options: { window: 2 }, patterns: [{ type: 'local', window: 2 }] },
    { name: 'local', options: { before: 3, after: 1 }, patterns: [{ type: 'local', before: 3, after: 1 }] },
    { name: 'strided', options: { stride: 3 }, patterns: [{ type: 'strided', stride: 3 }] },
    { name: 'strided', options: { stride: 2, window: 2 }, patterns: [{ type: 'strided', stride: 2, window: 2 }] },
    { name: 'global', options: { tokens: [0, 5, 5, 10] }, patterns: [{ type: 'global', tokens: [0, 5, 10] }] },
    {
      name: 'sparse',
      options: { patterns: [{ type: 'local', before: 1 }, { type: 'global', tokens: [2] }, { type: 'random', count: 2, seed: 9 }] },
      patterns: [{ type: 'local', before: 1 }, { type: 'global', tokens: [2] }, { type: 'random', count: 2, seed: 9 }],
    },
  ];
  for (const { name, options, patterns } of specs) {
    for (const [Nq, Nk] of [[11, 11], [4, 11], [13, 11]] as const) {
      for (const causal of [false, true]) {
        it(`${name} ${JSON.stringify(options)} Nq=${Nq} Nk=${Nk} causal=${causal}`, () => {
          const { q, k, v } = problem(2, 2, Nq, Nk, 6, 100 + Nq);
          const keyPadding = padding(2, Nk, 7);
          const opts = { ...options, causal, keyPadding };
          const expected = bruteAttention(q, k, v, 1 / Math.sqrt(6), (b) => specMask(patterns, Nq, Nk, causal, keyPadding, b));
          expect(maxAbsDiff(run(name, q, k, v, opts), expected)).toBeLessThanOrEqual(1e-5);
          expect(maskOf(name, Nq, Nk, opts, 2)).toEqual(specMask(patterns, Nq, Nk, causal, keyPadding));
        });
      }
    }
  }
});

describe('properties', () => {
  const shapes = [[13, 13], [5, 13]] as const;

  it('local with window >= N equals full', () => {
    for (const [Nq, Nk] of shapes) {
      for (const causal of [false, true]) {
        const { q, k, v } = problem(2, 2, Nq, Nk, 8, 1);
        const keyPadding = padding(2, Nk, 3);
        const want = run('full', q, k, v, { causal, keyPadding });
        for (const opts of [{ window: Nk }, { window: 40 }, { before: Nk, after: Nk }]) {
          expect(maxAbsDiff(run('local', q, k, v, { ...opts, causal, keyPadding }), want)).toBeLessThanOrEqual(1e-6);
        }
      }
    }
  });

  it('strided with stride 1 equals local with the same window (and full without one)', () => {
    for (const [Nq, Nk] of shapes) {
      for (const causal of [false, true]) {
        const { q, k, v } = problem(1, 3, Nq, Nk, 8, 2);
        for (const window of [0, 1, 4]) {
          expect(maxAbsDiff(run('strided', q, k, v, { stride: 1, window, causal }), run('local', q, k, v, { window, causal }))).toBeLessThanOrEqual(1e-6);
        }
        expect(maxAbsDiff(run('strided', q, k, v, { stride: 1, causal }), run('full', q, k, v, { causal }))).toBeLessThanOrEqual(1e-6);
      }
    }
  });

  it('global with every token equals full', () => {
    for (const [Nq, Nk] of shapes) {
      for (const causal of [false, true]) {
        const { q, k, v } = problem(2, 1, Nq, Nk, 8, 3);
        const tokens = Array.from({ length: Nk }, (_, t) => t);
        expect(maxAbsDiff(run('global', q, k, v, { tokens, causal }), run('full', q, k, v, { causal }))).toBeLessThanOrEqual(1e-6);
      }
    }
  });

  it('sparse of one pattern equals that pattern variant', () => {
    const singles: [string, Record<string, unknown>][] = [
      ['local', { window: 2 }],
      ['local', { before: 4, after: 0 }],
      ['strided', { stride: 3 }],
      ['strided', { stride: 2, window: 1 }],
      ['global', { tokens: [1, 6] }],
    ];
    for (const [Nq, Nk] of shapes) {
      const { q, k, v } = problem(2, 2, Nq, Nk, 8, 4);
      for (const [name, opts] of singles) {
        for (const causal of [false, true]) {
          const single = run(name, q, k, v, { ...opts, causal, scale: 0.4 });
          const union = run('sparse', q, k, v, { patterns: [{ type: name, ...opts }], causal, scale: 0.4 });
          expect(maxAbsDiff(union, single)).toBeLessThanOrEqual(1e-6);
        }
      }
    }
  });

  it('mixed equals running each head alone', () => {
    const heads = [{ kind: 'local', window: 1 }, { kind: 'strided', stride: 3, causal: false }, { kind: 'global', tokens: [0, 4] }, { kind: 'full' }];
    for (const [Nq, Nk] of shapes) {
      const { q, k, v } = problem(2, 4, Nq, Nk, 8, 5);
      const keyPadding = padding(2, Nk, 6);
      const out = run('mixed', q, k, v, { heads, causal: true, keyPadding });
      const { inputs, parsed } = prepare(mixed, q, k, null, { heads, causal: true, keyPadding });
      const weights = mixed.weights(inputs, parsed);
      expect(weights.dims).toEqual([2, 4, Nq, Nk]);
      heads.forEach(({ kind, ...own }, h) => {
        // The mixed call's causal and keyPadding apply unless the head sets its own.
        const opts = { causal: true, keyPadding, ...own };
        const alone = run(kind, head(q, h), head(k, h), head(v, h), opts);
        expect(maxAbsDiff(head({ data: out, dims: [2, 4, Nq, 9] }, h).data, alone)).toBeLessThanOrEqual(1e-6);
        const variant = variants[kind];
        const single = prepare(variant, head(q, h), head(k, h), null, opts);
        expect(maxAbsDiff(head({ data: weights.data, dims: weights.dims as number[] }, h).data, variant.weights(single.inputs, single.parsed).data)).toBeLessThanOrEqual(1e-6);
      });
    }
  });

  const everyVariant: [string, Record<string, unknown>][] = [
    ['full', {}],
    ['local', { window: 2 }],
    ['local', { before: 3, after: 1 }],
    ['strided', { stride: 3, window: 2 }],
    ['global', { tokens: [0, 14] }],
    ['sparse', { patterns: [{ type: 'local', window: 1 }, { type: 'strided', stride: 4 }, { type: 'random', count: 3, seed: 42 }] }],
    ['mixed', { heads: [{ kind: 'local', after: 2 }, { kind: 'sparse', patterns: [{ type: 'global', tokens: [3] }, { type: 'random', count: 2, seed: 1 }] }] }],
  ];

  it.each(everyVariant)('a decoding step equals the last row of the square problem: %s %j', (name, opts) => {
    const N = 17;
    for (const causal of [false, true]) {
      const { q, k, v } = problem(2, 2, N, N, 8, 6);
      const keyPadding = padding(2, N, 8);
      const square = run(name, q, k, v, { ...opts, causal, keyPadding });
      const step = run(name, rows(q, N - 1, N), k, v, { ...opts, causal, keyPadding });
      expect(maxAbsDiff(step, rows({ data: square, dims: [2, 2, N, 9] }, N - 1, N).data)).toBeLessThanOrEqual(1e-6);
    }
  });

  it.each(everyVariant)('causal: changing future tokens never changes earlier outputs: %s %j', (name, opts) => {
    const N = 15;
    const { q, k, v } = problem(1, 2, N, N, 8, 7);
    const before = run(name, q, k, v, { ...opts, causal: true });
    for (const t of [0, 6, 13]) {
      const later = (x: T, seed: number): T => {
        const data = x.data.slice();
        const [, H, , D] = x.dims;
        const noise = randn(x.dims, seed, 3).data;
        for (let h = 0; h < H; h++) for (let i = t + 1; i < N; i++) for (let d = 0; d < D; d++) data[(h * N + i) * D + d] = noise[(h * N + i) * D + d];
        return { data, dims: x.dims };
      };
      const after = run(name, later(q, 20 + t), later(k, 30 + t), later(v, 40 + t), { ...opts, causal: true });
      const keep = rows({ data: before, dims: [1, 2, N, 9] }, 0, t + 1).data;
      expect(rows({ data: after, dims: [1, 2, N, 9] }, 0, t + 1).data).toEqual(keep);
      expect(rows({ data: after, dims: [1, 2, N, 9] }, t + 1, N).data).not.toEqual(rows({ data: before, dims: [1, 2, N, 9] }, t + 1, N).data);
    }
  });

  it.each(everyVariant.filter(([name]) => name !== 'mixed' && name !== 'full'))('mask() agrees with the visibility used by reference: %s %j', (name, opts) => {
    for (const [Nq, Nk] of [[17, 17], [6, 17]] as const) {
      for (const causal of [false, true]) {
        const { q, k, v } = problem(1, 2, Nq, Nk, 8, 9);
        const keyPadding = padding(1, Nk, 10, 0.4);
        const options = { ...opts, causal, keyPadding };
        const variant = variants[name];
        const { inputs, parsed } = prepare(variant, q, k, v, options);
        const mask = variant.mask!(parsed);
        const out = variant.reference(inputs, parsed);
        const weights = variant.weights(inputs, parsed);
        expect(weights.dims).toEqual([1, 2, Nq, Nk]);
        const product = new Float64Array(out.length);
        for (let h = 0; h < 2; h++) {
          for (let i = 0; i < Nq; i++) {
            let sum = 0;
            for (let j = 0; j < Nk; j++) {
              const w = weights.data[(h * Nq + i) * Nk + j];
              if (mask[i * Nk + j] === 0) expect(w).toBe(0);
              else expect(w).toBeGreaterThan(0);
              sum += w;
              for (let d = 0; d < 9; d++) product[(h * Nq + i) * 9 + d] += w * v.data[(h * Nk + j) * 9 + d];
            }
            const seesAny = mask.subarray(i * Nk, (i + 1) * Nk).includes(1);
            expect(sum).toBeCloseTo(seesAny ? 1 : 0, 6);
          }
        }
        expect(out.every(Number.isFinite)).toBe(true);
        expect(maxAbsDiff(out, product)).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  it('a row that sees no key outputs zeros', () => {
    const { q, k, v } = problem(1, 1, 5, 5, 4, 11);
    const keyPadding = Uint8Array.of(1, 0, 1, 0, 1);
    const out = run('local', q, k, v, { window: 0, keyPadding });
    expect(Array.from(out.subarray(5, 10)).every((x) => x === 0)).toBe(true); // row 1 (Dv = 5) sees only its padded self
    expect(Array.from(out.subarray(0, 5)).some((x) => x !== 0)).toBe(true);
    expect(run('global', q, k, v, { tokens: [] }).every((x) => x === 0)).toBe(true);
  });

  it('before alone means after = 0, and after alone means before = 0', () => {
    expect(maskOf('local', 9, 9, { before: 2 })).toEqual(maskOf('local', 9, 9, { before: 2, after: 0 }));
    expect(maskOf('local', 9, 9, { after: 3 })).toEqual(maskOf('local', 9, 9, { before: 0, after: 3 }));
    expect(maskOf('local', 9, 9, { after: 3 })).not.toEqual(maskOf('local', 9, 9, { before: 3 }));
  });
});

describe('option errors', () => {
  const { q, k, v } = problem(1, 3, 8, 8, 4, 12);
  const fails = (name: string, options: Record<string, unknown>, type: typeof TypeError | typeof RangeError, message: RegExp) => {
    expect(() => run(name, q, k, v, options)).toThrow(type);
    expect(() => run(name, q, k, v, options)).toThrow(message);
  };

  it('local', () => {
    fails('local', { window: -1 }, RangeError, /^options\.window: .*>= 0, received -1/);
    fails('local', { window: 1.5 }, TypeError, /^options\.window: expected an integer, received 1.5/);
    fails('local', { window: 2, before: 1 }, TypeError, /^options\.window: expected either window or before\/after/);
    fails('local', { window: 2, after: 1 }, TypeError, /^options\.window: expected either window or before\/after/);
    fails('local', {}, TypeError, /^options\.window: required option is missing/);
    fails('local', { before: -2 }, RangeError, /^options\.before: .*received -2/);
    fails('local', { before: 1, after: '2' }, TypeError, /^options\.after: expected an integer, received "2"/);
  });

  it('strided', () => {
    fails('strided', { stride: 0 }, RangeError, /^options\.stride: expected an integer >= 1, received 0/);
    fails('strided', {}, TypeError, /^options\.stride: required option is missing/);
    fails('strided', { stride: 2.5 }, TypeError, /^options\.stride: expected an integer/);
    fails('strided', { stride: 2, window: -1 }, RangeError, /^options\.window: .*received -1/);
  });

  it('global', () => {
    fails('global', { tokens: [1, 2.5] }, TypeError, /^options\.tokens\[\]: expected an integer, received 2.5/);
    fails('global', { tokens: [-1] }, RangeError, /^options\.tokens\[\]: .*received -1/);
    fails('global', { tokens: [8] }, RangeError, /^options\.tokens\[\]: expected positions < Nk = 8, received 8/);
    fails('global', { tokens: 3 }, TypeError, /^options\.tokens: expected an array/);
    fails('global', {}, TypeError, /^options\.tokens: required option is missing/);
  });

  it('sparse', () => {
    fails('sparse', { patterns: [{ type: 'local', window: 1 }, { type: 'dilated', stride: 2 }] }, TypeError, /^options\.patterns\[1\]\.type: expected 'local', 'strided', 'global' or 'random', received "dilated"/);
    fails('sparse', { patterns: [{ window: 1 }] }, TypeError, /^options\.patterns\[0\]\.type: expected a string, received undefined/);
    fails('sparse', { patterns: [null] }, TypeError, /^options\.patterns\[0\]: expected a pattern object/);
    fails('sparse', { patterns: [{ type: 'strided', stride: 0 }] }, RangeError, /^options\.patterns\[0\]\.stride: expected an integer >= 1, received 0/);
    fails('sparse', { patterns: [{ type: 'local', window: -1 }] }, RangeError, /^options\.patterns\[0\]\.window: /);
    fails('sparse', { patterns: [{ type: 'strided', stride: 2, count: 3 }] }, TypeError, /^options\.patterns\[0\]\.count: unknown option 'count' \(a 'strided' pattern accepts type, stride, window\)/);
    fails('sparse', { patterns: [{ type: 'global', tokens: [0.5] }] }, TypeError, /^options\.patterns\[0\]\.tokens\[\]: expected an integer/);
    fails('sparse', { patterns: [{ type: 'random', count: 2 }] }, TypeError, /^options\.patterns\[0\]\.seed: required option is missing/);
    fails('sparse', { patterns: [{ type: 'random', count: 2, seed: 0.5 }] }, TypeError, /^options\.patterns\[0\]\.seed: expected an integer seed/);
    fails('sparse', { patterns: [{ type: 'random', count: -1, seed: 1 }] }, RangeError, /^options\.patterns\[0\]\.count: /);
    fails('sparse', { patterns: [] }, RangeError, /^options\.patterns: expected at least one pattern, received \[\]/);
    fails('sparse', { patterns: { type: 'local', window: 1 } }, TypeError, /^options\.patterns: expected an array of patterns/);
    fails('sparse', {}, TypeError, /^options\.patterns: required option is missing/);
  });

  it('mixed', () => {
    const ok = [{ kind: 'local', window: 1 }, { kind: 'full' }];
    fails('mixed', { heads: ok }, RangeError, /^options\.heads: expected one spec per head \(H = 3\), received 2/);
    fails('mixed', { heads: [...ok, { kind: 'nope' }] }, TypeError, /^options\.heads\[2\]\.kind: .*received "nope"/);
    fails('mixed', { heads: [...ok, { window: 1 }] }, TypeError, /^options\.heads\[2\]\.kind: required option is missing/);
    fails('mixed', { heads: [...ok, { kind: 3 }] }, TypeError, /^options\.heads\[2\]\.kind: expected a variant name, received 3/);
    fails('mixed', { heads: [...ok, 'local'] }, TypeError, /^options\.heads\[2\]: expected a spec/);
    fails('mixed', { heads: [{ kind: 'local', window: -1 }, ...ok] }, RangeError, /^options\.heads\[0\]\.window: .*received -1/);
    fails('mixed', { heads: [...ok, { kind: 'global' }] }, TypeError, /^options\.heads\[2\]\.tokens: required option is missing/);
    fails('mixed', {}, TypeError, /^options\.heads: required option is missing/);
    expect(mixed.mask).toBeUndefined();
  });

  it('mixed checks what each head variant reads', () => {
    const shared: Variant<Parsed> = { ...full, name: 'shared-qk', inputs: { q: 'required', k: 'shared' } };
    const slots: Variant<Parsed> = { ...full, name: 'slots', weights: (_inputs, parsed) => ({ data: new Float32Array(parsed.problem.B * parsed.problem.Nq * 3), dims: [parsed.problem.B, 1, parsed.problem.Nq, 3] }) };
    const extended: Lookup = (name, argName) => (name === 'shared-qk' ? shared : name === 'slots' ? slots : lookup(name, argName));
    const inputs = readInputs(mixed, q, k, v, true);
    expect(() => mixed.parse(inputs, { heads: [{ kind: 'full' }, { kind: 'shared-qk' }, { kind: 'full' }] }, extended)).toThrow(/^k: options\.heads\[1\] is shared-qk, which shares queries and keys, so k must be q itself/);
    const self = readInputs(mixed, q, q, v, true);
    const parsed = mixed.parse(self, { heads: [{ kind: 'full' }, { kind: 'shared-qk' }, { kind: 'full' }] }, extended);
    expect(maxAbsDiff(mixed.reference(self, parsed), run('full', q, q, v, {}))).toBeLessThanOrEqual(1e-6);
    const withSlots = mixed.parse(inputs, { heads: [{ kind: 'full' }, { kind: 'slots' }, { kind: 'full' }] }, extended);
    expect(() => mixed.weights(inputs, withSlots)).toThrow(RangeError);
    expect(() => mixed.weights(inputs, withSlots)).toThrow(/^options\.heads\[1\]: weights\(\) of slots has dims \[1, 1, 8, 3\], not \[B, 1, Nq, Nk\]/);
  });
});
