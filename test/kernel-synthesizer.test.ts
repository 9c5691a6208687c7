// `synthesizer` on the WebAssembly backend against the plain-JS float64
// reference, and the properties of issue 6 through the facade.
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, synthesizerParams, type Attention } from '../dist/index.js';
import { maxAbsDiff } from './golden.js';
import { padding, randn, repeatHeads, type T } from './random.js';

let wasm: Attention;
let js: Attention;
beforeAll(async () => {
  wasm = await createAttention({ backend: 'wasm' });
  js = await createAttention({ backend: 'js' });
});


/** A copy of x `[B, H, N, D]` with the rows at positions `from..` replaced by fresh noise. */
function changeRowsFrom(x: T, from: number, seed: number): T {
  const [B, H, N, D] = x.dims;
  const noise = randn(x.dims, seed);
  const data = Float32Array.from(x.data);
  for (let bh = 0; bh < B * H; bh++) for (let j = from; j < N; j++) for (let d = 0; d < D; d++) data[(bh * N + j) * D + d] = noise.data[(bh * N + j) * D + d];
  return { data, dims: x.dims };
}

/** Rows [from, to) of every batch and head of x `[B, H, N, D]`. */
function rows(x: { data: Float32Array; dims: readonly number[] }, from: number, to: number): Float32Array {
  const [B, H, N, D] = x.dims;
  const out = new Float32Array(B * H * (to - from) * D);
  for (let bh = 0; bh < B * H; bh++) out.set(x.data.subarray((bh * N + from) * D, (bh * N + to) * D), bh * (to - from) * D);
  return out;
}

type Form = 'random' | 'random, one head' | 'factorized' | 'factorized, b of one head' | 'dense' | 'dense, one head, Nmax > Nk';
const forms: Form[] = ['random', 'random, one head', 'factorized', 'factorized, b of one head', 'dense', 'dense, one head, Nmax > Nk'];

/** The options of one form, parameters of about unit logit scale. */
function formOptions(form: Form, B: number, H: number, Nq: number, Nk: number, seed: number): Record<string, unknown> {
  const R = 1 + (seed % 9);
  const Dm = 1 + (seed % 13);
  const Dh = 2 + (seed % 11);
  switch (form) {
    case 'random':
      return { logits: randn([H, Nq, Nk], seed, 2) };
    case 'random, one head':
      return { logits: randn([Nq, Nk], seed, 2) };
    case 'factorized':
      return { factors: { a: randn([H, Nq, R], seed), b: randn([H, Nk, R], seed + 1, 1 / Math.sqrt(R)) } };
    case 'factorized, b of one head':
      return { factors: { a: randn([H, Nq, R], seed), b: randn([Nk, R], seed + 1, 1 / Math.sqrt(R)) } };
    case 'dense':
      return {
        dense: {
          x: randn([B, Nq, Dm], seed),
          w1: randn([H, Dm, Dh], seed + 1, 1 / Math.sqrt(Dm)),
          b1: randn([H, Dh], seed + 2, 0.5),
          w2: randn([H, Dh, Nk], seed + 3, 1 / Math.sqrt(Dh)),
          b2: randn([H, Nk], seed + 4, 0.5),
        },
      };
    case 'dense, one head, Nmax > Nk':
      return {
        dense: {
          x: randn([B, Nq, Dm], seed),
          w1: randn([1, Dm, Dh], seed + 1, 1 / Math.sqrt(Dm)),
          b1: randn([Dh], seed + 2, 0.5),
          w2: randn([Dh, Nk + 5], seed + 3, 1 / Math.sqrt(Dh)),
          b2: randn([1, Nk + 5], seed + 4, 0.5),
        },
      };
  }
}

