/** Reference of the "fewer keys" variants (SPEC "Fewer keys"): linformer and compressed. */
import { describe, expect, it } from 'vitest';
import { readInputs } from '../src/inputs.js';
import { Rng } from '../src/prng.js';
import { compressed } from '../src/variants/compressed.js';
import { full } from '../src/variants/full.js';
import { linformer, linformerProjection } from '../src/variants/linformer.js';
import type { Dense, Lookup, Parsed, Variant } from '../src/variants/variant.js';
import { applyWeights, loadGolden, maxAbsDiff } from './golden.js';
import { changePaddedRows, padding, randn, repeatHeads, type T } from './random.js';

const lookup: Lookup = (name) => {
  throw new Error(`unexpected lookup of ${name}`);
};

function run<P extends Parsed>(variant: Variant<P>, q: T | null, k: T | null, v: T, options: Record<string, unknown>): Float32Array {
  const inputs = readInputs(variant, q, k, v, true);
  return variant.reference(inputs, variant.parse(inputs, options, lookup));
}

function weightsOf<P extends Parsed>(variant: Variant<P>, q: T, k: T, options: Record<string, unknown>): Dense {
  const inputs = readInputs(variant, q, k, null, false);
  return variant.weights(inputs, variant.parse(inputs, options, lookup));
}

function parseError<P extends Parsed>(variant: Variant<P>, q: T, k: T, v: T | null, options: Record<string, unknown>): () => void {
  return () => {
    const inputs = readInputs(variant, q, k, v, v !== null);
    variant.parse(inputs, options, lookup);
  };
}


/** A copy of x `[B, H, N, D]` with the rows at positions `from..` (every batch and head) replaced by fresh noise. */
function changeRowsFrom(x: T, from: number, seed: number): T {
  const [B, H, N, D] = x.dims as [number, number, number, number];
  const noise = randn(x.dims, seed);
  const data = Float32Array.from(x.data);
  for (let bh = 0; bh < B * H; bh++) for (let j = from; j < N; j++) for (let d = 0; d < D; d++) data[(bh * N + j) * D + d] = noise.data[(bh * N + j) * D + d];
  return { data, dims: x.dims };
}



