/**
 * The pattern descriptions the kernels use (src/patterns.ts): the random
 * pattern's seeded picks, and each row's visible keys as spans, against the
 * variants' masks.
 */
import { describe, expect, it } from 'vitest';
import { positionPicks, randomPicks, rowSpans, type PatternParsed, type PatternSet } from '../src/patterns.js';
import { Rng } from '../src/prng.js';
import { prepare, variants } from './pattern-variants.js';
import { randn } from './random.js';

describe('random picks', () => {
  it('are count distinct sorted keys per row, clamped to Nk, reproducible', () => {
    const picks = randomPicks(5, 4, 30, 30);
    expect(picks.length).toBe(120);
    for (let i = 0; i < 30; i++) {
      const row = Array.from(picks.subarray(i * 4, i * 4 + 4));
      expect(row.every((j, t) => j >= 0 && j < 30 && (t === 0 || j > row[t - 1]))).toBe(true);
    }
    expect(randomPicks(5, 4, 30, 30)).toEqual(picks);
    expect(randomPicks(6, 4, 30, 30)).not.toEqual(picks);
    expect(Array.from(randomPicks(1, 50, 2, 7))).toEqual([0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6]);
    expect(randomPicks(1, 0, 3, 7).length).toBe(0);
  });

  it('follow the documented draw (per-position Rng, Floyd, sorted)', () => {
    const seed = 77;
    const [count, Nk, p] = [5, 40, 12];
    let x = (seed ^ Math.imul(p, 0x9e3779b1)) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
    x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
    const rng = new Rng((x ^ (x >>> 16)) >>> 0);
    const taken: number[] = [];
    for (let t = Nk - count; t < Nk; t++) {
      const r = Math.floor(rng.uniform() * (t + 1));
      taken.push(taken.includes(r) ? t : r);
    }
    expect(Array.from(positionPicks(seed, count, p, Nk))).toEqual(taken.sort((a, b) => a - b));
  });

  it('depend on the position only, so a decoding step draws the last row', () => {
    const square = randomPicks(3, 3, 25, 25);
    expect(randomPicks(3, 3, 1, 25)).toEqual(square.subarray(24 * 3));
    expect(randomPicks(3, 3, 5, 25)).toEqual(square.subarray(20 * 3));
  });

  it('cover every key about equally often', () => {
    const counts = new Array<number>(10).fill(0);
    for (const j of randomPicks(123, 3, 2000, 10)) counts[j]++;
    for (const c of counts) expect(Math.abs(c - 600)).toBeLessThan(100);
  });
});

describe('rowSpans', () => {
  function spansAgree(name: string, options: Record<string, unknown>, Nq: number, Nk: number): void {
    const variant = variants[name];
    const { parsed } = prepare(variant, randn([1, 1, Nq, 4], 1), randn([1, 1, Nk, 4], 2), null, options);
    const set = (parsed as PatternParsed).patterns;
    const mask = variant.mask!(parsed);
    for (let i = 0; i < Nq; i++) {
      const keys: number[] = [];
      for (const span of rowSpans(set, i, options.causal === true)) {
        expect(span.count).toBeGreaterThan(0);
        expect(span.step).toBeGreaterThan(0);
        for (let t = 0; t < span.count; t++) keys.push(span.start + t * span.step);
      }
      const want = [];
      for (let j = 0; j < Nk; j++) if (mask[i * Nk + j]) want.push(j);
      expect(keys.sort((a, b) => a - b), `${name} ${JSON.stringify(options)} Nq=${Nq} Nk=${Nk} row ${i}`).toEqual(want);
    }
  }

  it('agree with the mask on chosen patterns', () => {
    const chosen: [string, Record<string, unknown>][] = [
      ['local', { window: 0 }],
      ['local', { window: 3 }],
      ['local', { window: 50 }],
      ['local', { before: 2, after: 5 }],
      ['strided', { stride: 1 }],
      ['strided', { stride: 1, window: 2 }],
      ['strided', { stride: 4, window: 1 }],
      ['global', { tokens: [0, 12] }],
      ['sparse', { patterns: [{ type: 'local', window: 2 }, { type: 'strided', stride: 3 }, { type: 'strided', stride: 2, window: 2 }] }],
      ['sparse', { patterns: [{ type: 'random', count: 4, seed: 2 }, { type: 'global', tokens: [0, 1, 2, 12] }] }],
      ['sparse', { patterns: [{ type: 'random', count: 40, seed: 2 }] }],
    ];
    for (const [name, opts] of chosen) {
      for (const [Nq, Nk] of [[13, 13], [1, 13], [4, 13], [17, 13]] as const) {
        for (const causal of [false, true]) spansAgree(name, { ...opts, causal }, Nq, Nk);
      }
    }
  });

  it('agree with the mask on random unions of patterns', () => {
    const rng = new Rng(2024);
    const draw = (): Record<string, unknown> => {
      switch (rng.int(5)) {
        case 0:
          return { type: 'local', window: rng.int(6) };
        case 1:
          return { type: 'local', before: rng.int(5), after: rng.int(5) };
        case 2:
          return rng.int(2) ? { type: 'strided', stride: 1 + rng.int(6) } : { type: 'strided', stride: 1 + rng.int(6), window: rng.int(4) };
        case 3:
          return { type: 'global', tokens: Array.from({ length: rng.int(4) }, () => rng.int(9)).concat(rng.int(2) ? [0, 8] : []) };
        default:
          return { type: 'random', count: rng.int(5), seed: rng.int(1000) };
      }
    };
    for (let trial = 0; trial < 150; trial++) {
      const Nk = 9 + rng.int(12);
      const Nq = rng.int(3) === 0 ? Nk : 1 + rng.int(Nk + 4);
      const patterns = Array.from({ length: 1 + rng.int(4) }, draw);
      spansAgree('sparse', { patterns, causal: rng.int(2) === 1 }, Nq, Nk);
    }
  });

  it('give the local windows as one range, the strided pattern as progressions, the rest as runs', () => {
    const set = (options: Record<string, unknown>, name: string): PatternSet =>
      (prepare(variants[name], randn([1, 1, 20, 4], 1), randn([1, 1, 20, 4], 2), null, options).parsed as PatternParsed).patterns;
    expect(rowSpans(set({ window: 3 }, 'local'), 10, false)).toEqual([{ start: 7, step: 1, count: 7 }]);
    expect(rowSpans(set({ window: 3 }, 'local'), 10, true)).toEqual([{ start: 7, step: 1, count: 4 }]);
    expect(rowSpans(set({ stride: 4 }, 'strided'), 10, false)).toEqual([{ start: 2, step: 4, count: 5 }]);
    const longformerish = set({ patterns: [{ type: 'local', window: 1 }, { type: 'strided', stride: 4 }, { type: 'global', tokens: [0, 1, 2, 19] }] }, 'sparse');
    expect(rowSpans(longformerish, 10, false)).toEqual([
      { start: 0, step: 1, count: 2 },
      { start: 2, step: 4, count: 2 },
      { start: 9, step: 1, count: 3 },
      { start: 14, step: 4, count: 2 },
      { start: 19, step: 1, count: 1 },
    ]);
    expect(rowSpans(longformerish, 19, false)).toEqual([{ start: 0, step: 1, count: 20 }]);
    expect(rowSpans(longformerish, 19, true)).toEqual([{ start: 0, step: 1, count: 20 }]);
    expect(rowSpans(longformerish, 1, true)).toEqual([{ start: 0, step: 1, count: 2 }]);
  });
});
