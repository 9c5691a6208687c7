// `linformer` and `compressed` on the WebAssembly backend against the plain-JS
// float64 reference, and the properties of issue 4 through the facade.
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention } from '../dist/index.js';
import { maxAbsDiff } from './golden.js';
import { changePaddedRows, padding, randn, repeatHeads, type T } from './random.js';

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



/** Rows [from, to) of every batch and head of x `[B, H, N, D]`, as `[B, H, to - from, D]`. */
function rows(x: { data: Float32Array; dims: readonly number[] }, from: number, to: number): Float32Array {
  const [B, H, N, D] = x.dims;
  const out = new Float32Array(B * H * (to - from) * D);
  for (let bh = 0; bh < B * H; bh++) out.set(x.data.subarray((bh * N + from) * D, (bh * N + to) * D), bh * (to - from) * D);
  return out;
}

/** A projection `[H|1, P, N]` with entries of about 1/sqrt(N), so that K' stays of unit scale. */
function projection(dims: number[], seed: number): T {
  return randn(dims, seed, 1 / Math.sqrt(dims[dims.length - 1]));
}

/** Conv1d weights `[...lead, Dx, Dx, s]` of unit output scale. */
function convWeight(lead: number[], Dx: number, s: number, seed: number): T {
  return randn([...lead, Dx, Dx, s], seed, 1 / Math.sqrt(Dx * s));
}

describe('linformer: wasm kernel vs JS reference', () => {
  const shapes = [
    // [B, H, Nq, Nk, D, Dv, P]
    [1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 7, 3, 5, 2],
    [1, 2, 13, 13, 7, 7, 20], // P > Nk
    [2, 3, 17, 29, 16, 16, 5], // P < Nk
    [1, 1, 37, 70, 64, 64, 32],
    [2, 1, 5, 29, 8, 3, 29],
    [1, 2, 29, 5, 12, 20, 3],
    [1, 1, 130, 300, 33, 9, 67],
  ];
  for (const [B, H, Nq, Nk, D, Dv, P] of shapes) {
    for (const form of ['shared e', 'per-head e, shared f', 'per-head e and f'] as const) {
      for (const padded of [false, true]) {
        it(`B=${B} H=${H} Nq=${Nq} Nk=${Nk} D=${D} Dv=${Dv} P=${P} ${form} padded=${padded}`, () => {
          const seed = B * 1000 + H * 100 + Nq + Nk * 7 + D * 13 + Dv + P * 31;
          const q = randn([B, H, Nq, D], seed);
          const k = randn([B, H, Nk, D], seed + 1);
          const v = randn([B, H, Nk, Dv], seed + 2);
          const e = projection(form === 'shared e' ? [P, Nk] : [H, P, Nk], seed + 3);
          const f = form === 'shared e' ? undefined : projection(form === 'per-head e and f' ? [H, P, Nk] : [1, P, Nk], seed + 4);
          const options = { e, ...(f ? { f } : {}), ...(padded ? { keyPadding: padding(B, Nk, seed + 5) } : {}) };
          const got = wasm.linformer(q, k, v, options);
          expect(got.dims).toEqual([B, H, Nq, Dv]);
          expect(maxAbsDiff(got.data, js.linformer(q, k, v, options).data)).toBeLessThanOrEqual(1e-4);
        });
      }
    }
  }

  it('honours scale', () => {
    const q = randn([1, 2, 21, 16], 1);
    const k = randn([1, 2, 40, 16], 2);
    const e = projection([9, 40], 3);
    for (const scale of [0.01, 1, 3]) {
      const got = wasm.linformer(q, k, k, { e, scale });
      expect(got.data.every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(got.data, js.linformer(q, k, k, { e, scale }).data)).toBeLessThanOrEqual(1e-4);
    }
  });

  it('a long sequence splits the projection and the rows across calls, and matches the reference', () => {
    // Nk D = 9000 * 64 floats per projected row: the projection runs in chunks of 32 of its 70 rows;
    // 1100 queries over 70 rows run as one chunk, 600 over 256 rows of 128 columns in two
    const Nk = 9000;
    const q = randn([1, 1, 1100, 64], 6);
    const k = randn([1, 1, Nk, 64], 7);
    const v = randn([1, 1, Nk, 64], 8);
    const e = projection([70, Nk], 9);
    for (const extra of [{}, { keyPadding: padding(1, Nk, 10) }]) {
      expect(maxAbsDiff(wasm.linformer(q, k, v, { e, ...extra }).data, js.linformer(q, k, v, { e, ...extra }).data)).toBeLessThanOrEqual(1e-4);
    }
    const e256 = projection([256, 600], 11);
    const q2 = randn([1, 1, 600, 64], 12);
    const k2 = randn([1, 1, 600, 64], 13);
    expect(maxAbsDiff(wasm.linformer(q2, k2, k2, { e: e256 }).data, js.linformer(q2, k2, k2, { e: e256 }).data)).toBeLessThanOrEqual(1e-4);
  });
});

