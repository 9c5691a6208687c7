/** The plain-JS references of `lsh` and `routing` (SPEC "Clustering"): goldens, properties, validation. */
import { describe, expect, it } from 'vitest';
import { applyWeights, loadGolden, maxAbsDiff } from './golden.js';
import { changedFrom, normalised, padding, randn, type T } from './random.js';
import { readInputs } from '../src/inputs.js';
import { Rng } from '../src/prng.js';
import { asHeads } from '../src/tensor.js';
import { softmaxAttention } from '../src/reference/softmax.js';
import { lshBuckets, lshSortedPositions, sortByBucket } from '../src/reference/lsh.js';
import { topIndices } from '../src/reference/routing.js';
import { full } from '../src/variants/full.js';
import { drawLshRotations, lsh } from '../src/variants/lsh.js';
import { fitRoutingCentroids, routing } from '../src/variants/routing.js';
import type { Lookup, Parsed, Variant } from '../src/variants/variant.js';

const noLookup: Lookup = (name) => {
  throw new Error(`unexpected lookup of ${name}`);
};

/** Output and dense weights of a variant on q, k, v. */
function run<P extends Parsed>(variant: Variant<P>, q: T, k: T | null, v: T, options: Record<string, unknown>) {
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

describe.each([
  ['lsh.json', lsh],
  ['routing.json', routing],
] as const)('%s goldens', (file, variant) => {
  for (const c of loadGolden(file)) {
    it(`${c.name}: within 1e-4, and weights() · v is the output`, () => {
      const { out, weights } = run(variant as Variant<Parsed>, c.q!, c.k, c.v!, c.options);
      expect(maxAbsDiff(out, c.expected.data)).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(applyWeights(weights, c.v!), out)).toBeLessThanOrEqual(1e-5);
    });
  }
});

/**
 * LSH restated from the SPEC with a comparison sort and explicit chunk lists
 * (an independent check of the reference's counting sort and index maths).
 */
function bruteForceLsh(x: T, v: T, rotations: T, c: number, causal: boolean, keyPadding: Uint8Array | null): Float64Array {
  const [B, H, N, D] = x.dims as [number, number, number, number];
  const Dv = v.dims[3];
  const [RH, R, , half] = rotations.dims as [number, number, number, number];
  const scale = 1 / Math.sqrt(D);
  const row = (t: T, bh: number, n: number, size: number) => Array.from(t.data.subarray((bh * N + n) * size, (bh * N + n + 1) * size));
  const dot = (a: number[], b: number[]) => a.reduce((sum, ad, d) => sum + ad * b[d], 0);
  const out = new Float64Array(B * H * N * Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      const xs = Array.from({ length: N }, (_, n) => row(x, bh, n, D));
      const chunks: number[][] = [];
      for (let r = 0; r < R; r++) {
        const hash = xs.map((xi) => {
          const projected = Array.from({ length: half }, (_, m) =>
            xi.reduce((sum, xd, d) => sum + xd * rotations.data[((((RH === 1 ? 0 : h) * R + r) * D + d) * half) + m], 0),
          );
          const scores = [...projected, ...projected.map((p) => -p)];
          return scores.indexOf(Math.max(...scores));
        });
        const order = Array.from({ length: N }, (_, n) => n).sort((i, j) => hash[i] - hash[j] || i - j);
        for (let start = 0; start < N; start += c) chunks.push(order.slice(start, start + c));
      }
      for (let i = 0; i < N; i++) {
        const perRound: { lse: number; o: number[] }[] = [];
        for (let r = 0; r < R; r++) {
          const g = chunks.findIndex((chunk, index) => Math.floor(index / Math.ceil(N / c)) === r && chunk.includes(i));
          const previous = (g - 1 + chunks.length) % chunks.length;
          const keys = previous === g ? chunks[g] : [...chunks[g], ...chunks[previous]];
          const terms: [number, number][] = [];
          for (const j of keys) {
            if (j === i) terms.push([j, -5e4]);
            else if ((!causal || j <= i) && (!keyPadding || keyPadding[b * N + j])) {
              terms.push([j, (scale * dot(xs[i], xs[j])) / Math.max(Math.hypot(...xs[j]), 1e-12)]);
            }
          }
          const max = Math.max(...terms.map(([, l]) => l));
          const lse = max + Math.log(terms.reduce((sum, [, l]) => sum + Math.exp(l - max), 0));
          const o = new Array<number>(Dv).fill(0);
          for (const [j, l] of terms) row(v, bh, j, Dv).forEach((vd, d) => (o[d] += Math.exp(l - lse) * vd));
          perRound.push({ lse, o });
        }
        const max = Math.max(...perRound.map((p) => p.lse));
        const total = max + Math.log(perRound.reduce((sum, p) => sum + Math.exp(p.lse - max), 0));
        for (const { lse, o } of perRound) o.forEach((od, d) => (out[(bh * N + i) * Dv + d] += od * Math.exp(lse - total)));
      }
    }
  }
  return out;
}

