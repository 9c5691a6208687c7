import { describe, expect, test } from 'vitest';
import { loadGolden, maxAbsDiff } from './golden.js';
import { padding, randn, type T } from './random.js';
import { readInputs } from '../src/inputs.js';
import { Rng } from '../src/prng.js';
import { LinearRecurrentState } from '../src/reference/linear.js';
import { full } from '../src/variants/full.js';
import { favorProjection, linear, rfaProjection } from '../src/variants/linear.js';
import type { Lookup } from '../src/variants/variant.js';

const lookup: Lookup = (name) => {
  throw new Error(`no lookup expected, asked for ${name}`);
};

function run(q: T, k: T, v: T, options: Record<string, unknown>): Float32Array {
  const inputs = readInputs(linear, q, k, v, true);
  return linear.reference(inputs, linear.parse(inputs, options, lookup));
}

function weightsOf(q: T, k: T, options: Record<string, unknown>): Float32Array {
  const inputs = readInputs(linear, q, k, null, false);
  return linear.weights(inputs, linear.parse(inputs, options, lookup)).data;
}

/** Rows [from, to) of every (batch, head) of a [B, H, N, D] tensor. */
function rows(t: T, from: number, to: number): T {
  const [B, H, N, D] = t.dims;
  return { data: t.data.filter((_, i) => Math.floor(i / D) % N >= from && Math.floor(i / D) % N < to), dims: [B, H, to - from, D] };
}

/** Head h's slice of a `projection` option, as [M, D]. */
function headOptions(options: Record<string, unknown>, h: number): Record<string, unknown> {
  const w = options.projection as T | undefined;
  if (!w || w.dims[0] === 1) return options;
  const size = w.data.length / w.dims[0];
  return { ...options, projection: { data: w.data.slice(h * size, (h + 1) * size), dims: w.dims.slice(1) } };
}

/** The [1, 1, N', D] tensor of the rows of batch b, head h whose indices pass `keep`. */
function pick(t: T, b: number, h: number, keep: (j: number) => boolean): T {
  const [, H, N, D] = t.dims;
  const out: number[] = [];
  for (let j = 0; j < N; j++) if (keep(j)) out.push(...t.data.subarray(((b * H + h) * N + j) * D, ((b * H + h) * N + j + 1) * D));
  return { data: Float32Array.from(out), dims: [1, 1, out.length / D, D] };
}

/** A favor projection [H, M, D] whose projections `w . sqrt(scale) x` of unit-normal x reach about +-30 and beyond. */
function bigProjection(H: number, M: number, D: number, seed: number): T {
  return randn([H, M, D], seed, 9);
}

/** The largest |w_m . sqrt(scale) x| over every row x of `x` and every projection row w_m of its head. */
function largestProjection(x: T, w: T, scale: number): number {
  const [B, H, N, D] = x.dims;
  const M = w.dims[1];
  let largest = 0;
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += w.data[(h * M + m) * D + d] * Math.sqrt(scale) * x.data[((b * H + h) * N + n) * D + d];
    largest = Math.max(largest, Math.abs(dot));
  }
  return largest;
}

/** The option sets every property runs over, with projections for inputs of H heads of size D. */
function featureMaps(D: number, H: number): Record<string, Record<string, unknown>> {
  return {
    elu: { featureMap: 'elu' },
    relu: { featureMap: 'relu' },
    favor: { featureMap: 'favor', projection: randn([H, 16, D], 101) },
    'favor +-30': { featureMap: 'favor', projection: bigProjection(H, 16, D, 102) },
    rfa: { featureMap: 'rfa', projection: randn([1, 32, D], 103) },
  };
}

describe('golden vectors (test/golden/linear.json)', () => {
  test.each(loadGolden('linear.json').map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const inputs = readInputs(linear, c.q, c.k, c.v, true);
    const out = linear.reference(inputs, linear.parse(inputs, c.options, lookup));
    expect(maxAbsDiff(out, c.expected.data)).toBeLessThanOrEqual(1e-4);
  });
});