describe('synthesizer: wasm kernel vs JS reference', () => {
  const shapes = [
    // [B, H, Nq, Nk, Dv]
    [1, 1, 1, 1, 1],
    [1, 1, 1, 7, 5],
    [1, 2, 13, 13, 7],
    [2, 3, 17, 29, 16],
    [2, 1, 40, 23, 3], // Nq > Nk: causal rows before every key
    [1, 2, 29, 5, 20],
    [1, 1, 70, 200, 9], // several key blocks, Nk not a multiple of 4... nor of 64
    [1, 1, 37, 130, 64],
  ];
  for (const [B, H, Nq, Nk, Dv] of shapes) {
    for (const form of forms) {
      for (const causal of [false, true]) {
        for (const padded of [false, true]) {
          it(`B=${B} H=${H} Nq=${Nq} Nk=${Nk} Dv=${Dv} ${form} causal=${causal} padded=${padded}`, () => {
            const seed = B * 1000 + H * 100 + Nq + Nk * 7 + Dv * 13 + forms.indexOf(form) * 101;
            const v = randn([B, H, Nk, Dv], seed + 5);
            const options = { ...formOptions(form, B, H, Nq, Nk, seed), causal, ...(padded ? { keyPadding: padding(B, Nk, seed + 6) } : {}) };
            const got = wasm.synthesizer(null, null, v, options);
            expect(got.dims).toEqual([B, H, Nq, Dv]);
            expect(maxAbsDiff(got.data, js.synthesizer(null, null, v, options).data)).toBeLessThanOrEqual(1e-4);
          });
        }
      }
    }
  }

  it('a long head splits its rows across calls, and matches the reference', () => {
    // Nk (R + Dv) = 4100 * 136 floats per row: chunks of 32 rows
    const Nq = 70;
    const Nk = 4100;
    const v = randn([1, 1, Nk, 128], 7);
    for (const form of ['random', 'factorized'] as const) {
      const params = form === 'random' ? { logits: randn([Nq, Nk], 8, 2) } : { factors: { a: randn([Nq, 8], 8), b: randn([Nk, 8], 9, 0.5) } };
      for (const causal of [false, true]) {
        const options = { ...params, causal, keyPadding: padding(1, Nk, 10) };
        expect(maxAbsDiff(wasm.synthesizer(null, null, v, options).data, js.synthesizer(null, null, v, options).data)).toBeLessThanOrEqual(1e-4);
      }
    }
  });

  it('large logits stay finite', () => {
    const v = randn([1, 2, 30, 8], 11);
    const logits = randn([2, 30, 30], 12, 40);
    const got = wasm.synthesizer(null, null, v, { logits, causal: true });
    expect(got.data.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(got.data, js.synthesizer(null, null, v, { logits, causal: true }).data)).toBeLessThanOrEqual(1e-4);
  });
});