describe('lsh', () => {
  const x = randn([2, 2, 27, 6], 11);
  const v = randn([2, 2, 27, 5], 12);
  const rotations = randn([2, 3, 6, 3], 13);

  it('matches a brute-force restatement when N is not a multiple of bucketSize (causal, padded, per-head rotations)', () => {
    const keyPadding = padding(2, 27, 14);
    for (const causal of [false, true]) {
      const { out } = run(lsh, x, null, v, { bucketSize: 5, rotations, causal, keyPadding });
      expect(maxAbsDiff(out, bruteForceLsh(x, v, rotations, 5, causal, keyPadding))).toBeLessThanOrEqual(1e-5);
    }
  });

  it('with one chunk per round, equals full attention over the normalised keys with self hidden', () => {
    const N = 13;
    const q = randn([1, 2, N, 8], 21);
    const values = randn([1, 2, N, 4], 22);
    const keyPadding = padding(1, N, 23);
    const qh = asHeads(q, 'q');
    const kh = asHeads(normalised(q), 'k');
    const vh = asHeads(values, 'v');
    for (const [bucketSize, rounds] of [[N, 1], [N + 4, 3]]) {
      const options = { bucketSize, rounds, buckets: 4, seed: 5, keyPadding };
      const { out } = run(lsh, q, null, values, options);
      const expected = softmaxAttention(qh, kh, vh, { scale: 1 / Math.sqrt(8) }, (b, _h, i, j) => j !== i && keyPadding[b * N + j] === 1);
      expect(maxAbsDiff(out, expected)).toBeLessThanOrEqual(1e-5);
    }
    // Causal: query 0 sees only itself (weight 1 through the fixed self logit), the others their past.
    const { out } = run(lsh, q, null, values, { bucketSize: N, rounds: 2, buckets: 2, seed: 5, causal: true });
    const expected = softmaxAttention(qh, kh, vh, { scale: 1 / Math.sqrt(8) }, (_b, _h, i, j) => j < i);
    for (let bh = 0; bh < 2; bh++) {
      const at = bh * N * 4;
      expect(maxAbsDiff(out.subarray(at, at + 4), values.data.subarray(at, at + 4))).toBeLessThanOrEqual(1e-6);
      expect(maxAbsDiff(out.subarray(at + 4, at + N * 4), expected.subarray(at + 4, at + N * 4))).toBeLessThanOrEqual(1e-5);
    }
  });

  it('sorts positions by (bucket, position) with a stable counting sort', () => {
    expect(Array.from(sortByBucket(Int32Array.from([1, 0, 1, 0, 2, 0]), 4))).toEqual([1, 3, 5, 0, 2, 4]);
    const sorted = lshSortedPositions(asHeads(x, 'q'), { data: rotations.data, headStride: 3 * 6 * 3, rounds: 3, buckets: 6 });
    expect(sorted.length).toBe(2 * 2 * 3 * 27);
    for (let n = 0; n < sorted.length / 27; n++) {
      expect([...sorted.subarray(n * 27, (n + 1) * 27)].sort((a, b) => a - b)).toEqual(Array.from({ length: 27 }, (_, i) => i));
    }
  });

  it('the query itself takes part with the logit -5e4', () => {
    // x1 . x^0 = -1: with scale 5e4 the other key's logit equals the self logit, so both get half.
    const pair = { data: Float32Array.from([1, 0, -1, 0]), dims: [2, 2] };
    const values = { data: Float32Array.from([2, 4]), dims: [2, 1] };
    const { out } = run(lsh, pair, null, values, { bucketSize: 2, rounds: 1, buckets: 2, seed: 0, scale: 5e4 });
    expect(Array.from(out)).toEqual([3, 3]);
  });

  it('breaks hash ties towards the lower bucket', () => {
    // Identity rotations (D = 2, nb = 4): the scores are [x0, x1, -x0, -x1].
    const tied = asHeads({ data: Float32Array.from([0, 0, 1, 1, -1, 0, 0, -2]), dims: [4, 2] }, 'q');
    const identity = { data: Float32Array.from([1, 0, 0, 1]), headStride: 0, rounds: 1, buckets: 4 };
    expect(Array.from(lshBuckets(tied, identity, 0, 0, 0))).toEqual([0, 0, 2, 3]);
  });

  it('causal: no weight on future keys, and future values change no earlier output', () => {
    const options = { bucketSize: 4, rotations, causal: true };
    const { out, weights } = run(lsh, x, null, v, options);
    for (let bh = 0; bh < 4; bh++) {
      for (let i = 0; i < 27; i++) {
        for (let j = i + 1; j < 27; j++) expect(weights.data[(bh * 27 + i) * 27 + j]).toBe(0);
      }
    }
    const later = run(lsh, x, null, changedFrom(v, 15, 99, 3), options).out;
    for (let bh = 0; bh < 4; bh++) {
      expect(maxAbsDiff(out.subarray(bh * 27 * 5, (bh * 27 + 15) * 5), later.subarray(bh * 27 * 5, (bh * 27 + 15) * 5))).toBe(0);
    }
  });

  it('padded keys get no weight except a query alone with itself', () => {
    const keyPadding = padding(2, 27, 31, 0.5);
    const { out, weights } = run(lsh, x, null, v, { bucketSize: 3, rotations, keyPadding });
    for (let b = 0; b < 2; b++) {
      for (let bh = b * 2; bh < b * 2 + 2; bh++) {
        for (let i = 0; i < 27; i++) {
          for (let j = 0; j < 27; j++) if (j !== i && !keyPadding[b * 27 + j]) expect(weights.data[(bh * 27 + i) * 27 + j]).toBe(0);
        }
      }
    }
    expect(maxAbsDiff(applyWeights(weights, v), out)).toBeLessThanOrEqual(1e-5);
  });

  it('draws seeded rotations reproducibly, row-major [R, D, nb/2] from Rng(seed).normal()', () => {
    const drawn = drawLshRotations(7, 2, 6, 4);
    expect(drawn.dims).toEqual([2, 6, 2]);
    const rng = new Rng(7);
    expect(Array.from(drawn.data)).toEqual(Array.from({ length: 24 }, () => Math.fround(rng.normal())));
    const seeded = run(lsh, x, null, v, { bucketSize: 4, rounds: 2, buckets: 4, seed: 7 }).out;
    expect(run(lsh, x, null, v, { bucketSize: 4, rounds: 2, buckets: 4, seed: 7 }).out).toEqual(seeded);
    expect(run(lsh, x, null, v, { bucketSize: 4, rotations: drawn }).out).toEqual(seeded);
    expect(maxAbsDiff(run(lsh, x, null, v, { bucketSize: 4, rounds: 2, buckets: 4, seed: 8 }).out, seeded)).toBeGreaterThan(1e-3);
  });

  it('N = 1: the query sees only itself', () => {
    const one = randn([1, 1, 1, 4], 41);
    const value = randn([1, 1, 1, 3], 42);
    const { out, weights } = run(lsh, one, null, value, { bucketSize: 2, rounds: 2, buckets: 2, seed: 1, causal: true });
    expect(Array.from(out)).toEqual(Array.from(value.data));
    expect(Array.from(weights.data)).toEqual([1]);
  });

  it('accepts k = q itself and rejects any other k (readInputs)', () => {
    expect(readInputs(lsh, x, x, v, true).k).not.toBeNull();
    expectError(() => readInputs(lsh, x, randn([2, 2, 27, 6], 1), v, true), TypeError, /^k: /);
  });

  it('validates its options', () => {
    const inputs = readInputs(lsh, x, null, v, true);
    const parse = (options: Record<string, unknown>) => () => lsh.parse(inputs, options, noLookup);
    const seeded = { rounds: 2, buckets: 4, seed: 1 };
    expectError(parse(seeded), TypeError, /^options\.bucketSize: required/);
    expectError(parse({ ...seeded, bucketSize: 0 }), RangeError, /^options\.bucketSize: expected an integer >= 1, received 0/);
    expectError(parse({ ...seeded, bucketSize: 2.5 }), TypeError, /^options\.bucketSize/);
    expectError(parse({ ...seeded, bucketSize: 4, buckets: 5 }), RangeError, /^options\.buckets: expected an even integer >= 2, received 5/);
    expectError(parse({ ...seeded, bucketSize: 4, buckets: 0 }), RangeError, /^options\.buckets/);
    expectError(parse({ ...seeded, bucketSize: 4, rounds: 0 }), RangeError, /^options\.rounds/);
    expectError(parse({ bucketSize: 4, buckets: 4, seed: 1 }), TypeError, /^options\.rounds: required/);
    expectError(parse({ bucketSize: 4, rounds: 2, buckets: 4 }), TypeError, /^options\.seed: required/);
    expectError(parse({ ...seeded, bucketSize: 4, seed: 0.5 }), TypeError, /^options\.seed/);
    expectError(parse({ bucketSize: 4, rotations: randn([2, 3, 5, 3], 1) }), RangeError, /^options\.rotations\.dims: .*D = 6.*received \[2, 3, 5, 3\]/);
    expectError(parse({ bucketSize: 4, rotations: randn([3, 3, 6, 3], 1) }), RangeError, /^options\.rotations\.dims: expected \[H\|1, R, D, nb\/2\] = \[2\|1, 3, 6, 3\]/);
    expectError(parse({ bucketSize: 4, rotations: randn([6, 3], 1) }), RangeError, /^options\.rotations\.dims/);
    expectError(parse({ bucketSize: 4, rotations: { data: [1], dims: [1] } }), TypeError, /^options\.rotations\.data/);
    expectError(parse({ bucketSize: 4, rotations, rounds: 3 }), TypeError, /^options\.rounds: not used when options\.rotations is given/);
    expect(lsh.parse(inputs, { bucketSize: 4, rotations: randn([3, 6, 3], 1) }, noLookup).rotations.headStride).toBe(0);
  });
});

