/** Reference of `synthesizer` (SPEC "Attention matrix as parameters"). */
import { describe, expect, it } from 'vitest';
import { readInputs } from '../src/inputs.js';
import { Rng } from '../src/prng.js';
import { full } from '../src/variants/full.js';
import { synthesizer, synthesizerParams } from '../src/variants/synthesizer.js';
import type { Dense, Lookup } from '../src/variants/variant.js';
import { applyWeights, loadGolden, maxAbsDiff } from './golden.js';
import { padding, randn, repeatHeads, type T } from './random.js';

const lookup: Lookup = (name) => {
  throw new Error(`unexpected lookup of ${name}`);
};

function run(v: T, options: Record<string, unknown>): Float32Array {
  const inputs = readInputs(synthesizer, null, null, v, true);
  return synthesizer.reference(inputs, synthesizer.parse(inputs, options, lookup));
}

function weightsOf(options: Record<string, unknown>): Dense {
  const inputs = readInputs(synthesizer, null, null, null, false);
  return synthesizer.weights(inputs, synthesizer.parse(inputs, options, lookup));
}

function parseError(v: T | null, options: Record<string, unknown>): () => void {
  return () => {
    const inputs = readInputs(synthesizer, null, null, v, v !== null);
    synthesizer.parse(inputs, options, lookup);
  };
}



/**
 * Random logits `[H, Nq, Nk]` as full attention: with `q_i` = logits row i
 * (repeated over the batch), `k` = the identity and scale 1, `q_i . k_j = B_ij`.
 */
function asFull(logits: T, v: T, options: Record<string, unknown>): Float32Array {
  const [H, Nq, Nk] = logits.dims as [number, number, number];
  const B = v.dims[0];
  const q = new Float32Array(B * H * Nq * Nk);
  for (let b = 0; b < B; b++) q.set(logits.data, b * H * Nq * Nk);
  const k = new Float32Array(B * H * Nk * Nk);
  for (let bh = 0; bh < B * H; bh++) for (let j = 0; j < Nk; j++) k[(bh * Nk + j) * Nk + j] = 1;
  const qT = { data: q, dims: [B, H, Nq, Nk] };
  const kT = { data: k, dims: [B, H, Nk, Nk] };
  const inputs = readInputs(full, qT, kT, v, true);
  return full.reference(inputs, full.parse(inputs, { ...options, scale: 1 }, lookup));
}

/** Brute force dense logits `[B, H, Nq, Nk]` from x `[B, Nq, Dm]` and per-head layers `[H, ...]`. */
function denseLogits(dense: { x: T; w1: T; b1: T; w2: T; b2: T }, Nk: number): T {
  const [B, Nq, Dm] = dense.x.dims as [number, number, number];
  const [H, , Dh] = dense.w1.dims as [number, number, number];
  const Nmax = dense.w2.dims[2];
  const out = new Float32Array(B * H * Nq * Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        const hidden = Array.from({ length: Dh }, (_, u) => {
          let sum = dense.b1.data[h * Dh + u];
          for (let c = 0; c < Dm; c++) sum += dense.x.data[(b * Nq + i) * Dm + c] * dense.w1.data[(h * Dm + c) * Dh + u];
          return Math.max(0, sum);
        });
        for (let j = 0; j < Nk; j++) {
          let sum = dense.b2.data[h * Nmax + j];
          for (let u = 0; u < Dh; u++) sum += hidden[u] * dense.w2.data[(h * Dh + u) * Nmax + j];
          out[((b * H + h) * Nq + i) * Nk + j] = sum;
        }
      }
    }
  }
  return { data: out, dims: [B, H, Nq, Nk] };
}