describe('synthesizer: properties through the wasm facade', () => {
  it('random logits are full attention with the logits as q . k (scale 1)', () => {
    // q = logits rows, k = identity: q . k_j = B_ij
    const [Nq, Nk] = [9, 14];
    const logits = randn([Nq, Nk], 20);
    const eye = new Float32Array(Nk * Nk);
    for (let j = 0; j < Nk; j++) eye[j * Nk + j] = 1;
    const v = randn([1, 1, Nk, 6], 21);
    const keyPadding = padding(1, Nk, 22);
    for (const causal of [false, true]) {
      const got = wasm.synthesizer(null, null, v, { logits, causal, keyPadding });
      const want = wasm.full({ data: logits.data, dims: [Nq, Nk] }, { data: eye, dims: [Nk, Nk] }, { data: v.data, dims: [Nk, 6] }, { scale: 1, causal, keyPadding });
      expect(maxAbsDiff(got.data, want.data)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('factorized logits equal the random logits a · b^T', () => {
    const [H, Nq, Nk, R] = [2, 11, 19, 5];
    const a = randn([H, Nq, R], 23);
    const b = randn([1, Nk, R], 24);
    const logits = new Float32Array(H * Nq * Nk);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        for (let j = 0; j < Nk; j++) {
          let dot = 0;
          for (let r = 0; r < R; r++) dot += a.data[(h * Nq + i) * R + r] * b.data[j * R + r];
          logits[(h * Nq + i) * Nk + j] = dot;
        }
      }
    }
    const v = randn([2, H, Nk, 7], 25);
    const options = { causal: true, keyPadding: padding(2, Nk, 26) };
    const got = wasm.synthesizer(null, null, v, { factors: { a, b }, ...options });
    const want = wasm.synthesizer(null, null, v, { logits: { data: logits, dims: [H, Nq, Nk] }, ...options });
    expect(maxAbsDiff(got.data, want.data)).toBeLessThanOrEqual(1e-5);
  });

  it('the extra logits past Nk (Nmax > Nk) are ignored', () => {
    const [B, Nq, Nk, Dm, Dh, Nmax] = [2, 8, 11, 6, 5, 20];
    const x = randn([B, Nq, Dm], 27);
    const { dense } = synthesizerParams('dense', { x, Dh, Nmax, H: 2 }, 28);
    const v = randn([B, 2, Nk, 4], 29);
    const before = wasm.synthesizer(null, null, v, { dense });
    // change every weight and bias of the logits past Nk
    const w2 = Float32Array.from(dense.w2.data);
    const b2 = Float32Array.from(dense.b2.data);
    for (let h = 0; h < 2; h++) {
      for (let j = Nk; j < Nmax; j++) {
        b2[h * Nmax + j] = 100 + j;
        for (let u = 0; u < Dh; u++) w2[(h * Dh + u) * Nmax + j] = -50 - u;
      }
    }
    const after = wasm.synthesizer(null, null, v, { dense: { ...dense, w2: { data: w2, dims: dense.w2.dims }, b2: { data: b2, dims: dense.b2.dims } } });
    expect(maxAbsDiff(before.data, after.data)).toBe(0);
    expect(maxAbsDiff(before.data, js.synthesizer(null, null, v, { dense }).data)).toBeLessThanOrEqual(1e-4);
  });

  it('a head axis of 1 broadcasts like an explicitly repeated head axis (every form)', () => {
    const [B, H, Nq, Nk, Dm, Dh, R] = [2, 3, 10, 13, 4, 6, 3];
    const v = randn([B, H, Nk, 5], 30);
    const logits = randn([1, Nq, Nk], 31);
    const a = randn([1, Nq, R], 32);
    const b = randn([Nk, R], 33);
    const x = randn([B, Nq, Dm], 34);
    const w1 = randn([1, Dm, Dh], 35);
    const b1 = randn([Dh], 36);
    const w2 = randn([1, Dh, Nk], 37);
    const b2 = randn([Nk], 38);
    const pairs: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ logits }, { logits: repeatHeads(logits, H, [Nq, Nk]) }],
      [{ factors: { a, b } }, { factors: { a: repeatHeads(a, H, [Nq, R]), b: repeatHeads(b, H, [Nk, R]) } }],
      [
        { dense: { x, w1, b1, w2, b2 } },
        { dense: { x, w1: repeatHeads(w1, H, [Dm, Dh]), b1: repeatHeads(b1, H, [Dh]), w2: repeatHeads(w2, H, [Dh, Nk]), b2: repeatHeads(b2, H, [Nk]) } },
      ],
    ];
    for (const [one, repeated] of pairs) {
      const options = { causal: true, keyPadding: padding(B, Nk, 39) };
      expect(maxAbsDiff(wasm.synthesizer(null, null, v, { ...one, ...options }).data, wasm.synthesizer(null, null, v, { ...repeated, ...options }).data)).toBe(0);
    }
  });

  it('causal never sees the future: changing later values or logits changes no earlier output', () => {
    const [Nq, Nk] = [24, 24];
    const v = randn([1, 2, Nk, 6], 40);
    const { factors } = synthesizerParams('factorized', { H: 2, Nq, Nk, R: 4 }, 41);
    const before = wasm.synthesizer(null, null, v, { factors, causal: true });
    for (const from of [1, 9, 23]) {
      // later values, and later rows of b (the logits of later keys)
      const b = Float32Array.from(factors.b.data);
      for (let h = 0; h < 2; h++) for (let j = from; j < Nk; j++) for (let r = 0; r < 4; r++) b[(h * Nk + j) * 4 + r] = 7 * Math.sin(j + r);
      const after = wasm.synthesizer(null, null, changeRowsFrom(v, from, 42 + from), { factors: { a: factors.a, b: { data: b, dims: factors.b.dims } }, causal: true });
      expect(maxAbsDiff(rows(before, 0, from), rows(after, 0, from))).toBe(0);
      expect(maxAbsDiff(before.data, after.data)).toBeGreaterThan(0);
    }
  });

  it("padded keys' values never matter; a row that sees no key is zeros", () => {
    const [B, Nq, Nk] = [2, 6, 9];
    const v = randn([B, 1, Nk, 4], 43);
    const logits = randn([Nq, Nk], 44);
    const keyPadding = new Uint8Array([1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const before = wasm.synthesizer(null, null, v, { logits, keyPadding });
    const changed = Float32Array.from(v.data);
    for (let b = 0; b < B; b++) for (let j = 0; j < Nk; j++) if (keyPadding[b * Nk + j] === 0) changed.fill(1e3, (b * Nk + j) * 4, (b * Nk + j + 1) * 4);
    const after = wasm.synthesizer(null, null, { data: changed, dims: v.dims }, { logits, keyPadding });
    expect(maxAbsDiff(before.data, after.data)).toBe(0);
    // batch 1: every key padded
    expect(maxAbsDiff(before.data.subarray(Nq * 4), new Float32Array(Nq * 4))).toBe(0);
    // causal with Nq > Nk: the first Nq - Nk rows see no key
    const early = wasm.synthesizer(null, null, randn([1, 1, 3, 4], 45), { logits: randn([7, 3], 46), causal: true });
    expect(maxAbsDiff(early.data.subarray(0, 4 * 4), new Float32Array(16))).toBe(0);
    expect(early.data.every(Number.isFinite)).toBe(true);
  });

  it('accepts rank 2 and rank 3 values and answers in the same rank', () => {
    const logits = randn([5, 7], 47);
    expect(wasm.synthesizer(null, null, randn([7, 3], 48), { logits }).dims).toEqual([5, 3]);
    const v3 = randn([2, 7, 3], 49);
    const out3 = wasm.synthesizer(null, null, v3, { logits });
    expect(out3.dims).toEqual([2, 5, 3]);
    expect(maxAbsDiff(out3.data, js.synthesizer(null, null, v3, { logits }).data)).toBeLessThanOrEqual(1e-4);
  });

  describe('clear errors through the wasm facade, memory unchanged, the next call works', () => {
    const v = randn([2, 2, 9, 4], 50);
    const check = (options: Record<string, unknown>, kind: typeof TypeError | typeof RangeError, message: RegExp) => {
      const inUse = wasm.memory.inUse;
      expect(() => wasm.synthesizer(null, null, v, options)).toThrow(kind);
      expect(() => wasm.synthesizer(null, null, v, options)).toThrow(message);
      expect(wasm.memory.inUse).toBe(inUse);
      const logits = randn([5, 9], 51);
      expect(maxAbsDiff(wasm.synthesizer(null, null, v, { logits }).data, js.synthesizer(null, null, v, { logits }).data)).toBeLessThanOrEqual(1e-4);
      expect(wasm.memory.inUse).toBe(inUse);
    };

    it('logits whose dims disagree with v', () => {
      check({ logits: randn([5, 8], 52) }, RangeError, /options\.logits\.dims: expected \[H\|1, Nq, Nk\] = \[2\|1, 5, 9\], received \[5, 8\]/);
      check({ logits: randn([3, 5, 9], 53) }, RangeError, /options\.logits\.dims/);
    });

    it('factors whose key axis or rank disagree', () => {
      check({ factors: { a: randn([5, 3], 54), b: randn([8, 3], 55) } }, RangeError, /options\.factors\.b\.dims/);
      check({ factors: { a: randn([5, 3], 54), b: randn([9, 4], 55) } }, RangeError, /options\.factors\.b\.dims/);
      check({ factors: { a: randn([5, 3], 54) } }, TypeError, /options\.factors\.b: required option is missing/);
    });

    it('dense with too few logits per row or another batch', () => {
      const x = randn([2, 5, 3], 56);
      const { dense } = synthesizerParams('dense', { x, Dh: 4, Nmax: 8 }, 57);
      check({ dense }, RangeError, /options\.dense\.w2\.dims: expected Nmax >= Nk = 9/);
      const ok = synthesizerParams('dense', { x: randn([1, 5, 3], 58), Dh: 4, Nmax: 9 }, 59).dense;
      check({ dense: ok }, RangeError, /options\.dense\.x\.dims: expected \[B, Nq, Dm\] = \[2, 5, 3\]/);
    });

    it('not exactly one form', () => {
      check({}, TypeError, /options\.logits: required option is missing/);
      check({ logits: randn([5, 9], 60), factors: { a: randn([5, 3], 61), b: randn([9, 3], 62) } }, RangeError, /cannot be combined/);
    });
  });
});