describe('brute force: out_i = sum_j (phi(q_i).phi(k_j)) v_j / (sum_j phi(q_i).phi(k_j) + eps)', () => {
  // phi straight from the SPEC, in float64 without any stabilisation (fine for |w.x'| <= ~300)
  function phi(x: Float32Array, options: Record<string, unknown>, h: number, D: number): number[] {
    const map = options.featureMap as string;
    if (map === 'elu') return [...x].map((a) => (a > 0 ? a + 1 : Math.exp(a)));
    if (map === 'relu') return [...x].map((a) => Math.max(a, 0));
    const w = options.projection as T;
    const M = w.dims[w.dims.length - 2];
    const wh = w.dims.length === 3 && w.dims[0] > 1 ? h : 0;
    const proj = (y: number[]) => Array.from({ length: M }, (_, m) => y.reduce((s, yd, d) => s + w.data[(wh * M + m) * D + d] * yd, 0));
    if (map === 'favor') {
      const xs = [...x].map((a) => Math.sqrt(1 / Math.sqrt(D)) * a);
      const half = xs.reduce((s, a) => s + a * a, 0) / 2;
      return proj(xs).map((p) => Math.exp(p - half) / Math.sqrt(M));
    }
    const norm = Math.max(Math.hypot(...x), 1e-12);
    const wx = proj([...x].map((a) => a / norm));
    return [...wx.map(Math.sin), ...wx.map(Math.cos)].map((a) => a / Math.sqrt(M));
  }

  function bruteForce(q: T, k: T, v: T, options: Record<string, unknown>, causal: boolean, pad: Uint8Array, eps: number): Float32Array {
    const [B, H, N, D] = q.dims;
    const out = new Float32Array(B * H * N * D);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
      const at = (t: T, n: number) => t.data.subarray(((b * H + h) * N + n) * D, ((b * H + h) * N + n + 1) * D);
      for (let i = 0; i < N; i++) {
        const pq = phi(at(q, i), options, h, D);
        const num = new Array<number>(D).fill(0);
        let den = eps;
        for (let j = 0; j < N; j++) {
          if ((causal && j > i) || pad[b * N + j] === 0) continue;
          const pk = phi(at(k, j), options, h, D);
          const a = pq.reduce((s, x, f) => s + x * pk[f], 0);
          den += a;
          at(v, j).forEach((x, e) => (num[e] += a * x));
        }
        num.forEach((x, e) => (out[((b * H + h) * N + i) * D + e] = x / den));
      }
    }
    return out;
  }

  const [B, H, N, D] = [2, 2, 13, 8];
  const q = randn([B, H, N, D], 1);
  const k = randn([B, H, N, D], 2);
  const v = randn([B, H, N, D], 3);
  const pad = padding(B, N, 4);
  for (const [name, options] of Object.entries(featureMaps(D, H))) {
    for (const causal of [false, true]) {
      // eps = 0.5 is large enough that a stabilised implementation must rescale it exactly
      test.each([1e-6, 0.5])(`${name}, causal ${causal}, eps %s`, (eps) => {
        const out = run(q, k, v, { ...options, causal, eps, keyPadding: pad });
        expect(maxAbsDiff(out, bruteForce(q, k, v, options, causal, pad, eps))).toBeLessThanOrEqual(1e-5);
      });
    }
  }

  test('the +-30 favor case really reaches |w . x\'| >= 30', () => {
    const w = featureMaps(D, H)['favor +-30'].projection as T;
    expect(largestProjection(q, w, 1 / Math.sqrt(D))).toBeGreaterThanOrEqual(30);
    expect(largestProjection(k, w, 1 / Math.sqrt(D))).toBeGreaterThanOrEqual(30);
  });
});