describe('synthesizer: golden vectors', () => {
  for (const c of loadGolden('synthesizer.json')) {
    it(c.name, () => {
      expect(c.q).toBeNull();
      expect(maxAbsDiff(run(c.v!, c.options), c.expected.data)).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('synthesizer: properties', () => {
  const [B, H, Nq, Nk, Dv] = [2, 2, 7, 11, 3];
  const v = randn([B, H, Nk, Dv], 1);
  const logits = randn([H, Nq, Nk], 2);

  it('random logits are full attention with B as the q . k logits (causal, padding, Nq < Nk)', () => {
    const keyPadding = padding(B, Nk, 3);
    for (const options of [{}, { causal: true }, { causal: true, keyPadding }]) {
      expect(maxAbsDiff(run(v, { logits, ...options }), asFull(logits, v, options))).toBeLessThanOrEqual(1e-6);
    }
  });

  it('factorized logits are the random logits a · b^T', () => {
    const a = randn([H, Nq, 3], 4);
    const b = randn([1, Nk, 3], 5);
    const product = new Float32Array(H * Nq * Nk);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        for (let j = 0; j < Nk; j++) {
          let dot = 0;
          for (let r = 0; r < 3; r++) dot += a.data[(h * Nq + i) * 3 + r] * b.data[j * 3 + r];
          product[(h * Nq + i) * Nk + j] = dot;
        }
      }
    }
    const options = { causal: true, keyPadding: padding(B, Nk, 6) };
    expect(maxAbsDiff(run(v, { factors: { a, b }, ...options }), asFull({ data: product, dims: [H, Nq, Nk] }, v, options))).toBeLessThanOrEqual(1e-5);
  });

  const Nmax = Nk + 4;
  const dense = {
    x: randn([B, Nq, 5], 7),
    w1: randn([H, 5, 6], 8),
    b1: randn([H, 6], 9),
    w2: randn([H, 6, Nmax], 10, 0.5),
    b2: randn([H, Nmax], 11),
  };

  it('dense logits are relu(x w1 + b1) w2 + b2, cut to the first Nk of Nmax', () => {
    const expected = denseLogits(dense, Nk);
    for (let b = 0; b < B; b++) {
      const logitsOfBatch = { data: expected.data.slice(b * H * Nq * Nk, (b + 1) * H * Nq * Nk), dims: [H, Nq, Nk] };
      const vOfBatch = { data: v.data.slice(b * H * Nk * Dv, (b + 1) * H * Nk * Dv), dims: [1, H, Nk, Dv] };
      const out = run(v, { dense, causal: true }).subarray(b * H * Nq * Dv, (b + 1) * H * Nq * Dv);
      expect(maxAbsDiff(out, asFull(logitsOfBatch, vOfBatch, { causal: true }))).toBeLessThanOrEqual(1e-5);
    }
  });

  it('the extra logits past Nk (Nmax > Nk) are ignored', () => {
    const w2 = { data: Float32Array.from(dense.w2.data), dims: dense.w2.dims };
    const b2 = { data: Float32Array.from(dense.b2.data), dims: dense.b2.dims };
    for (let h = 0; h < H; h++) {
      for (let j = Nk; j < Nmax; j++) {
        b2.data[h * Nmax + j] = 100;
        for (let u = 0; u < 6; u++) w2.data[(h * 6 + u) * Nmax + j] = 50;
      }
    }
    expect(run(v, { dense: { ...dense, w2, b2 } })).toEqual(run(v, { dense }));
  });

  it('a head axis of 1 broadcasts like an explicitly repeated head axis', () => {
    const one = randn([1, Nq, Nk], 12);
    expect(run(v, { logits: one })).toEqual(run(v, { logits: repeatHeads(one, H) }));
    expect(run(v, { logits: { data: one.data, dims: [Nq, Nk] } })).toEqual(run(v, { logits: one }));
    const a = randn([1, Nq, 2], 13);
    const b = randn([1, Nk, 2], 14);
    expect(run(v, { factors: { a, b } })).toEqual(run(v, { factors: { a: repeatHeads(a, H), b: repeatHeads(b, H) } }));
    const layers = { w1: randn([1, 5, 6], 15), b1: randn([1, 6], 16), w2: randn([1, 6, Nk], 17), b2: randn([1, Nk], 18) };
    const repeated = Object.fromEntries(Object.entries(layers).map(([name, t]) => [name, repeatHeads(t, H)]));
    expect(run(v, { dense: { x: dense.x, ...layers } })).toEqual(run(v, { dense: { x: dense.x, ...repeated } }));
  });

  it('causal never sees the future: changing later values or logits changes no earlier output', () => {
    const square = randn([B, H, Nq, Dv], 19);
    const squareLogits = randn([H, Nq, Nq], 20);
    for (const t of [0, 3, 5]) {
      const before = run(square, { logits: squareLogits, causal: true });
      const laterValues = { data: Float32Array.from(square.data), dims: square.dims };
      const laterLogits = { data: Float32Array.from(squareLogits.data), dims: squareLogits.dims };
      for (let bh = 0; bh < B * H; bh++) for (let j = t + 1; j < Nq; j++) for (let d = 0; d < Dv; d++) laterValues.data[(bh * Nq + j) * Dv + d] += 3;
      for (let h = 0; h < H; h++) for (let i = 0; i < Nq; i++) for (let j = t + 1; j < Nq; j++) laterLogits.data[(h * Nq + i) * Nq + j] += 5;
      const after = run(laterValues, { logits: laterLogits, causal: true });
      for (let bh = 0; bh < B * H; bh++) {
        expect(after.subarray(bh * Nq * Dv, (bh * Nq + t + 1) * Dv)).toEqual(before.subarray(bh * Nq * Dv, (bh * Nq + t + 1) * Dv));
      }
    }
  });

  it('padded keys\' values never matter', () => {
    const keyPadding = padding(B, Nk, 21);
    const changed = { data: Float32Array.from(v.data), dims: v.dims };
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < Nk; j++) {
        if (keyPadding[b * Nk + j] !== 0) continue;
        for (let h = 0; h < H; h++) for (let d = 0; d < Dv; d++) changed.data[((b * H + h) * Nk + j) * Dv + d] = 1e3;
      }
    }
    expect(keyPadding.includes(0)).toBe(true);
    for (const form of [{ logits }, { dense }]) {
      expect(run(changed, { ...form, keyPadding })).toEqual(run(v, { ...form, keyPadding }));
    }
  });

  it('weights · v equals the output; a row that sees no key is zeros', () => {
    const keyPadding = padding(B, Nk, 22);
    keyPadding.fill(0, Nk, Nk + 5); // batch 1: query 0 (position 4) sees no key
    for (const form of [{ logits }, { dense }]) {
      const options = { ...form, causal: true, keyPadding };
      const inputs = readInputs(synthesizer, null, null, v, true);
      const p = synthesizer.weights(inputs, synthesizer.parse(inputs, options, lookup));
      expect(p.dims).toEqual([B, H, Nq, Nk]);
      const out = run(v, options);
      expect(maxAbsDiff(applyWeights(p, v), out)).toBeLessThanOrEqual(1e-6);
      expect(Array.from(out.subarray(H * Nq * Dv, H * Nq * Dv + Dv))).toEqual([0, 0, 0]);
    }
  });

  it('weights() without v: H from the parameters\' head axis, B from dense.x, Nk from the parameters', () => {
    expect(weightsOf({ logits }).dims).toEqual([1, H, Nq, Nk]);
    expect(weightsOf({ logits: randn([1, Nq, Nk], 23) }).dims).toEqual([1, 1, Nq, Nk]);
    expect(weightsOf({ factors: { a: randn([1, Nq, 2], 24), b: randn([H, Nk, 2], 25) } }).dims).toEqual([1, H, Nq, Nk]);
    const p = weightsOf({ dense, causal: true });
    expect(p.dims).toEqual([B, H, Nq, Nmax]);
    const withoutV = weightsOf({ logits });
    const inputs = readInputs(synthesizer, null, null, v, true);
    expect(synthesizer.weights(inputs, synthesizer.parse(inputs, { logits }, lookup)).data).toEqual(
      Float32Array.from({ length: B * H * Nq * Nk }, (_, n) => withoutV.data[n % (H * Nq * Nk)]),
    );
  });

  it('synthesizerParams: seeded Xavier-normal draws, row-major, ready to pass', () => {
    const random = synthesizerParams('random', { H, Nq, Nk }, 7);
    expect(random.logits.dims).toEqual([H, Nq, Nk]);
    const rng = new Rng(7);
    const std = Math.sqrt(2 / (Nq + Nk));
    expect(random.logits.data).toEqual(Float32Array.from({ length: H * Nq * Nk }, () => rng.normal() * std));
    expect(synthesizerParams('random', { H, Nq, Nk }, 8).logits.data).not.toEqual(random.logits.data);
    expect(run(v, random).length).toBe(B * H * Nq * Dv);

    const { factors } = synthesizerParams('factorized', { Nq, Nk, R: 3 }, 9);
    expect([factors.a.dims, factors.b.dims]).toEqual([[1, Nq, 3], [1, Nk, 3]]);
    const rngF = new Rng(9);
    const a = Float32Array.from({ length: Nq * 3 }, () => rngF.normal() * Math.sqrt(2 / (Nq + 3)));
    const b = Float32Array.from({ length: Nk * 3 }, () => rngF.normal() * Math.sqrt(2 / (Nk + 3)));
    expect([factors.a.data, factors.b.data]).toEqual([a, b]);
    expect(run(v, { factors }).length).toBe(B * H * Nq * Dv);

    const params = synthesizerParams('dense', { H, x: dense.x, Dh: 4, Nmax }, 10);
    expect(params.dense.x.data).toBe(dense.x.data);
    expect([params.dense.w1.dims, params.dense.b1.dims, params.dense.w2.dims, params.dense.b2.dims]).toEqual([[H, 5, 4], [H, 4], [H, 4, Nmax], [H, Nmax]]);
    expect(params.dense.b1.data.every((x) => x === 0) && params.dense.b2.data.every((x) => x === 0)).toBe(true);
    const rngD = new Rng(10);
    Array.from({ length: H * 5 * 4 }, () => rngD.normal());
    expect(params.dense.w2.data[0]).toBe(Math.fround(rngD.normal() * Math.sqrt(2 / (4 + Nmax))));
    expect(run(v, params).length).toBe(B * H * Nq * Dv);
  });

  describe('validation', () => {
    const expectError = (options: Record<string, unknown>, type: typeof TypeError | typeof RangeError, message: RegExp, values: T | null = v): void => {
      expect(parseError(values, options)).toThrow(type);
      expect(parseError(values, options)).toThrow(message);
    };
    it('exactly one form', () => {
      expectError({}, TypeError, /options\.logits: required option is missing \(synthesizer takes exactly one of/);
      expectError({ logits, dense }, RangeError, /options\.dense: cannot be combined with options\.logits/);
      expectError({ factors: { a: randn([Nq, 2], 1), b: randn([Nk, 2], 2) }, logits }, RangeError, /options\.factors: cannot be combined with options\.logits/);
    });
    it('logits whose dims disagree with v', () => {
      expectError({ logits: randn([H, Nq, Nk + 1], 1) }, RangeError, /options\.logits\.dims: expected \[H\|1, Nq, Nk\] = \[2\|1, 7, 11\], received \[2, 7, 12\]/);
      expectError({ logits: randn([3, Nq, Nk], 1) }, RangeError, /options\.logits\.dims/);
      expectError({ logits: randn([Nk], 1) }, RangeError, /options\.logits\.dims: expected \[H\|1, Nq, Nk\] or \[Nq, Nk\]/);
      expectError({ logits: { data: [1], dims: [1, 1] } }, TypeError, /options\.logits\.data/);
    });
    it('factors', () => {
      expectError({ factors: randn([Nq, 2], 1) }, TypeError, /options\.factors\.data: unknown option 'data' \(factors accepts a, b\)/);
      expectError({ factors: 'ab' }, TypeError, /options\.factors: expected \{ a, b \}/);
      expectError({ factors: { a: randn([Nq, 2], 1), b: randn([Nk, 3], 2) } }, RangeError, /options\.factors\.b\.dims: expected \[H\|1, Nk, R\] = \[2\|1, 11, 2\]/);
      expectError({ factors: { a: randn([Nq, 2], 1), b: randn([Nk + 1, 2], 2) } }, RangeError, /options\.factors\.b\.dims/);
    });
    it('dense', () => {
      expectError({ dense: { ...dense, w2: randn([H, 6, Nk - 1], 1), b2: randn([H, Nk - 1], 2) } }, RangeError, /options\.dense\.w2\.dims: expected Nmax >= Nk = 11/);
      expectError({ dense: { ...dense, x: randn([B + 1, Nq, 5], 1) } }, RangeError, /options\.dense\.x\.dims: expected \[B, Nq, Dm\] = \[2, 7, 5\]/);
      expectError({ dense: { ...dense, x: randn([Nq, 5], 1) } }, RangeError, /options\.dense\.x\.dims/);
      expectError({ dense: { ...dense, b1: randn([H, 7], 1) } }, RangeError, /options\.dense\.b1\.dims/);
      expectError({ dense: { ...dense, w1: undefined } }, TypeError, /options\.dense\.w1: required/);
    });
    it('scale is checked but does not apply; common options are checked', () => {
      expect(run(v, { logits, scale: 0.5 })).toEqual(run(v, { logits }));
      expectError({ logits, scale: '2' }, TypeError, /options\.scale: expected a finite number/);
      expectError({ logits, keyPadding: new Uint8Array(B * Nk + 1) }, RangeError, /options\.keyPadding/);
      expectError({ logits, causal: 1 }, TypeError, /options\.causal/);
    });
    it('synthesizerParams arguments', () => {
      expect(() => synthesizerParams('random', { Nq: 0, Nk }, 1)).toThrow(/synthesizerParams\.sizes\.Nq/);
      expect(() => synthesizerParams('factorized', { Nq, Nk } as never, 1)).toThrow(/synthesizerParams\.sizes\.R: required/);
      expect(() => synthesizerParams('other' as never, { Nq, Nk }, 1)).toThrow(/synthesizerParams\.kind/);
      expect(() => synthesizerParams('random', { Nq, Nk }, 1.5)).toThrow(/synthesizerParams\.seed/);
    });
  });
});