/** Routing restated with full sorts: membership by sorting on (score desc, index asc). */
function bruteForceRouting(q: T, k: T, v: T, centroids: T, w: number, causal: boolean, keyPadding: Uint8Array | null): Float64Array {
  const [B, H, Nq, D] = q.dims as [number, number, number, number];
  const Nk = k.dims[2];
  const Dv = v.dims[3];
  const C = centroids.dims[centroids.dims.length - 2];
  const unit = (data: Float32Array, at: number) => {
    const row = Array.from(data.subarray(at * D, (at + 1) * D));
    const norm = Math.max(Math.hypot(...row), 1e-12);
    return row.map((value) => value / norm);
  };
  const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let sum = 0;
    for (let d = 0; d < D; d++) sum += a[d] * b[d];
    return sum;
  };
  const top = (scores: number[]) => scores.map((s, n) => [s, n]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, w).map(([, n]) => n);
  const out = new Float64Array(B * H * Nq * Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      const sums = Array.from({ length: Nq }, () => ({ count: 0, o: new Array<number>(Dv).fill(0) }));
      for (let c = 0; c < C; c++) {
        const mu = unit(centroids.data, (centroids.dims.length === 3 && centroids.dims[0] === H ? h * C : 0) + c);
        const queries = top(Array.from({ length: Nq }, (_, i) => dot(unit(q.data, bh * Nq + i), mu)));
        const keys = top(Array.from({ length: Nk }, (_, j) => dot(unit(k.data, bh * Nk + j), mu)));
        for (const i of queries) {
          const seen = keys.filter((j) => (!causal || j <= i + Nk - Nq) && (!keyPadding || keyPadding[b * Nk + j]));
          if (seen.length === 0) continue;
          const logits = seen.map((j) => dot(q.data.subarray((bh * Nq + i) * D), k.data.subarray((bh * Nk + j) * D)) / Math.sqrt(D));
          const max = Math.max(...logits);
          const total = logits.reduce((sum, l) => sum + Math.exp(l - max), 0);
          sums[i].count++;
          seen.forEach((j, n) => {
            for (let d = 0; d < Dv; d++) sums[i].o[d] += (Math.exp(logits[n] - max) / total) * v.data[(bh * Nk + j) * Dv + d];
          });
        }
      }
      sums.forEach(({ count, o }, i) => o.forEach((od, d) => (out[(bh * Nq + i) * Dv + d] = count ? od / count : 0)));
    }
  }
  return out;
}