describe('recurrent state', () => {
  const [B, H, N, D] = [2, 2, 17, 8];
  const q = randn([B, H, N, D], 11);
  const k = randn([B, H, N, D], 12);
  const v = randn([B, H, N, D], 13);
  const pad = padding(B, N, 14);

  /** Steps a state over the sequence: out as [B, H, N, Dv]. */
  function stepAll(state: LinearRecurrentState, keys: T, withPadding: boolean): Float32Array {
    const out = new Float32Array(B * H * N * D);
    const token = (t: T, n: number) => {
      const x = new Float32Array(B * H * D);
      for (let s = 0; s < B * H; s++) x.set(t.data.subarray((s * N + n) * D, (s * N + n + 1) * D), s * D);
      return x;
    };
    for (let n = 0; n < N; n++) {
      const keyPadding = withPadding ? Uint8Array.from({ length: B }, (_, b) => pad[b * N + n]) : null;
      const o = state.step(token(q, n), token(keys, n), token(v, n), keyPadding);
      for (let s = 0; s < B * H; s++) out.set(o.subarray(s * D, (s + 1) * D), (s * N + n) * D);
    }
    return out;
  }

  for (const [name, options] of Object.entries(featureMaps(D, H))) {
    test(`${name}: stepping equals the causal batch output, padded or not, and reset() starts over`, () => {
      const inputs = readInputs(linear, q, k, v, true);
      const parsed = linear.parse(inputs, { ...options, causal: true }, lookup);
      const state = new LinearRecurrentState(parsed, parsed.problem);
      const stepped = stepAll(state, k, false);
      expect(stepped.every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(stepped, linear.reference(inputs, parsed))).toBeLessThanOrEqual(1e-5);

      state.reset();
      const padded = stepAll(state, k, true);
      expect(maxAbsDiff(padded, run(q, k, v, { ...options, causal: true, keyPadding: pad }))).toBeLessThanOrEqual(1e-5);
    });
  }

  test('favor with key projections that grow over time keeps a finite, exact state', () => {
    // keys scaled up along the sequence: every step raises the running maximum
    const grown = { data: k.data.map((x, i) => x * (1 + 3 * ((Math.floor(i / D) % N) / N))), dims: k.dims };
    const options = { featureMap: 'favor', projection: bigProjection(H, 16, D, 15), causal: true };
    const inputs = readInputs(linear, q, grown, v, true);
    const parsed = linear.parse(inputs, options, lookup);
    const stepped = stepAll(new LinearRecurrentState(parsed, parsed.problem), grown, false);
    expect(stepped.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(stepped, linear.reference(inputs, parsed))).toBeLessThanOrEqual(1e-5);
  });

  test('a step before any real key outputs zeros, even with eps = 0', () => {
    const inputs = readInputs(linear, q, k, v, true);
    const parsed = linear.parse(inputs, { causal: true, eps: 0 }, lookup);
    const state = new LinearRecurrentState(parsed, parsed.problem);
    const x = new Float32Array(B * H * D).fill(1);
    expect([...state.step(x, x, x, new Uint8Array(B))]).toEqual(new Array(B * H * D).fill(0));
  });

  test('rejects efficient and wrongly sized tokens', () => {
    const inputs = readInputs(linear, q, k, v, true);
    const parsed = linear.parse(inputs, { featureMap: 'efficient' }, lookup);
    expect(() => new LinearRecurrentState(parsed, parsed.problem)).toThrow(/options\.featureMap/);
    const state = new LinearRecurrentState(linear.parse(inputs, { causal: true }, lookup), parsed.problem);
    const x = new Float32Array(B * H * D);
    expect(() => state.step(x, x, new Float32Array(3))).toThrow(RangeError);
    expect(() => state.step(x, x, new Float32Array(3))).toThrow(/^v: expected 32 values/);
  });
});

describe('causal', () => {
  const [B, H, N, D] = [1, 2, 15, 8];
  const q = randn([B, H, N, D], 21);
  const k = randn([B, H, N, D], 22);
  const v = randn([B, H, N, D], 23);

  for (const [name, options] of Object.entries(featureMaps(D, H))) {
    test(`${name}: changing future tokens changes no earlier output`, () => {
      const t = 6; // rows 0..t keep their inputs
      const later = (x: T, seed: number) => {
        const noise = randn(x.dims, seed, 3);
        return { data: x.data.map((a, i) => (Math.floor(i / D) % N > t ? noise.data[i] : a)), dims: x.dims };
      };
      const before = run(q, k, v, { ...options, causal: true });
      const after = run(later(q, 24), later(k, 25), later(v, 26), { ...options, causal: true });
      let early = 0;
      let late = 0;
      for (let i = 0; i < before.length; i++) {
        const diff = Math.abs(before[i] - after[i]);
        if (Math.floor(i / D) % N <= t) early = Math.max(early, diff);
        else late = Math.max(late, diff);
      }
      expect(early).toBeLessThanOrEqual(1e-6);
      expect(late).toBeGreaterThan(1e-3);
    });
  }

  test('bottom-right aligned: Nq < Nk queries give the last rows of the square problem', () => {
    for (const options of Object.values(featureMaps(D, H))) {
      const square = { data: run(q, k, v, { ...options, causal: true }), dims: q.dims };
      const decoding = run(rows(q, N - 4, N), k, v, { ...options, causal: true });
      expect(maxAbsDiff(decoding, rows(square, N - 4, N).data)).toBeLessThanOrEqual(1e-6);
    }
  });

  test('rows that see no key (Nq > Nk) output zeros, even with eps = 0', () => {
    for (const options of Object.values(featureMaps(D, H))) {
      // 15 queries over 5 keys: query i sits at position i - 10, so rows 0..9 see nothing
      const out = { data: run(q, rows(k, 0, 5), rows(v, 0, 5), { ...options, causal: true, eps: 0 }), dims: q.dims };
      expect(rows(out, 0, 10).data.every((x) => x === 0)).toBe(true);
      expect(rows(out, 10, N).data.some((x) => x !== 0)).toBe(true);
      expect(out.data.every(Number.isFinite)).toBe(true);
    }
  });
});

