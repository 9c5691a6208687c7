/** The plain-JS reference of `sinkhorn` (SPEC "Learnable pattern"): goldens, properties, validation. */
import { describe, expect, it } from 'vitest';
import { applyWeights, loadGolden, maxAbsDiff } from './golden.js';
import { padding, randn, type T } from './random.js';
import { readInputs } from '../src/inputs.js';
import { asHeads } from '../src/tensor.js';
import { sortMatrices } from '../src/reference/sinkhorn.js';
import { full } from '../src/variants/full.js';
import { sinkhorn, sinkhornSortMatrices } from '../src/variants/sinkhorn.js';
import type { Lookup, Parsed, Variant } from '../src/variants/variant.js';

const noLookup: Lookup = (name) => {
  throw new Error(`unexpected lookup of ${name}`);
};

/** Output and dense weights of a variant on q, k, v. */
function run<P extends Parsed>(variant: Variant<P>, q: T, k: T, v: T, options: Record<string, unknown>) {
  const inputs = readInputs(variant, q, k, v, true);
  const out = variant.reference(inputs, variant.parse(inputs, options, noLookup));
  const bare = readInputs(variant, q, k, null, false);
  const weights = variant.weights(bare, variant.parse(bare, options, noLookup));
  return { out, weights };
}


function expectError(f: () => unknown, type: typeof TypeError | typeof RangeError, name: RegExp): void {
  let error: unknown = null;
  try {
    f();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(type);
  expect((error as Error).message).toMatch(name);
}

describe('sinkhorn.json goldens', () => {
  for (const c of loadGolden('sinkhorn.json')) {
    it(`${c.name}: within 1e-4, and weights() · v is the output`, () => {
      const { out, weights } = run(sinkhorn, c.q!, c.k!, c.v!, c.options);
      expect(maxAbsDiff(out, c.expected.data)).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(applyWeights(weights, c.v!), out)).toBeLessThanOrEqual(1e-5);
    });
  }
});