describe('routing', () => {
  const q = randn([2, 2, 14, 6], 51);
  const k = randn([2, 2, 19, 6], 52);
  const v = randn([2, 2, 19, 3], 53);
  const centroids = randn([2, 4, 6], 54);

  it('matches a brute-force restatement (causal with Nq < Nk, padded, per-head centroids)', () => {
    const keyPadding = padding(2, 19, 55, 0.4);
    for (const causal of [false, true]) {
      const { out, weights } = run(routing, q, k, v, { window: 5, centroids, causal, keyPadding });
      expect(maxAbsDiff(out, bruteForceRouting(q, k, v, centroids, 5, causal, keyPadding))).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(applyWeights(weights, v), out)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('breaks similarity ties towards the lower index', () => {
    expect(Array.from(topIndices(Float64Array.from([1, 3, 3, 2, 3]), 2))).toEqual([1, 2]);
    expect(Array.from(topIndices(Float64Array.from([1, 3, 3, 2, 3]), 3))).toEqual([1, 2, 4]);
    expect(Array.from(topIndices(Float64Array.from([5, 5, 5, 5]), 1))).toEqual([0]);
    expect(Array.from(topIndices(Float64Array.from([0, 2, 1]), 7))).toEqual([0, 1, 2]);
    // Repeated query rows tie exactly; members and outputs must follow the restatement's order.
    const repeated = { data: q.data.slice(), dims: q.dims };
    for (let n = 0; n < repeated.data.length / 6; n += 2) repeated.data.set(q.data.subarray(n * 6, n * 6 + 6), (n + 1) * 6);
    const { out } = run(routing, repeated, k, v, { window: 3, centroids });
    expect(maxAbsDiff(out, bruteForceRouting(repeated, k, v, centroids, 3, false, null))).toBeLessThanOrEqual(1e-5);
  });

  it('with one cluster and window >= N, equals full attention', () => {
    const keyPadding = padding(2, 19, 56);
    for (const causal of [false, true]) {
      const options = { causal, keyPadding };
      const { out } = run(routing, q, k, v, { ...options, window: 19, centroids: randn([1, 6], 57) });
      expect(maxAbsDiff(out, run(full, q, k, v, options).out)).toBeLessThanOrEqual(1e-5);
      const fitted = run(routing, q, k, v, { ...options, window: 40, clusters: 1, seed: 3 }).out;
      expect(maxAbsDiff(fitted, run(full, q, k, v, options).out)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('causal: no weight past j <= i + Nk - Nq, and future values change no earlier output', () => {
    const options = { window: 6, centroids, causal: true };
    const { out, weights } = run(routing, q, k, v, options);
    for (let bh = 0; bh < 4; bh++) {
      for (let i = 0; i < 14; i++) {
        for (let j = i + 6; j < 19; j++) expect(weights.data[(bh * 14 + i) * 19 + j]).toBe(0);
      }
    }
    const later = run(routing, q, k, changedFrom(v, 12, 98, 3), options).out;
    for (let bh = 0; bh < 4; bh++) {
      // Query i sees keys j <= i + 5: queries 0..6 never see keys 12 and on.
      expect(maxAbsDiff(out.subarray(bh * 14 * 3, (bh * 14 + 7) * 3), later.subarray(bh * 14 * 3, (bh * 14 + 7) * 3))).toBe(0);
    }
  });

  it('fits centroids reproducibly, and a call with clusters/seed equals one with the fitted centroids', () => {
    const fitted = fitRoutingCentroids(q, k, { clusters: 3, seed: 9 });
    expect(fitted.dims).toEqual([2, 3, 6]);
    expect(fitRoutingCentroids(q, k, { clusters: 3, seed: 9 }).data).toEqual(fitted.data);
    expect(maxAbsDiff(fitRoutingCentroids(q, k, { clusters: 3, seed: 10 }).data, fitted.data)).toBeGreaterThan(1e-3);
    const options = { window: 5, causal: true };
    expect(run(routing, q, k, v, { ...options, clusters: 3, seed: 9 }).out).toEqual(run(routing, q, k, v, { ...options, centroids: fitted }).out);
  });

  it('k-means starts from distinct normalised rows and converges to normalised member sums', () => {
    // Head 1's rows in k-means order: for each batch, its q rows then its k rows.
    const rows: number[][] = [];
    for (let b = 0; b < 2; b++) {
      for (const [t, N] of [[normalised(q), 14], [normalised(k), 19]] as const) {
        for (let n = 0; n < N; n++) rows.push(Array.from(t.data.subarray(((b * 2 + 1) * N + n) * 6, ((b * 2 + 1) * N + n + 1) * 6)));
      }
    }
    const start = fitRoutingCentroids(q, k, { clusters: 4, iterations: 0, seed: 2 });
    const picks = [0, 1, 2, 3].map((c) => {
      const mu = Array.from(start.data.subarray((4 + c) * 6, (5 + c) * 6));
      return rows.findIndex((row) => maxAbsDiff(row, mu) <= 1e-7);
    });
    expect(picks.every((pick) => pick >= 0)).toBe(true);
    expect(new Set(picks).size).toBe(4);

    const converged = fitRoutingCentroids(q, k, { clusters: 4, iterations: 200, seed: 2 });
    const mus = [0, 1, 2, 3].map((c) => Array.from(converged.data.subarray((4 + c) * 6, (5 + c) * 6)));
    const sums = mus.map(() => new Array<number>(6).fill(0));
    for (const row of rows) {
      const cosines = mus.map((mu) => mu.reduce((sum, m, d) => sum + m * row[d], 0));
      const best = cosines.indexOf(Math.max(...cosines));
      row.forEach((value, d) => (sums[best][d] += value));
    }
    sums.forEach((sum, c) => {
      if (sum.some((value) => value !== 0)) expect(maxAbsDiff(mus[c], sum.map((value) => value / Math.hypot(...sum)))).toBeLessThanOrEqual(1e-6);
    });
  });

  it('k-means: a row at equal cosine from two centroids joins the lower cluster', () => {
    // Rows A = [1, 0] x3, C = [1, 1] (q) and B = [0, 1] x3 (k); seed 0 starts from [B, A], and C is as close to both.
    const q2 = { data: Float32Array.from([1, 0, 1, 0, 1, 0, 1, 1]), dims: [4, 2] };
    const k2 = { data: Float32Array.from([0, 1, 0, 1, 0, 1]), dims: [3, 2] };
    expect(Array.from(fitRoutingCentroids(q2, k2, { clusters: 2, iterations: 0, seed: 0 }).data)).toEqual([0, 1, 1, 0]);
    const joined = [Math.SQRT1_2, 3 + Math.SQRT1_2].map((value) => value / Math.hypot(Math.SQRT1_2, 3 + Math.SQRT1_2));
    expect(maxAbsDiff(fitRoutingCentroids(q2, k2, { clusters: 2, iterations: 1, seed: 0 }).data, [...joined, 1, 0])).toBeLessThanOrEqual(1e-7);
  });

  it('k-means: a cluster left empty keeps its centroid', () => {
    // Every row is the same: both initial picks are that row, ties send all rows to cluster 0.
    const same = { data: new Float32Array(5 * 3).map((_, t) => [3, 0, 4][t % 3]), dims: [5, 3] };
    const fitted = fitRoutingCentroids(same, same, { clusters: 2, iterations: 3, seed: 4 });
    expect(maxAbsDiff(fitted.data, [0.6, 0, 0.8, 0.6, 0, 0.8])).toBeLessThanOrEqual(1e-7);
  });

  it('N = 1: the query takes the key value, or zeros when it sees no key', () => {
    const one = randn([1, 1, 1, 4], 61);
    const value = randn([1, 1, 1, 3], 62);
    expect(Array.from(run(routing, one, one, value, { window: 1, clusters: 1, seed: 0 }).out)).toEqual(Array.from(value.data));
    const hidden = run(routing, one, one, value, { window: 1, clusters: 1, seed: 0, keyPadding: Uint8Array.from([0]) });
    expect(Array.from(hidden.out)).toEqual([0, 0, 0]);
    expect(Array.from(hidden.weights.data)).toEqual([0]);
  });

  it('validates its options', () => {
    const inputs = readInputs(routing, q, k, v, true);
    const parse = (options: Record<string, unknown>) => () => routing.parse(inputs, options, noLookup);
    expectError(parse({ centroids }), TypeError, /^options\.window: required/);
    expectError(parse({ window: 0, centroids }), RangeError, /^options\.window: expected an integer >= 1, received 0/);
    expectError(parse({ window: 4 }), TypeError, /^options\.clusters: required/);
    expectError(parse({ window: 4, clusters: 0, seed: 1 }), RangeError, /^options\.clusters/);
    expectError(parse({ window: 4, clusters: 67, seed: 1 }), RangeError, /^options\.clusters: expected an integer <= 66, received 67/);
    expectError(parse({ window: 4, clusters: 2 }), TypeError, /^options\.seed: required/);
    expectError(parse({ window: 4, clusters: 2, seed: 1, iterations: -1 }), RangeError, /^options\.iterations/);
    expectError(parse({ window: 4, centroids: randn([2, 4, 5], 1) }), RangeError, /^options\.centroids\.dims: .*D = 6.*received \[2, 4, 5\]/);
    expectError(parse({ window: 4, centroids: randn([3, 4, 6], 1) }), RangeError, /^options\.centroids\.dims: expected \[H\|1, C, D\] = \[2\|1, 4, 6\]/);
    expectError(parse({ window: 4, centroids: randn([6], 1) }), RangeError, /^options\.centroids\.dims/);
    expectError(parse({ window: 4, centroids, clusters: 4 }), TypeError, /^options\.clusters: not used when options\.centroids is given/);
    expectError(parse({ window: 4, centroids, keyPadding: new Uint8Array(3) }), RangeError, /^options\.keyPadding/);
    expectError(() => fitRoutingCentroids(q, k, { clusters: 2.5, seed: 1 }), TypeError, /^options\.clusters/);
    expectError(() => fitRoutingCentroids(q, randn([2, 2, 19, 5], 1), { clusters: 2, seed: 1 }), RangeError, /^k\.dims/);
  });
});