describe('FAVOR+ approximates softmax attention', () => {
  test('M = 4096 orthogonal features: mean abs error < 0.05 against full softmax (N = 64, D = 16)', () => {
    const [N, D] = [64, 16];
    const q = randn([1, 1, N, D], 31, 0.5);
    const k = randn([1, 1, N, D], 32, 0.5);
    const v = randn([1, 1, N, D], 33);
    const projection = favorProjection(4096, D, 34);
    for (const causal of [false, true]) {
      const approx = run(q, k, v, { featureMap: 'favor', projection, causal });
      const inputs = readInputs(full, q, k, v, true);
      const exact = full.reference(inputs, full.parse(inputs, { causal }, lookup));
      const mean = approx.reduce((s, x, i) => s + Math.abs(x - exact[i]), 0) / approx.length;
      expect(mean).toBeLessThan(0.05);
    }
  });
});

describe('key padding', () => {
  const [B, H, N, D] = [2, 2, 14, 8];
  const q = randn([B, H, N, D], 41);
  const k = randn([B, H, N, D], 42);
  const v = randn([B, H, N, D], 43);
  const pad = padding(B, N, 44, 0.4);
  const maps = { ...featureMaps(D, H), efficient: { featureMap: 'efficient' } };

  for (const [name, options] of Object.entries(maps)) {
    const causals = name === 'efficient' ? [false] : [false, true];
    for (const causal of causals) {
      test(`${name}, causal ${causal}: padded keys change nothing (same as dropping them)`, () => {
        const out = run(q, k, v, { ...options, causal, keyPadding: pad });
        for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
          for (let i = 0; i < N; i++) {
            // query i alone, not causal, against only the real keys it may see
            const keep = (j: number) => pad[b * N + j] === 1 && (!causal || j <= i);
            const expected = run(pick(q, b, h, (j) => j === i), pick(k, b, h, keep), pick(v, b, h, keep), headOptions(options, h));
            const got = out.subarray(((b * H + h) * N + i) * D, ((b * H + h) * N + i + 1) * D);
            expect(maxAbsDiff(got, expected)).toBeLessThanOrEqual(1e-5);
          }
        }
      });
    }
  }

  test('a batch whose keys are all padding outputs zeros, for every map, even with eps = 0', () => {
    const allPadded = Uint8Array.from({ length: B * N }, (_, i) => (i < N ? 1 : 0));
    for (const options of Object.values(maps)) {
      const out = run(q, k, v, { ...options, keyPadding: allPadded, eps: 0 });
      expect([...out.subarray(H * N * D)].every((x) => x === 0)).toBe(true);
      expect(out.every(Number.isFinite)).toBe(true);
    }
  });
});

describe('weights()', () => {
  const [B, H, Nq, Nk, D] = [2, 2, 9, 12, 8];
  const q = randn([B, H, Nq, D], 51);
  const k = randn([B, H, Nk, D], 52);
  const v = randn([B, H, Nk, 5], 53);
  const pad = padding(B, Nk, 54);
  const maps = { ...featureMaps(D, H), efficient: { featureMap: 'efficient' } };

  for (const [name, options] of Object.entries(maps)) {
    for (const causal of name === 'efficient' ? [false] : [false, true]) {
      test(`${name}, causal ${causal}: P · v equals the output, and P is 0 where keys are hidden`, () => {
        const all = { ...options, causal, keyPadding: pad };
        const P = weightsOf(q, k, all);
        const out = run(q, k, v, all);
        const Pv = new Float64Array(out.length);
        for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Nq; i++) for (let j = 0; j < Nk; j++) {
          const p = P[((b * H + h) * Nq + i) * Nk + j];
          if (pad[b * Nk + j] === 0 || (causal && j > i + Nk - Nq)) expect(p).toBe(0);
          for (let e = 0; e < 5; e++) Pv[((b * H + h) * Nq + i) * 5 + e] += p * v.data[((b * H + h) * Nk + j) * 5 + e];
        }
        expect(maxAbsDiff(Pv, out)).toBeLessThanOrEqual(1e-5);
      });
    }
  }

  test('efficient rows sum to 1 over the real keys', () => {
    const P = weightsOf(q, k, { featureMap: 'efficient', keyPadding: pad });
    for (let r = 0; r < B * H * Nq; r++) expect(P.subarray(r * Nk, (r + 1) * Nk).reduce((s, x) => s + x, 0)).toBeCloseTo(1, 6);
  });
});