describe('linformer: golden vectors', () => {
  for (const c of loadGolden('linformer.json')) {
    it(c.name, () => {
      expect(maxAbsDiff(run(linformer, c.q, c.k, c.v!, c.options), c.expected.data)).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('compressed: golden vectors', () => {
  for (const c of loadGolden('compressed.json')) {
    it(c.name, () => {
      expect(maxAbsDiff(run(compressed, c.q, c.k, c.v!, c.options), c.expected.data)).toBeLessThanOrEqual(1e-4);
    });
  }
});

/** Brute force: `x' = proj · x` per batch and head, proj `[H|1, P, N]`, rows of padded positions left out. */
function project(x: T, proj: T, mask: Uint8Array | null = null): T {
  const [B, H, N, D] = x.dims as [number, number, number, number];
  const P = proj.dims[proj.dims.length - 2];
  const perHead = proj.dims.length === 3 && proj.dims[0] === H && H > 1;
  const out = new Float32Array(B * H * P * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let r = 0; r < P; r++) {
        for (let d = 0; d < D; d++) {
          let sum = 0;
          for (let j = 0; j < N; j++) {
            if (mask && mask[b * N + j] === 0) continue;
            sum += proj.data[((perHead ? h : 0) * P + r) * N + j] * x.data[((b * H + h) * N + j) * D + d];
          }
          out[((b * H + h) * P + r) * D + d] = sum;
        }
      }
    }
  }
  return { data: out, dims: [B, H, P, D] };
}

function identity(N: number): T {
  const data = new Float32Array(N * N);
  for (let i = 0; i < N; i++) data[i * N + i] = 1;
  return { data, dims: [N, N] };
}

describe('linformer: properties', () => {
  const [B, H, Nq, Nk, D, Dv] = [2, 2, 9, 13, 5, 3];
  const q = randn([B, H, Nq, D], 1);
  const k = randn([B, H, Nk, D], 2);
  const v = randn([B, H, Nk, Dv], 3);

  it('e = identity (P = Nk) is full attention', () => {
    const out = run(linformer, q, k, v, { e: identity(Nk) });
    expect(maxAbsDiff(out, run(full, q, k, v, {}))).toBeLessThanOrEqual(1e-6);
  });

  for (const P of [4, 20]) {
    it(`P = ${P} (${P < Nk ? 'fewer' : 'more'} rows than Nk = ${Nk}) is full attention over e·k, f·v`, () => {
      const e = randn([H, P, Nk], 10 + P, 1 / Math.sqrt(P));
      const f = randn([1, P, Nk], 20 + P, 1 / Math.sqrt(P));
      const out = run(linformer, q, k, v, { e, f, scale: 0.7 });
      const expected = run(full, q, project(k, e), project(v, f), { scale: 0.7 });
      expect(maxAbsDiff(out, expected)).toBeLessThanOrEqual(1e-5);
    });
  }

  it('f defaults to e', () => {
    const e = randn([H, 6, Nk], 4);
    expect(run(linformer, q, k, v, { e })).toEqual(run(linformer, q, k, v, { e, f: e }));
  });

  it('a head axis of 1 broadcasts like an explicitly repeated head axis', () => {
    const e = randn([1, 6, Nk], 5);
    expect(run(linformer, q, k, v, { e })).toEqual(run(linformer, q, k, v, { e: repeatHeads(e, H) }));
    expect(run(linformer, q, k, v, { e: { data: e.data, dims: [6, Nk] } })).toEqual(run(linformer, q, k, v, { e }));
  });

  it('padded keys and values are zeroed before projection, so their values never matter', () => {
    const keyPadding = padding(B, Nk, 6);
    const e = randn([H, 7, Nk], 7);
    const out = run(linformer, q, k, v, { e, keyPadding });
    const changed = run(linformer, q, changePaddedRows(k, keyPadding, 8), changePaddedRows(v, keyPadding, 9), { e, keyPadding });
    expect(changed).toEqual(out);
    const expected = run(full, q, project(k, e, keyPadding), project(v, e, keyPadding), {});
    expect(maxAbsDiff(out, expected)).toBeLessThanOrEqual(1e-5);
  });

  it('weights · v equals the output, with and without padding', () => {
    const e = randn([H, 5, Nk], 11);
    const f = randn([H, 5, Nk], 12);
    for (const keyPadding of [undefined, padding(B, Nk, 13)]) {
      const options = { e, f, keyPadding };
      const p = weightsOf(linformer, q, k, options);
      expect(p.dims).toEqual([B, H, Nq, Nk]);
      expect(maxAbsDiff(applyWeights(p, v), run(linformer, q, k, v, options))).toBeLessThanOrEqual(1e-5);
    }
  });

  it('linformerProjection draws row-major standard normals scaled by 1/sqrt(P)', () => {
    const e = linformerProjection(4, 6, 42);
    expect(e.dims).toEqual([4, 6]);
    const rng = new Rng(42);
    const expected = Float32Array.from({ length: 24 }, () => rng.normal() / 2);
    expect(e.data).toEqual(expected);
    expect(linformerProjection(4, 6, 43).data).not.toEqual(e.data);
    expect(() => run(linformer, q, k, v, { e: linformerProjection(4, Nk, 1) })).not.toThrow();
  });

  describe('validation', () => {
    it('causal throws', () => {
      expect(parseError(linformer, q, k, v, { e: identity(Nk), causal: true })).toThrow(RangeError);
      expect(parseError(linformer, q, k, v, { e: identity(Nk), causal: true })).toThrow(/options\.causal/);
    });
    it('e is required', () => {
      expect(parseError(linformer, q, k, v, {})).toThrow(TypeError);
      expect(parseError(linformer, q, k, v, {})).toThrow(/options\.e/);
    });
    it('e with the wrong Nk', () => {
      const run = parseError(linformer, q, k, v, { e: randn([H, 4, Nk + 1], 1) });
      expect(run).toThrow(RangeError);
      expect(run).toThrow(/options\.e\.dims: expected \[H\|1, P, Nk\] = \[2\|1, 4, 13\], received \[2, 4, 14\]/);
    });
    it('e with the wrong rank or head count', () => {
      expect(parseError(linformer, q, k, v, { e: randn([Nk], 1) })).toThrow(/options\.e\.dims/);
      expect(parseError(linformer, q, k, v, { e: randn([3, 4, Nk], 1) })).toThrow(RangeError);
    });
    it('f must have the P of e', () => {
      const run = parseError(linformer, q, k, v, { e: randn([H, 4, Nk], 1), f: randn([H, 5, Nk], 2) });
      expect(run).toThrow(RangeError);
      expect(run).toThrow(/options\.f\.dims/);
    });
    it('e must be a tensor', () => {
      expect(parseError(linformer, q, k, v, { e: [[1]] })).toThrow(TypeError);
    });
    it('linformerProjection sizes and seed', () => {
      expect(() => linformerProjection(0, 4, 1)).toThrow(/linformerProjection\.P/);
      expect(() => linformerProjection(2, 1.5, 1)).toThrow(/linformerProjection\.N/);
      expect(() => linformerProjection(2, 4, 0.5)).toThrow(/linformerProjection\.seed/);
    });
  });
});

/**
 * Brute force slots of x `[B, H, N, Dx]`: each slot of s positions is the
 * mean of its real rows, or, given `conv` (PyTorch Conv1d weight `[Dx, Dx, s]`
 * shared by heads and bias `[Dx]`), the convolution of the zero-padded
 * sequence at stride s. Also returns `[B, S]` = 1 where a slot has a real row.
 */
function slots(x: T, s: number, mask: Uint8Array | null, conv: { weight: T; bias: T } | null = null): { rows: T; real: Uint8Array } {
  const [B, H, N, D] = x.dims as [number, number, number, number];
  const S = Math.ceil(N / s);
  const padded = new Float64Array(B * H * S * s * D); // zero rows past N and at padded positions
  const real = new Uint8Array(B * S);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < N; j++) {
      if (mask && mask[b * N + j] === 0) continue;
      real[b * S + Math.floor(j / s)] = 1;
      for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) padded[((b * H + h) * S * s + j) * D + d] = x.data[((b * H + h) * N + j) * D + d];
    }
  }
  const out = new Float32Array(B * H * S * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let m = 0; m < S; m++) {
        let count = 0;
        for (let j = m * s; j < Math.min(m * s + s, N); j++) if (!mask || mask[b * N + j] !== 0) count++;
        for (let o = 0; o < D; o++) {
          let value = 0;
          if (conv) {
            value = conv.bias.data[o];
            for (let c = 0; c < D; c++) for (let t = 0; t < s; t++) value += conv.weight.data[(o * D + c) * s + t] * padded[((b * H + h) * S * s + m * s + t) * D + c];
          } else if (count > 0) {
            for (let t = 0; t < s; t++) value += padded[((b * H + h) * S * s + m * s + t) * D + o];
            value /= count;
          }
          out[((b * H + h) * S + m) * D + o] = value;
        }
      }
    }
  }
  return { rows: { data: out, dims: [B, H, S, D] }, real };
}