describe('linformer: properties through the wasm facade', () => {
  it('e = f = identity (P = Nk) is full attention', () => {
    const Nk = 23;
    const eye = new Float32Array(Nk * Nk);
    for (let j = 0; j < Nk; j++) eye[j * Nk + j] = 1;
    const q = randn([2, 2, 17, 8], 20);
    const k = randn([2, 2, Nk, 8], 21);
    const v = randn([2, 2, Nk, 6], 22);
    const got = wasm.linformer(q, k, v, { e: { data: eye, dims: [Nk, Nk] } });
    expect(maxAbsDiff(got.data, wasm.full(q, k, v).data)).toBeLessThanOrEqual(1e-5);
  });

  it('f defaults to e', () => {
    const q = randn([1, 3, 11, 8], 23);
    const k = randn([1, 3, 19, 8], 24);
    const v = randn([1, 3, 19, 5], 25);
    const e = projection([3, 7, 19], 26);
    expect(maxAbsDiff(wasm.linformer(q, k, v, { e }).data, wasm.linformer(q, k, v, { e, f: e }).data)).toBe(0);
    const f = projection([3, 7, 19], 27);
    expect(maxAbsDiff(wasm.linformer(q, k, v, { e }).data, wasm.linformer(q, k, v, { e, f }).data)).toBeGreaterThan(1e-3);
  });

  it('a head axis of 1 broadcasts like an explicitly repeated head axis', () => {
    const q = randn([2, 3, 9, 8], 28);
    const k = randn([2, 3, 14, 8], 29);
    const e = projection([1, 5, 14], 30);
    const f = projection([5, 14], 31);
    const one = wasm.linformer(q, k, k, { e, f });
    const repeated = wasm.linformer(q, k, k, { e: repeatHeads(e, 3), f: repeatHeads({ data: f.data, dims: [1, 5, 14] }, 3) });
    expect(maxAbsDiff(one.data, repeated.data)).toBe(0);
  });

  it('padded keys and values are zeroed before projection: their values never matter', () => {
    const B = 2;
    const Nk = 31;
    const q = randn([B, 2, 12, 8], 32);
    const k = randn([B, 2, Nk, 8], 33);
    const v = randn([B, 2, Nk, 8], 34);
    const keyPadding = padding(B, Nk, 35, 0.4);
    const e = projection([2, 6, Nk], 36);
    const before = wasm.linformer(q, k, v, { e, keyPadding });
    const after = wasm.linformer(q, changePaddedRows(k, keyPadding, 37), changePaddedRows(v, keyPadding, 38), { e, keyPadding });
    expect(maxAbsDiff(before.data, after.data)).toBe(0);
    // and padding does change the result (the padded rows were real keys before)
    expect(maxAbsDiff(before.data, wasm.linformer(q, k, v, { e }).data)).toBeGreaterThan(1e-3);
  });

  it('causal throws, and the instance stays usable with its memory where it was', () => {
    const q = randn([1, 1, 5, 4], 39);
    const e = projection([3, 5], 40);
    const inUse = wasm.memory.inUse;
    expect(() => wasm.linformer(q, q, q, { e, causal: true })).toThrow(RangeError);
    expect(() => wasm.linformer(q, q, q, { e: projection([3, 6], 41) })).toThrow(/options\.e\.dims/);
    expect(wasm.memory.inUse).toBe(inUse);
    expect(maxAbsDiff(wasm.linformer(q, q, q, { e }).data, js.linformer(q, q, q, { e }).data)).toBeLessThanOrEqual(1e-4);
    expect(wasm.memory.inUse).toBe(inUse);
  });

  it('accepts rank 2 and rank 3 inputs and answers in the same rank', () => {
    const q2 = randn([11, 6], 42);
    const e = projection([4, 11], 43);
    expect(wasm.linformer(q2, q2, q2, { e }).dims).toEqual([11, 6]);
    const q3 = randn([2, 11, 6], 44);
    const out3 = wasm.linformer(q3, q3, q3, { e });
    expect(out3.dims).toEqual([2, 11, 6]);
    expect(maxAbsDiff(out3.data, js.linformer(q3, q3, q3, { e }).data)).toBeLessThanOrEqual(1e-4);
  });
});