describe('seeded projections', () => {
  test('favorProjection: [M, D], rows of each block orthogonal, lengths from the documented draws', () => {
    for (const [M, D] of [[20, 8], [5, 8], [16, 16]] as const) {
      const { data, dims } = favorProjection(M, D, 7);
      expect(dims).toEqual([M, D]);
      const row = (m: number) => data.subarray(m * D, (m + 1) * D);
      const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, d) => s + x * b[d], 0);
      for (let a = 0; a < M; a++) {
        for (let b = a + 1; b < M && Math.floor(b / D) === Math.floor(a / D); b++) {
          expect(Math.abs(dot(row(a), row(b))) / Math.sqrt(dot(row(a), row(a)) * dot(row(b), row(b)))).toBeLessThan(1e-6);
        }
      }
      // the norms are the norms of M fresh Gaussian D-vectors drawn after ceil(M / D) blocks of D x D
      const rng = new Rng(7);
      for (let i = 0; i < Math.ceil(M / D) * D * D; i++) rng.normal();
      for (let m = 0; m < M; m++) {
        const norm = Math.hypot(...Array.from({ length: D }, () => rng.normal()));
        expect(Math.sqrt(dot(row(m), row(m))) / norm).toBeCloseTo(1, 6);
      }
    }
  });

  test('favorProjection blocks differ from each other (M > D draws fresh blocks)', () => {
    const { data } = favorProjection(16, 8, 3);
    const cosine = (a: number, b: number) => {
      const x = data.subarray(a * 8, a * 8 + 8);
      const y = data.subarray(b * 8, b * 8 + 8);
      return x.reduce((s, v, d) => s + v * y[d], 0) / Math.sqrt(x.reduce((s, v) => s + v * v, 0) * y.reduce((s, v) => s + v * v, 0));
    };
    expect(Math.abs(cosine(0, 8))).toBeGreaterThan(1e-3);
  });

  test('rfaProjection: M x D draws of N(0, sigma^2), row-major', () => {
    const { data, dims } = rfaProjection(6, 4, 9, 2);
    expect(dims).toEqual([6, 4]);
    const rng = new Rng(9);
    expect(maxAbsDiff(data, Float32Array.from({ length: 24 }, () => 2 * rng.normal()))).toBe(0);
  });

  test('draws are reproducible, and a different seed draws different rows', () => {
    expect(favorProjection(12, 8, 5).data).toEqual(favorProjection(12, 8, 5).data);
    expect(favorProjection(12, 8, 5).data).not.toEqual(favorProjection(12, 8, 6).data);
    expect(rfaProjection(12, 8, 5, 1).data).toEqual(rfaProjection(12, 8, 5, 1).data);
    expect(rfaProjection(12, 8, 5, 1).data).not.toEqual(rfaProjection(12, 8, 6, 1).data);
  });

  test('numFeatures + seed (+ sigma) is the same as passing the drawn projection', () => {
    const q = randn([1, 2, 10, 8], 61);
    const k = randn([1, 2, 10, 8], 62);
    const v = randn([1, 2, 10, 8], 63);
    expect(run(q, k, v, { featureMap: 'favor', numFeatures: 12, seed: 4 })).toEqual(run(q, k, v, { featureMap: 'favor', projection: favorProjection(12, 8, 4) }));
    expect(run(q, k, v, { featureMap: 'rfa', numFeatures: 12, seed: 4, sigma: 0.5 })).toEqual(run(q, k, v, { featureMap: 'rfa', projection: rfaProjection(12, 8, 4, 0.5) }));
    expect(run(q, k, v, { featureMap: 'rfa', numFeatures: 12, seed: 4 })).toEqual(run(q, k, v, { featureMap: 'rfa', projection: rfaProjection(12, 8, 4, 1) }));
  });
});