describe('sinkhorn', () => {
  const q = randn([2, 2, 24, 6], 1);
  const k = randn([2, 2, 24, 6], 2);
  const v = randn([2, 2, 24, 5], 3);
  const keyPadding = padding(2, 24, 4, 0.4);

  /** The sort matrices `[B, H, nb, nb]` in float64. */
  const matrices = (options: Record<string, unknown>) => {
    const inputs = readInputs(sinkhorn, q, k, null, false);
    return sortMatrices(asHeads(q, 'q'), asHeads(k, 'k'), sinkhorn.parse(inputs, options, noLookup));
  };

  it('with blockSize = N, equals full attention', () => {
    for (const causal of [false, true]) {
      const options = { causal, keyPadding };
      const { out } = run(sinkhorn, q, k, v, { ...options, blockSize: 24 });
      expect(maxAbsDiff(out, run(full, q, k, v, options).out)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('not causal: rows and columns of S sum to 1 within 1e-3 after 20 iterations', () => {
    const nb = 8;
    const S = matrices({ blockSize: 3, iterations: 20, temperature: 0.3 });
    for (let bh = 0; bh < 4; bh++) {
      for (let a = 0; a < nb; a++) {
        let row = 0;
        let column = 0;
        for (let c = 0; c < nb; c++) {
          row += S[(bh * nb + a) * nb + c];
          column += S[(bh * nb + c) * nb + a];
        }
        expect(Math.abs(row - 1)).toBeLessThanOrEqual(1e-3);
        expect(Math.abs(column - 1)).toBeLessThanOrEqual(1e-3);
      }
    }
  });

  it('not causal: R_ut = scale * qbar_u . kbar_t of the block means, and 0 iterations leave S = exp(R / temperature)', () => {
    const S = matrices({ blockSize: 3, iterations: 0 });
    const mean = (x: T, bh: number, block: number) =>
      [0, 1, 2, 3, 4, 5].map((d) => [0, 1, 2].reduce((sum, r) => sum + x.data[(bh * 24 + block * 3 + r) * 6 + d], 0) / 3);
    for (let bh = 0; bh < 4; bh++) {
      for (let u = 0; u < 8; u++) {
        for (let t = 0; t < 8; t++) {
          const qBar = mean(q, bh, u);
          const kBar = mean(k, bh, t);
          const R = qBar.reduce((sum, qd, d) => sum + qd * kBar[d], 0) / Math.sqrt(6);
          expect(S[(bh * 8 + u) * 8 + t]).toBeCloseTo(Math.exp(R / 0.75), 10);
        }
      }
    }
  });

  it('given sortLogits replace R, broadcast over batches and heads', () => {
    const logits = randn([1, 1, 4, 4], 5);
    const S = matrices({ blockSize: 6, sortLogits: logits, iterations: 0, temperature: 2 });
    for (let bh = 0; bh < 4; bh++) {
      expect(maxAbsDiff(S.subarray(bh * 16, bh * 16 + 16), Array.from(logits.data, (l) => Math.exp(l / 2)))).toBeLessThanOrEqual(1e-12);
    }
    const parsed = sinkhorn.parse(readInputs(sinkhorn, q, k, null, false), { blockSize: 6, sortLogits: logits }, noLookup);
    expect(sinkhornSortMatrices(readInputs(sinkhorn, q, k, null, false), parsed).dims).toEqual([2, 2, 4, 4]);
  });

  it('causal: S_u is a softmax over past blocks, block 0 has none', () => {
    const nb = 6;
    const S = matrices({ blockSize: 4, causal: true });
    for (let bh = 0; bh < 4; bh++) {
      for (let u = 0; u < nb; u++) {
        let past = 0;
        for (let t = 0; t < nb; t++) {
          if (t < u) past += S[(bh * nb + u) * nb + t];
          else expect(S[(bh * nb + u) * nb + t]).toBe(0);
        }
        expect(past).toBeCloseTo(u === 0 ? 0 : 1, 12);
      }
    }
  });

  it('causal: changing future tokens changes no earlier output', () => {
    const options = { blockSize: 4, causal: true, keyPadding };
    const { out, weights } = run(sinkhorn, q, k, v, options);
    // Tokens 11 and on (mid-block) get new q, k and v.
    const changed = (x: T, seed: number): T => {
      const D = x.dims[3];
      const fresh = randn(x.dims, seed, 3);
      const data = x.data.map((value, t) => (Math.floor(t / D) % 24 >= 11 ? fresh.data[t] : value));
      return { data, dims: x.dims };
    };
    const later = run(sinkhorn, changed(q, 6), changed(k, 7), changed(v, 8), options).out;
    for (let bh = 0; bh < 4; bh++) {
      expect(maxAbsDiff(out.subarray(bh * 24 * 5, (bh * 24 + 11) * 5), later.subarray(bh * 24 * 5, (bh * 24 + 11) * 5))).toBe(0);
      for (let i = 0; i < 24; i++) {
        for (let j = i + 1; j < 24; j++) expect(weights.data[(bh * 24 + i) * 24 + j]).toBe(0);
      }
    }
  });

  it('hides sorted keys whose main source key is padded, and padded own keys', () => {
    // One head, N = 8, b = 2: sort logits make block t's sorted block come from block (t + 1) mod 4.
    const N = 8;
    const logits = new Float32Array(16);
    for (let u = 0; u < 4; u++) logits[u * 4 + ((u + 1) % 4)] = 20;
    const qq = randn([1, 1, N, 3], 11);
    const kk = randn([1, 1, N, 3], 12);
    const vv = randn([1, 1, N, 2], 13);
    const pad = Uint8Array.from([1, 1, 1, 0, 1, 1, 1, 1]);
    const { weights } = run(sinkhorn, qq, kk, vv, { blockSize: 2, keyPadding: pad, sortLogits: { data: logits, dims: [1, 1, 4, 4] } });
    // Query block 0 (rows 0, 1): sorted key (0, 1) comes mostly from key 3 (padded), so it is hidden,
    // and it alone would have put weight on the odd keys 3, 5, 7.
    for (const i of [0, 1]) {
      for (const j of [3, 5, 7]) expect(weights.data[i * N + j]).toBe(0);
      expect(weights.data[i * N + 1]).toBeGreaterThan(0);
    }
    // Query block 1 (rows 2, 3): own key 3 is padded; its sorted key (1, 1) comes mostly from key 5: visible.
    for (const i of [2, 3]) {
      expect(weights.data[i * N + 3]).toBeLessThan(1e-9);
      expect(weights.data[i * N + 5]).toBeGreaterThan(1e-3);
    }
  });

  it('N = 1: the query takes the value, or zeros when its key is padded', () => {
    const one = randn([1, 1, 1, 4], 21);
    const value = randn([1, 1, 1, 3], 22);
    for (const causal of [false, true]) {
      expect(maxAbsDiff(run(sinkhorn, one, one, value, { blockSize: 1, causal }).out, value.data)).toBeLessThanOrEqual(1e-7);
      const hidden = run(sinkhorn, one, one, value, { blockSize: 1, causal, keyPadding: Uint8Array.from([0]) });
      expect(Array.from(hidden.out)).toEqual([0, 0, 0]);
    }
  });

  it('validates its options', () => {
    const inputs = readInputs(sinkhorn, q, k, v, true);
    const parse = (options: Record<string, unknown>) => () => sinkhorn.parse(inputs, options, noLookup);
    expectError(parse({}), TypeError, /^options\.blockSize: required/);
    expectError(parse({ blockSize: 0 }), RangeError, /^options\.blockSize: expected an integer >= 1, received 0/);
    expectError(parse({ blockSize: 5 }), RangeError, /^options\.blockSize: expected a divisor of N = 24, received 5/);
    expectError(parse({ blockSize: 4, temperature: 0 }), RangeError, /^options\.temperature: expected a finite number > 0, received 0/);
    expectError(parse({ blockSize: 4, temperature: -1 }), RangeError, /^options\.temperature/);
    expectError(parse({ blockSize: 4, temperature: '1' }), TypeError, /^options\.temperature/);
    expectError(parse({ blockSize: 4, iterations: 1.5 }), TypeError, /^options\.iterations/);
    expectError(parse({ blockSize: 4, iterations: -1 }), RangeError, /^options\.iterations/);
    expectError(parse({ blockSize: 4, sortLogits: randn([1, 1, 6, 5], 1) }), RangeError, /^options\.sortLogits\.dims: expected \[B\|1, H\|1, nb, nb\] = \[2\|1, 2\|1, 6, 6\], received \[1, 1, 6, 5\]/);
    expectError(parse({ blockSize: 4, sortLogits: randn([3, 1, 6, 6], 1) }), RangeError, /^options\.sortLogits\.dims/);
    expectError(parse({ blockSize: 4, sortLogits: randn([6, 6], 1) }), RangeError, /^options\.sortLogits\.dims/);
    expectError(parse({ blockSize: 4, sortLogits: [1] }), TypeError, /^options\.sortLogits/);
    const longer = readInputs(sinkhorn, q, randn([2, 2, 28, 6], 1), randn([2, 2, 28, 5], 1), true);
    expectError(() => sinkhorn.parse(longer, { blockSize: 4 }, noLookup), RangeError, /^k\.dims: .*expected Nk = 24, received 28/);
  });
});