describe('compressed: wasm kernel vs JS reference', () => {
  const shapes = [
    // [B, H, Nq, Nk, D, Dv, s]
    [1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 7, 3, 5, 2],
    [1, 2, 13, 13, 7, 7, 3], // N not a multiple of s
    [2, 3, 17, 29, 16, 16, 4],
    [2, 1, 40, 23, 8, 3, 7], // Nq > Nk: the first queries see no complete slot
    [1, 2, 29, 5, 12, 20, 8], // s > Nk: one short slot
    [1, 1, 70, 600, 33, 9, 2], // 300 slots: several key blocks
    [1, 1, 45, 130, 64, 64, 5],
  ];
  const forms = ['mean', 'conv shared', 'conv per head, bias', 'convK only, null slot', 'mean, null slot'] as const;
  for (const [B, H, Nq, Nk, D, Dv, s] of shapes) {
    for (const form of forms) {
      for (const causal of [false, true]) {
        for (const padded of [false, true]) {
          it(`B=${B} H=${H} Nq=${Nq} Nk=${Nk} D=${D} Dv=${Dv} s=${s} ${form} causal=${causal} padded=${padded}`, () => {
            const seed = B * 1000 + H * 100 + Nq + Nk * 7 + D * 13 + Dv + s * 31 + forms.indexOf(form) * 101;
            const q = randn([B, H, Nq, D], seed);
            const k = randn([B, H, Nk, D], seed + 1);
            const v = randn([B, H, Nk, Dv], seed + 2);
            const options: Record<string, unknown> = { factor: s, causal };
            if (padded) options.keyPadding = padding(B, Nk, seed + 3);
            if (form === 'conv shared') {
              options.convK = { weight: convWeight([], D, s, seed + 4) };
              options.convV = { weight: convWeight([], Dv, s, seed + 5) };
            } else if (form === 'conv per head, bias') {
              options.convK = { weight: convWeight([H], D, s, seed + 4), bias: randn([H, D], seed + 6) };
              options.convV = { weight: convWeight([1], Dv, s, seed + 5), bias: randn([Dv], seed + 7) };
            } else if (form === 'convK only, null slot') {
              options.convK = { weight: convWeight([1], D, s, seed + 4), bias: randn([1, D], seed + 6) };
            }
            if (form.endsWith('null slot')) {
              options.nullKey = randn([H, D], seed + 8);
              options.nullValue = randn([Dv], seed + 9);
            }
            const got = wasm.compressed(q, k, v, options);
            expect(got.dims).toEqual([B, H, Nq, Dv]);
            expect(maxAbsDiff(got.data, js.compressed(q, k, v, options).data)).toBeLessThanOrEqual(1e-4);
          });
        }
      }
    }
  }

  it('a long head splits its rows across calls, and matches the reference', () => {
    // 2050 slots of 2 keys x (32 + 32) columns: chunks of 128 query rows
    const q = randn([1, 1, 300, 32], 50);
    const k = randn([1, 1, 4100, 32], 51);
    const v = randn([1, 1, 4100, 32], 52);
    for (const causal of [false, true]) {
      const options = { factor: 2, causal, keyPadding: padding(1, 4100, 53) };
      expect(maxAbsDiff(wasm.compressed(q, k, v, options).data, js.compressed(q, k, v, options).data)).toBeLessThanOrEqual(1e-4);
    }
  });
});