describe('validation', () => {
  const q = randn([1, 2, 6, 8], 71);
  const v = randn([1, 2, 6, 4], 72);
  const parse = (options: Record<string, unknown>) => () => linear.parse(readInputs(linear, q, q, v, true), options, lookup);
  const cases: [string, Record<string, unknown>, typeof TypeError | typeof RangeError, RegExp][] = [
    ['unknown featureMap', { featureMap: 'softmax' }, RangeError, /^options\.featureMap: expected one of 'elu', .*received "softmax"/],
    ['featureMap not a string', { featureMap: 3 }, TypeError, /^options\.featureMap: .*received 3/],
    ['causal efficient', { featureMap: 'efficient', causal: true }, RangeError, /^options\.causal: .*efficient.*received true/],
    ['projection D disagrees', { featureMap: 'favor', projection: randn([2, 16, 7], 1) }, RangeError, /^options\.projection\.dims: expected \[H\|1, M, D\] = \[2\|1, 16, 8\], received \[2, 16, 7\]/],
    ['projection head count disagrees', { featureMap: 'rfa', projection: randn([3, 16, 8], 1) }, RangeError, /^options\.projection\.dims: .*received \[3, 16, 8\]/],
    ['projection without rows', { featureMap: 'favor', projection: { data: new Float32Array(0), dims: [0, 8] } }, RangeError, /^options\.projection\.dims: expected at least one feature/],
    ['projection not a tensor', { featureMap: 'favor', projection: 5 }, TypeError, /^options\.projection: expected a tensor/],
    ['numFeatures < 1', { featureMap: 'favor', numFeatures: 0, seed: 1 }, RangeError, /^options\.numFeatures: expected an integer >= 1, received 0/],
    ['numFeatures not an integer', { featureMap: 'rfa', numFeatures: 2.5, seed: 1 }, TypeError, /^options\.numFeatures: expected an integer, received 2.5/],
    ['favor without projection or numFeatures', { featureMap: 'favor' }, TypeError, /^options\.projection: featureMap 'favor' needs .*numFeatures.*received neither/],
    ['rfa without projection or numFeatures', { featureMap: 'rfa' }, TypeError, /^options\.projection: featureMap 'rfa' needs/],
    ['numFeatures without seed', { featureMap: 'favor', numFeatures: 8 }, TypeError, /^options\.seed: required/],
    ['seed not an integer', { featureMap: 'favor', numFeatures: 8, seed: 0.5 }, TypeError, /^options\.seed: expected an integer seed, received 0.5/],
    ['projection and numFeatures', { featureMap: 'favor', projection: randn([16, 8], 1), numFeatures: 16 }, RangeError, /^options\.numFeatures: .*options\.projection is given.*received numFeatures = 16/],
    ['sigma with favor', { featureMap: 'favor', numFeatures: 8, seed: 1, sigma: 2 }, RangeError, /^options\.sigma: only featureMap 'rfa'.*received sigma = 2/],
    ['sigma <= 0', { featureMap: 'rfa', numFeatures: 8, seed: 1, sigma: 0 }, RangeError, /^options\.sigma: expected a finite number > 0, received 0/],
    ['projection with elu', { projection: randn([16, 8], 1) }, RangeError, /^options\.projection: only featureMap 'favor' or 'rfa'.*featureMap 'elu'/],
    ['numFeatures with efficient', { featureMap: 'efficient', numFeatures: 4 }, RangeError, /^options\.numFeatures: only featureMap 'favor' or 'rfa'/],
    ['negative eps', { eps: -1 }, RangeError, /^options\.eps: expected a finite number >= 0, received -1/],
    ['eps not a number', { eps: '1e-6' }, TypeError, /^options\.eps: expected a finite number, received "1e-6"/],
    ['negative scale with favor', { featureMap: 'favor', numFeatures: 4, seed: 1, scale: -1 }, RangeError, /^options\.scale: .*received -1/],
  ];
  test.each(cases)('%s', (_name, options, type, message) => {
    expect(parse(options)).toThrow(type);
    expect(parse(options)).toThrow(message);
  });

  test('accepted projection forms: [M, D], [1, M, D], [H, M, D]', () => {
    for (const dims of [[16, 8], [1, 16, 8], [2, 16, 8]]) expect(parse({ featureMap: 'favor', projection: randn(dims, 1) })).not.toThrow();
  });

  test('weights() parses without v (Dv = D)', () => {
    const inputs = readInputs(linear, q, q, null, false);
    expect(linear.parse(inputs, {}, lookup).problem).toEqual({ B: 1, H: 2, Hkv: 2, Nq: 6, Nk: 6, D: 8, Dv: 8 });
  });
});