describe('compressed: properties', () => {
  const [B, H, N, D, Dv] = [2, 2, 14, 4, 3];
  const q = randn([B, H, N, D], 21);
  const k = randn([B, H, N, D], 22);
  const v = randn([B, H, N, Dv], 23);
  const convK = { weight: randn([D, D, 4], 24, 0.5), bias: randn([D], 25) };
  const convV = { weight: randn([Dv, Dv, 4], 26, 0.5), bias: randn([Dv], 27) };
  const nullKey = randn([H, D], 28);
  const nullValue = randn([1, Dv], 29);

  it('factor 1 with mean pooling is full attention (causal, padded, decoding alignment)', () => {
    const keyPadding = padding(B, N, 30);
    const qShort = randn([B, H, 5, D], 31);
    for (const [query, options] of [
      [q, {}],
      [q, { causal: true, keyPadding }],
      [qShort, { causal: true, keyPadding, scale: 0.3 }],
    ] as const) {
      expect(maxAbsDiff(run(compressed, query, k, v, { factor: 1, ...options }), run(full, query, k, v, options))).toBeLessThanOrEqual(1e-6);
    }
  });

  it('factor 1 with identity convolutions is full attention', () => {
    const eye = (n: number): { weight: T } => ({ weight: { data: identity(n).data, dims: [n, n, 1] } });
    const out = run(compressed, q, k, v, { factor: 1, convK: eye(D), convV: eye(Dv), causal: true });
    expect(maxAbsDiff(out, run(full, q, k, v, { causal: true }))).toBeLessThanOrEqual(1e-6);
  });

  it('N not a multiple of s: full attention over the slot means, padded and all-padded slots hidden', () => {
    const keyPadding = new Uint8Array(B * N).fill(1);
    keyPadding.fill(0, 4, 8); // batch 0: slot 1 (positions 4..7) has no real key
    keyPadding[N + 13] = 0; // batch 1: the short last slot (12, 13) keeps one real key
    for (const mask of [null, keyPadding]) {
      const keys = slots(k, 4, mask);
      const values = slots(v, 4, mask);
      const expected = run(full, q, keys.rows, values.rows, { keyPadding: keys.real });
      expect(maxAbsDiff(run(compressed, q, k, v, { factor: 4, keyPadding: mask }), expected)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('strided convolution over the zero-padded sequence, and mean values when only convK is given', () => {
    const keys = slots(k, 4, null, convK);
    expect(maxAbsDiff(run(compressed, q, k, v, { factor: 4, convK, convV }), run(full, q, keys.rows, slots(v, 4, null, convV).rows, {}))).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(run(compressed, q, k, v, { factor: 4, convK }), run(full, q, keys.rows, slots(v, 4, null).rows, {}))).toBeLessThanOrEqual(1e-5);
  });

  it('a head axis of 1 broadcasts like an explicitly repeated head axis', () => {
    const one = { factor: 4, convK: { weight: { data: convK.weight.data, dims: [1, D, D, 4] }, bias: { data: convK.bias.data, dims: [1, D] } }, nullKey: randn([1, D], 32), nullValue };
    const repeated = {
      factor: 4,
      convK: { weight: repeatHeads(one.convK.weight, H), bias: repeatHeads(one.convK.bias, H) },
      nullKey: repeatHeads(one.nullKey, H),
      nullValue: repeatHeads(nullValue, H),
    };
    expect(run(compressed, q, k, v, repeated)).toEqual(run(compressed, q, k, v, one));
    expect(run(compressed, q, k, v, { factor: 4, convK })).toEqual(run(compressed, q, k, v, { factor: 4, convK: one.convK }));
  });

  it('causal never sees the future: changing later keys and values changes no earlier output', () => {
    const keyPadding = padding(B, N, 33);
    for (const options of [{ factor: 3 }, { factor: 4, convK, convV, nullKey, nullValue, keyPadding }]) {
      for (const t of [0, 4, 9, 12]) {
        const before = run(compressed, q, k, v, { ...options, causal: true });
        const after = run(compressed, q, changeRowsFrom(k, t + 1, 34), changeRowsFrom(v, t + 1, 35), { ...options, causal: true });
        for (let bh = 0; bh < B * H; bh++) {
          expect(after.subarray(bh * N * Dv, (bh * N + t + 1) * Dv)).toEqual(before.subarray(bh * N * Dv, (bh * N + t + 1) * Dv));
        }
      }
    }
  });

  it('causal: a query sees a slot only once it is complete (bottom-right aligned)', () => {
    // N = 14, s = 4: slots end at positions 3, 7, 11, 13; a 3-query step sits at positions 11, 12, 13
    const p = weightsOf(compressed, randn([B, H, 3, D], 36), k, { factor: 4, causal: true });
    expect(p.dims).toEqual([B, H, 3, 4]);
    const visible = Array.from({ length: 3 }, (_, i) => Array.from({ length: 4 }, (_, m) => (p.data[i * 4 + m] > 0 ? 1 : 0)));
    expect(visible).toEqual([
      [1, 1, 1, 0],
      [1, 1, 1, 0],
      [1, 1, 1, 1],
    ]);
  });

  it('the null slot comes first and is always visible; a row seeing no slot returns the null value', () => {
    const options = { factor: 4, causal: true, nullKey, nullValue };
    const p = weightsOf(compressed, q, k, options);
    expect(p.dims).toEqual([B, H, N, 5]);
    for (let row = 0; row < B * H * N; row++) {
      expect(p.data[row * 5]).toBeGreaterThan(0);
      expect(p.data.subarray(row * 5, row * 5 + 5).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    }
    // query 0 sees no complete slot: all its weight is on the null slot
    const out = run(compressed, q, k, v, options);
    expect(Array.from(out.subarray(0, Dv))).toEqual(Array.from(nullValue.data));
  });

  it('padded keys and values never matter (mean and convolution)', () => {
    const keyPadding = padding(B, N, 37);
    for (const options of [{ factor: 3, keyPadding }, { factor: 4, keyPadding, convK, convV, causal: true }]) {
      const out = run(compressed, q, k, v, options);
      expect(run(compressed, q, changePaddedRows(k, keyPadding, 38), changePaddedRows(v, keyPadding, 39), options)).toEqual(out);
    }
  });

  it('weights are the probabilities over the slots: weights · slot values equals the output', () => {
    const keyPadding = padding(B, N, 40);
    const options = { factor: 5, keyPadding };
    const p = weightsOf(compressed, q, k, options);
    expect(p.dims).toEqual([B, H, N, 3]);
    expect(maxAbsDiff(applyWeights(p, slots(v, 5, keyPadding).rows), run(compressed, q, k, v, options))).toBeLessThanOrEqual(1e-5);
  });

  it('weights() without v takes Dv from nullValue', () => {
    expect(weightsOf(compressed, q, k, { factor: 4, nullKey, nullValue: randn([H, 7], 41) }).dims).toEqual([B, H, N, 5]);
  });

  describe('validation', () => {
    const expectError = (options: Record<string, unknown>, type: typeof TypeError | typeof RangeError, message: RegExp): void => {
      expect(parseError(compressed, q, k, v, options)).toThrow(type);
      expect(parseError(compressed, q, k, v, options)).toThrow(message);
    };
    it('factor', () => {
      expectError({}, TypeError, /options\.factor: required/);
      expectError({ factor: 0 }, RangeError, /options\.factor: expected an integer >= 1, received 0/);
      expectError({ factor: 2.5 }, TypeError, /options\.factor/);
    });
    it('conv weight and bias dims', () => {
      expectError({ factor: 4, convK: { weight: randn([D, D, 3], 1) } }, RangeError, /options\.convK\.weight\.dims: expected \[H\|1, D, D, options\.factor\] = \[2\|1, 4, 4, 4\], received \[4, 4, 3\]/);
      expectError({ factor: 4, convV: { weight: randn([D, D, 4], 1) } }, RangeError, /options\.convV\.weight\.dims/);
      expectError({ factor: 4, convK: { weight: convK.weight, bias: randn([D + 1], 1) } }, RangeError, /options\.convK\.bias\.dims/);
      expectError({ factor: 4, convK: { bias: convK.bias } }, TypeError, /options\.convK\.weight: required/);
      expectError({ factor: 4, convK: 3 }, TypeError, /options\.convK/);
    });
    it('null slot needs both halves with the right dims', () => {
      expectError({ factor: 4, nullKey }, TypeError, /options\.nullValue: required when options\.nullKey is given/);
      expectError({ factor: 4, nullValue }, TypeError, /options\.nullKey: required when options\.nullValue is given/);
      expectError({ factor: 4, nullKey: randn([H, D + 1], 1), nullValue }, RangeError, /options\.nullKey\.dims/);
      expectError({ factor: 4, nullKey, nullValue: randn([3, Dv], 1) }, RangeError, /options\.nullValue\.dims/);
    });
  });
});