describe('compressed: properties through the wasm facade', () => {
  it('factor 1 with mean pooling is full attention (causal, padded, decoding alignment)', () => {
    for (const [Nq, Nk] of [[19, 19], [7, 26], [1, 33]]) {
      const q = randn([2, 2, Nq, 8], 60 + Nq);
      const k = randn([2, 2, Nk, 8], 61 + Nq);
      const v = randn([2, 2, Nk, 5], 62 + Nq);
      for (const causal of [false, true]) {
        const options = { causal, keyPadding: padding(2, Nk, 63 + Nq) };
        const got = wasm.compressed(q, k, v, { ...options, factor: 1 });
        expect(maxAbsDiff(got.data, wasm.full(q, k, v, options).data)).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  it('causal never sees the future: changing later keys and values changes no earlier output', () => {
    const Nq = 40;
    const q = randn([2, 2, Nq, 8], 70);
    const k = randn([2, 2, Nq, 8], 71);
    const v = randn([2, 2, Nq, 6], 72);
    for (const form of [{}, { convK: { weight: convWeight([], 8, 3, 73) }, convV: { weight: convWeight([], 6, 3, 74) } }]) {
      const options = { factor: 3, causal: true, ...form };
      const before = wasm.compressed(q, k, v, options);
      for (const from of [1, 13, 20, 39]) {
        const after = wasm.compressed(q, changeRowsFrom(k, from, 75 + from), changeRowsFrom(v, from, 76 + from), options);
        // positions < from see only slots made of positions < from
        expect(maxAbsDiff(rows(before, 0, from), rows(after, 0, from))).toBe(0);
        expect(maxAbsDiff(before.data, after.data)).toBeGreaterThan(0);
      }
    }
  });

  it('causal: a query sees a slot only once complete; a decoding step equals the last row of the square problem', () => {
    const N = 22;
    const q = randn([1, 2, N, 8], 77);
    const k = randn([1, 2, N, 8], 78);
    const v = randn([1, 2, N, 8], 79);
    const options = { factor: 4, causal: true };
    const square = wasm.compressed(q, k, v, options);
    // queries at positions 0..2 see no complete slot: zeros
    expect(maxAbsDiff(rows(square, 0, 3), new Float32Array(2 * 3 * 8))).toBe(0);
    // position 3 completes slot 0: the mean of v rows 0..3, alone
    const mean = new Float64Array(8);
    for (let j = 0; j < 4; j++) for (let d = 0; d < 8; d++) mean[d] += v.data[j * 8 + d] / 4;
    expect(maxAbsDiff(square.data.subarray(3 * 8, 4 * 8), mean)).toBeLessThanOrEqual(1e-6);
    for (const last of [N - 1, N - 3]) {
      const one = wasm.compressed({ data: Float32Array.from(rows(q, last, last + 1)), dims: [1, 2, 1, 8] }, { data: Float32Array.from(rows(k, 0, last + 1)), dims: [1, 2, last + 1, 8] }, { data: Float32Array.from(rows(v, 0, last + 1)), dims: [1, 2, last + 1, 8] }, options);
      // the prefix has its own slots (the last one possibly shorter), so compare with the reference on the same prefix
      const want = js.compressed({ data: Float32Array.from(rows(q, last, last + 1)), dims: [1, 2, 1, 8] }, { data: Float32Array.from(rows(k, 0, last + 1)), dims: [1, 2, last + 1, 8] }, { data: Float32Array.from(rows(v, 0, last + 1)), dims: [1, 2, last + 1, 8] }, options);
      expect(maxAbsDiff(one.data, want.data)).toBeLessThanOrEqual(1e-5);
      if (last === N - 1) expect(maxAbsDiff(one.data, rows(square, N - 1, N))).toBeLessThanOrEqual(1e-5);
    }
  });

  it('padded keys and values never matter (mean and convolution); all-padded slots are hidden', () => {
    const B = 2;
    const Nk = 37;
    const q = randn([B, 2, 15, 8], 80);
    const k = randn([B, 2, Nk, 8], 81);
    const v = randn([B, 2, Nk, 8], 82);
    const keyPadding = padding(B, Nk, 83, 0.5);
    // slot 2 of batch 0 (positions 6..8) all padded
    keyPadding.fill(0, 6, 9);
    for (const form of [{}, { convK: { weight: convWeight([2], 8, 3, 84) }, convV: { weight: convWeight([], 8, 3, 85), bias: randn([8], 86) } }]) {
      for (const causal of [false, true]) {
        const options = { factor: 3, keyPadding, causal, ...form };
        const before = wasm.compressed(q, k, v, options);
        const after = wasm.compressed(q, changePaddedRows(k, keyPadding, 87), changePaddedRows(v, keyPadding, 88), options);
        expect(maxAbsDiff(before.data, after.data)).toBe(0);
        expect(maxAbsDiff(before.data, js.compressed(q, k, v, options).data)).toBeLessThanOrEqual(1e-4);
      }
    }
  });

  it('the null slot is always visible: a row that sees no slot returns the null value, else zeros', () => {
    const q = randn([2, 1, 6, 4], 90);
    const k = randn([2, 1, 8, 4], 91);
    const nullValue = randn([4], 92);
    const keyPadding = new Uint8Array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    const options = { factor: 2, keyPadding, nullKey: randn([4], 93), nullValue };
    const out = wasm.compressed(q, k, k, options);
    // batch 1: every key padded, only the null slot is left
    for (let i = 0; i < 6; i++) expect(maxAbsDiff(out.data.subarray((6 + i) * 4, (7 + i) * 4), nullValue.data)).toBeLessThanOrEqual(1e-6);
    const bare = wasm.compressed(q, k, k, { factor: 2, keyPadding });
    expect(maxAbsDiff(bare.data.subarray(24), new Float32Array(24))).toBe(0);
    expect(bare.data.every(Number.isFinite)).toBe(true);
  });

  it('a head axis of 1 broadcasts like an explicitly repeated head axis', () => {
    const H = 3;
    const q = randn([1, H, 10, 4], 94);
    const k = randn([1, H, 17, 4], 95);
    const weight = convWeight([1], 4, 2, 96);
    const bias = randn([1, 4], 97);
    const nullKey = randn([1, 4], 98);
    const one = wasm.compressed(q, k, k, { factor: 2, convK: { weight, bias }, nullKey, nullValue: nullKey });
    const repeated = wasm.compressed(q, k, k, {
      factor: 2,
      convK: { weight: repeatHeads(weight, H), bias: repeatHeads(bias, H) },
      nullKey: repeatHeads(nullKey, H),
      nullValue: nullKey,
    });
    expect(maxAbsDiff(one.data, repeated.data)).toBe(0);
  });

  it('bad options throw and leave memory where it was', () => {
    const q = randn([1, 1, 5, 4], 99);
    const inUse = wasm.memory.inUse;
    expect(() => wasm.compressed(q, q, q, { factor: 0 })).toThrow(RangeError);
    expect(() => wasm.compressed(q, q, q, { factor: 2, convK: { weight: convWeight([], 4, 3, 100) } })).toThrow(/options\.convK\.weight\.dims/);
    expect(() => wasm.compressed(q, q, q, { factor: 2, nullKey: randn([4], 101) })).toThrow(/options\.nullValue/);
    expect(wasm.memory.inUse).toBe(inUse);
    expect(maxAbsDiff(wasm.compressed(q, q, q, { factor: 2 }).data, js.compressed(q, q, q, { factor: 2 }).data)).toBeLessThanOrEqual(1e-4);
  });
});
