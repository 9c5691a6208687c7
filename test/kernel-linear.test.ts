// `linear` on the WebAssembly backend against the plain-JS float64 reference
// and the golden vectors, and the properties through the facade:
// causality (bit for bit), the recurrent state, FAVOR+ against softmax,
// long sequences.
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, favorProjection, type Attention } from '../dist/index.js';
import { Runtime } from '../dist/runtime/runtime.js';
import { createLinearState, type LinearState, type LinearStateOptions } from '../dist/variants/linear-state.js';
import { loadGolden, maxAbsDiff } from './golden.js';
import { padding, randn, type T } from './random.js';
import { bytes } from './backends.js';

let wasm: Attention;
let js: Attention;
let runtime: Runtime;
beforeAll(async () => {
  wasm = await createAttention({ backend: 'wasm' });
  js = await createAttention({ backend: 'js' });
  runtime = await Runtime.create();
});

type Opts = Record<string, unknown>;

/** The feature maps, with projections for H heads of size D: per head and shared. */
function featureMaps(H: number, D: number, seed: number): Record<string, Opts> {
  return {
    elu: {},
    relu: { featureMap: 'relu' },
    'favor, per head': { featureMap: 'favor', projection: randn([H, 24, D], seed) },
    'favor, shared [M, D], scale 0.3': { featureMap: 'favor', projection: randn([13, D], seed + 1), scale: 0.3 },
    'favor, numFeatures': { featureMap: 'favor', numFeatures: 37, seed: 5 },
    'rfa, shared': { featureMap: 'rfa', projection: randn([1, 64, D], seed + 2) },
    'rfa, per head': { featureMap: 'rfa', projection: randn([H, 48, D], seed + 3, 0.7) },
    efficient: { featureMap: 'efficient' },
  };
}

/** A favor projection whose projections w . sqrt(scale) x of unit-normal rows reach +-30 and beyond. */
const bigProjection = (H: number, M: number, D: number, seed: number) => randn([H, M, D], seed, 9);

/** A copy of x `[B, H, N, D]` whose rows from `from` on are fresh noise. */
function changeRowsFrom(x: T, from: number, seed: number, scale = 3): T {
  const [B, H, N, D] = x.dims;
  const noise = randn(x.dims, seed, scale);
  const data = Float32Array.from(x.data);
  for (let bh = 0; bh < B * H; bh++) data.set(noise.data.subarray((bh * N + from) * D, (bh + 1) * N * D), (bh * N + from) * D);
  return { data, dims: x.dims };
}

/** Rows [from, to) of every batch and head of x `[B, H, N, D]`. */
function rows(x: { data: Float32Array; dims: readonly number[] }, from: number, to: number): Float32Array {
  const [B, H, N, D] = x.dims;
  const out = new Float32Array(B * H * (to - from) * D);
  for (let bh = 0; bh < B * H; bh++) out.set(x.data.subarray((bh * N + from) * D, (bh * N + to) * D), bh * (to - from) * D);
  return out;
}

describe('linear: wasm kernel vs JS reference', () => {
  const shapes = [
    // [B, H, Nq, Nk, D, Dv]
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 7, 3, 5],
    [1, 2, 13, 13, 7, 7],
    [2, 3, 17, 17, 16, 16],
    [1, 1, 37, 37, 64, 64],
    [2, 1, 5, 29, 8, 3],
    [1, 2, 29, 5, 12, 20],
    [1, 1, 150, 150, 33, 9],
    [1, 1, 200, 71, 4, 4],
    [2, 2, 300, 300, 16, 12],
  ];
  for (const [B, H, Nq, Nk, D, Dv] of shapes) {
    for (const [name, options] of Object.entries(featureMaps(H, D, B * 100 + Nq))) {
      for (const causal of name === 'efficient' ? [false] : [false, true]) {
        it(`B=${B} H=${H} Nq=${Nq} Nk=${Nk} D=${D} Dv=${Dv} ${name} causal=${causal}, padded and not`, () => {
          const seed = B * 1000 + H * 100 + Nq + Nk * 7 + D * 13 + Dv;
          const q = randn([B, H, Nq, D], seed);
          const k = randn([B, H, Nk, D], seed + 1);
          const v = randn([B, H, Nk, Dv], seed + 2);
          for (const keyPadding of [undefined, padding(B, Nk, seed + 3)]) {
            const all = { ...options, causal, ...(keyPadding ? { keyPadding } : {}) };
            const got = wasm.linear(q, k, v, all);
            const want = js.linear(q, k, v, all);
            expect(got.dims).toEqual([B, H, Nq, Dv]);
            expect(got.data.every(Number.isFinite)).toBe(true);
            expect(maxAbsDiff(got.data, want.data)).toBeLessThanOrEqual(1e-4);
          }
        });
      }
    }
  }

  it('honours eps (0, the default, 0.5) and scale, at the unstabilised scale for favor', () => {
    const [B, H, N, D] = [2, 2, 45, 8];
    const q = randn([B, H, N, D], 1);
    const k = randn([B, H, N, D], 2);
    const v = randn([B, H, N, D], 3);
    const pad = padding(B, N, 4);
    for (const options of [{}, { featureMap: 'relu' }, { featureMap: 'favor', projection: randn([H, 16, D], 5) }, { featureMap: 'rfa', projection: randn([1, 32, D], 6) }]) {
      for (const eps of [0, 1e-6, 0.5]) {
        for (const scale of [undefined, 0.05, 1]) {
          for (const causal of [false, true]) {
            const all = { ...options, eps, causal, keyPadding: pad, ...(scale === undefined ? {} : { scale }) };
            expect(maxAbsDiff(wasm.linear(q, k, v, all).data, js.linear(q, k, v, all).data)).toBeLessThanOrEqual(1e-4);
          }
        }
      }
    }
  });

  it('favor with projections reaching +-30: finite and within 1e-4 of the reference', () => {
    const [B, H, N, D] = [1, 2, 130, 8];
    const q = randn([B, H, N, D], 7);
    const k = randn([B, H, N, D], 8);
    const v = randn([B, H, N, D], 9);
    const options = { featureMap: 'favor', projection: bigProjection(H, 16, D, 10) };
    for (const causal of [false, true]) {
      const got = wasm.linear(q, k, v, { ...options, causal });
      expect(got.data.every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(got.data, js.linear(q, k, v, { ...options, causal }).data)).toBeLessThanOrEqual(1e-4);
    }
  });

  it('a long head split over several calls (N = 1700, D = 64) matches the reference', () => {
    const [N, D] = [1700, 64];
    const q = randn([1, 1, N, D], 11);
    const k = randn([1, 1, N, D], 12);
    const v = randn([1, 1, N, D], 13);
    for (const options of [{}, { featureMap: 'favor', numFeatures: 64, seed: 2 }]) {
      for (const causal of [false, true]) {
        const all = { ...options, causal };
        expect(maxAbsDiff(wasm.linear(q, k, v, all).data, js.linear(q, k, v, all).data)).toBeLessThanOrEqual(1e-4);
      }
    }
  });

  it('rows that see no key output zeros, never NaN, even with eps = 0', () => {
    const [H, D] = [2, 8];
    const q = randn([1, H, 40, D], 14);
    const k = randn([1, H, 9, D], 15);
    const v = randn([1, H, 9, D], 16);
    for (const options of Object.values(featureMaps(H, D, 17))) {
      if (options.featureMap === 'efficient') continue;
      // 40 queries over 9 keys: query i sits at position i - 31, rows 0..30 see nothing
      const out = wasm.linear(q, k, v, { ...options, causal: true, eps: 0 });
      expect(rows(out, 0, 31).every((x) => x === 0)).toBe(true);
      expect(out.data.every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(out.data, js.linear(q, k, v, { ...options, causal: true, eps: 0 }).data)).toBeLessThanOrEqual(1e-4);
    }
    // batch 1 has only padding
    const q2 = randn([2, H, 20, D], 18);
    const pad = Uint8Array.from({ length: 2 * 20 }, (_, i) => (i < 20 ? 1 : 0));
    for (const options of Object.values(featureMaps(H, D, 19))) {
      for (const causal of options.featureMap === 'efficient' ? [false] : [false, true]) {
        const out = wasm.linear(q2, q2, q2, { ...options, causal, keyPadding: pad, eps: 0 });
        expect(out.data.subarray(H * 20 * D).every((x) => x === 0)).toBe(true);
        expect(out.data.every(Number.isFinite)).toBe(true);
      }
    }
  });

  it('accepts rank 2 and rank 3 inputs and answers in the same rank', () => {
    const q = randn([11, 6], 20);
    expect(wasm.linear(q, q, q).dims).toEqual([11, 6]);
    const q3 = randn([3, 11, 6], 21);
    const out3 = wasm.linear(q3, q3, q3, { causal: true });
    expect(out3.dims).toEqual([3, 11, 6]);
    const as4 = { data: q3.data, dims: [1, 3, 11, 6] };
    expect(maxAbsDiff(out3.data, wasm.linear(as4, as4, as4, { causal: true }).data)).toBe(0);
  });

  it('equals weights() times v', () => {
    const [B, H, Nq, Nk, D, Dv] = [2, 2, 19, 23, 8, 5];
    const q = randn([B, H, Nq, D], 22);
    const k = randn([B, H, Nk, D], 23);
    const v = randn([B, H, Nk, Dv], 24);
    for (const [name, options] of Object.entries(featureMaps(H, D, 25))) {
      const all = { ...options, causal: name !== 'efficient', keyPadding: padding(B, Nk, 26) };
      const P = wasm.weights('linear', q, k, all);
      const pv = new Float64Array(B * H * Nq * Dv);
      for (let bh = 0; bh < B * H; bh++)
        for (let i = 0; i < Nq; i++)
          for (let j = 0; j < Nk; j++)
            for (let c = 0; c < Dv; c++) pv[(bh * Nq + i) * Dv + c] += P.data[(bh * Nq + i) * Nk + j] * v.data[(bh * Nk + j) * Dv + c];
      expect(maxAbsDiff(wasm.linear(q, k, v, all).data, pv)).toBeLessThanOrEqual(1e-4);
    }
  });

  it('reads inputs that live in WebAssembly memory, and leaves memory as it found it', () => {
    const q = randn([1, 2, 33, 8], 27);
    const inside = wasm.tensor(q.dims, q.data);
    const before = wasm.memory.inUse;
    for (const options of Object.values(featureMaps(2, 8, 28))) {
      expect(maxAbsDiff(wasm.linear(inside, inside, inside, options).data, js.linear(q, q, q, options).data)).toBeLessThanOrEqual(1e-4);
      expect(wasm.memory.inUse).toBe(before);
    }
    inside.free();
    // repeated calls of one size never grow memory again
    wasm.linear(q, q, q, { causal: true });
    const size = wasm.memory.size;
    for (let i = 0; i < 2000; i++) wasm.linear(q, q, q, { causal: true });
    expect(wasm.memory.size).toBe(size);
  });
});

describe('linear: on the thread pool, one job per (batch, head)', () => {
  // [B, H, Nq, Nk, D, Dv]: a cache ahead of the queries, and more queries than keys
  const shapes = [
    [2, 3, 150, 220, 16, 12],
    [1, 2, 130, 70, 8, 8],
  ];
  for (const [B, H, Nq, Nk, D, Dv] of shapes) {
    it(`B=${B} H=${H} Nq=${Nq} Nk=${Nk}: every feature map, causal and not, padded, keeps the bits`, async () => {
      const pooled = await createAttention({ backend: 'wasm', threads: 2 });
      try {
        const q = randn([B, H, Nq, D], 71);
        const k = randn([B, H, Nk, D], 72);
        const v = randn([B, H, Nk, Dv], 73);
        const keyPadding = padding(B, Nk, 74);
        for (const [name, options] of Object.entries(featureMaps(H, D, 75))) {
          for (const causal of name === 'efficient' ? [false] : [false, true]) {
            const all = { ...options, causal, keyPadding };
            const sync = wasm.apply('linear', q, k, v, all);
            const run = await pooled.run('linear', q, k, v, all);
            expect(bytes(run.data), `${name} causal=${causal}`).toEqual(bytes(sync.data));
          }
        }
        expect(pooled.memory.inUse).toBe(0);
      } finally {
        pooled.dispose();
      }
    });
  }
});

describe('linear: golden vectors on the wasm backend', () => {
  for (const c of loadGolden('linear.json')) {
    it(c.name, () => {
      const out = wasm.linear(c.q!, c.k!, c.v!, c.options);
      expect(out.dims).toEqual(c.expected.dims);
      expect(maxAbsDiff(out.data, c.expected.data)).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('linear: causal', () => {
  // N spans several chunks; the change starts in the middle of one
  const [B, H, N, D] = [2, 2, 150, 8];
  const q = randn([B, H, N, D], 31);
  const k = randn([B, H, N, D], 32);
  const v = randn([B, H, N, D], 33);
  const maps: Record<string, Opts> = { ...featureMaps(H, D, 34), 'favor +-30': { featureMap: 'favor', projection: bigProjection(H, 16, D, 35) } };
  delete maps.efficient;

  for (const [name, options] of Object.entries(maps)) {
    it(`${name}: changing future tokens never changes an earlier output (bit for bit), padded or not`, () => {
      for (const t of [0, 37, 64, 101]) {
        for (const keyPadding of [undefined, padding(B, N, 36)]) {
          const all = { ...options, causal: true, ...(keyPadding ? { keyPadding } : {}) };
          const before = wasm.linear(q, k, v, all);
          // large noise: with 'favor +-30' the new keys carry the largest offsets of their chunk
          const after = wasm.linear(changeRowsFrom(q, t + 1, 37), changeRowsFrom(k, t + 1, 38), changeRowsFrom(v, t + 1, 39), all);
          expect(maxAbsDiff(rows(before, 0, t + 1), rows(after, 0, t + 1))).toBe(0);
          expect(maxAbsDiff(rows(before, t + 1, N), rows(after, t + 1, N))).toBeGreaterThan(1e-3);
        }
      }
    });
  }

  it('bottom-right aligned: Nq < Nk queries give the last rows of the square problem', () => {
    for (const options of Object.values(maps)) {
      const square = wasm.linear(q, k, v, { ...options, causal: true });
      for (const last of [1, 4, 70]) {
        const tail = { data: rows(q, N - last, N), dims: [B, H, last, D] };
        const decoding = wasm.linear(tail, k, v, { ...options, causal: true });
        expect(maxAbsDiff(decoding.data, rows(square, N - last, N))).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  it('efficient cannot be causal', () => {
    expect(() => wasm.linear(q, k, v, { featureMap: 'efficient', causal: true })).toThrow(RangeError);
  });
});

describe('linear: long sequences (N = 65536) stay within 1e-4 of the float64 reference', () => {
  const [N, D] = [65536, 16];
  const q = randn([1, 1, N, D], 41);
  const v = randn([1, 1, N, D], 42);
  // keys shifted by +2: every elu / relu feature is large and positive, so the running sums grow to ~1e5
  const shifted = randn([1, 1, N, D], 43);
  shifted.data.forEach((x, i) => (shifted.data[i] = x + 2));
  for (const featureMap of ['elu', 'relu']) {
    for (const causal of [true, false]) {
      it(`${featureMap}, causal ${causal}`, () => {
        const all = { featureMap, causal };
        for (const k of [randn([1, 1, N, D], 44), shifted]) {
          const got = wasm.linear(q, k, v, all);
          expect(maxAbsDiff(got.data, js.linear(q, k, v, all).data)).toBeLessThanOrEqual(1e-4);
        }
      });
    }
  }
  it('favor, causal', () => {
    const k = randn([1, 1, N, D], 45);
    const all = { featureMap: 'favor', numFeatures: 16, seed: 3, causal: true };
    expect(maxAbsDiff(wasm.linear(q, k, v, all).data, js.linear(q, k, v, all).data)).toBeLessThanOrEqual(1e-4);
  });
});

describe('linear: FAVOR+ approximates softmax attention', () => {
  for (const [N, D] of [[64, 16], [256, 64]]) {
    it(`M = 4096 orthogonal features: mean abs error < 0.05 against full (N = ${N}, D = ${D}), on both backends`, () => {
      const q = randn([1, 2, N, D], 51, 0.5);
      const k = randn([1, 2, N, D], 52, 0.5);
      const v = randn([1, 2, N, D], 53);
      const projection = favorProjection(4096, D, 54);
      for (const causal of [false, true]) {
        const exact = js.full(q, k, v, { causal }).data;
        for (const attn of [wasm, js]) {
          const approx = attn.linear(q, k, v, { featureMap: 'favor', projection, causal }).data;
          const mean = approx.reduce((s, x, i) => s + Math.abs(x - exact[i]), 0) / approx.length;
          expect(mean).toBeLessThan(0.05);
        }
      }
    });
  }
});

describe('linear: recurrent state', () => {
  const [B, H, N, D, Dv] = [2, 3, 75, 8, 5];
  const q = randn([B, H, N, D], 61);
  const k = randn([B, H, N, D], 62);
  const v = randn([B, H, N, Dv], 63);
  const pad = padding(B, N, 64);
  const maps: Record<string, Opts> = { ...featureMaps(H, D, 65), 'favor +-30': { featureMap: 'favor', projection: bigProjection(H, 16, D, 66) } };
  delete maps.efficient;

  /** A state through `attn.linearState` once the facade has it, else the factory. */
  function stateOf(backend: 'wasm' | 'js', options: LinearStateOptions): LinearState {
    const attn = (backend === 'wasm' ? wasm : js) as Attention & { linearState?: (o: LinearStateOptions) => LinearState };
    if (typeof attn.linearState === 'function') return attn.linearState(options);
    return createLinearState(backend === 'wasm' ? runtime : null, options);
  }

  /** Token n of x `[B, H, N, W]` as `[B, H, W]`. */
  function token(x: T, n: number): T {
    const W = x.dims[3];
    const data = new Float32Array(B * H * W);
    for (let s = 0; s < B * H; s++) data.set(x.data.subarray((s * N + n) * W, (s * N + n + 1) * W), s * W);
    return { data, dims: [B, H, W] };
  }

  /** Steps the state over the sequence: out as `[B, H, N, Dv]`. */
  function stepAll(state: LinearState, withPadding: boolean): Float32Array {
    const out = new Float32Array(B * H * N * Dv);
    for (let n = 0; n < N; n++) {
      const keyPadding = withPadding ? Uint8Array.from({ length: B }, (_, b) => pad[b * N + n]) : undefined;
      const o = state.step(token(q, n), token(k, n), token(v, n), keyPadding);
      expect(o.dims).toEqual([B, H, Dv]);
      for (let s = 0; s < B * H; s++) out.set(o.data.subarray(s * Dv, (s + 1) * Dv), (s * N + n) * Dv);
    }
    return out;
  }

  for (const [name, options] of Object.entries(maps)) {
    it(`${name}: stepping equals the causal batch output on both backends, padded or not; reset() starts over`, () => {
      for (const backend of ['wasm', 'js'] as const) {
        const attn = backend === 'wasm' ? wasm : js;
        const state = stateOf(backend, { batch: B, heads: H, dim: D, valueDim: Dv, ...options } as LinearStateOptions);
        expect(state.backend).toBe(backend);
        const stepped = stepAll(state, false);
        expect(state.position).toBe(N);
        expect(stepped.every(Number.isFinite)).toBe(true);
        expect(maxAbsDiff(stepped, attn.linear(q, k, v, { ...options, causal: true }).data)).toBeLessThanOrEqual(1e-4);
        state.reset();
        expect(state.position).toBe(0);
        const padded = stepAll(state, true);
        expect(maxAbsDiff(padded, attn.linear(q, k, v, { ...options, causal: true, keyPadding: pad }).data)).toBeLessThanOrEqual(1e-4);
        state.dispose();
      }
    });
  }

  it('favor with keys growing over time (the running maximum rises at every step) stays finite and exact', () => {
    const grown = { data: k.data.map((x, i) => x * (1 + 3 * ((Math.floor(i / D) % N) / N))), dims: k.dims };
    const options = { featureMap: 'favor' as const, projection: bigProjection(H, 16, D, 67) };
    const state = stateOf('wasm', { batch: B, heads: H, dim: D, valueDim: Dv, ...options });
    const out = new Float32Array(B * H * N * Dv);
    for (let n = 0; n < N; n++) {
      const o = state.step(token(q, n), token(grown, n), token(v, n));
      for (let s = 0; s < B * H; s++) out.set(o.data.subarray(s * Dv, (s + 1) * Dv), (s * N + n) * Dv);
    }
    expect(out.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(out, js.linear(q, grown, v, { ...options, causal: true }).data)).toBeLessThanOrEqual(1e-4);
    state.dispose();
  });

  it('takes [H, D] and [D] tokens (B = 1, H = 1) and bare Float32Arrays, and answers in the rank of q', () => {
    const one = createLinearState(runtime, { heads: 2, dim: 4 });
    const x = randn([2, 4], 68);
    expect(one.step(x, x, x).dims).toEqual([2, 4]);
    expect(one.step(x.data, x.data, x.data).dims).toEqual([1, 2, 4]);
    one.dispose();
    const single = createLinearState(runtime, { dim: 3, valueDim: 2 });
    expect(single.step(randn([3], 69), randn([3], 70), randn([2], 71)).dims).toEqual([2]);
    single.dispose();
  });

  it('a step before any real key outputs zeros, even with eps = 0', () => {
    for (const backend of ['wasm', 'js'] as const) {
      for (const options of Object.values(maps)) {
        const state = stateOf(backend, { batch: B, heads: H, dim: D, ...options, eps: 0 } as LinearStateOptions);
        const x = new Float32Array(B * H * D).fill(1);
        expect([...state.step(x, x, x, new Uint8Array(B)).data]).toEqual(new Array(B * H * D).fill(0));
        state.dispose();
      }
    }
  });

  it('keeps its sums in pinned WebAssembly memory: dispose() returns it, calls leave memory as they found it', () => {
    const before = wasm.memory.inUse;
    const attn = wasm as Attention & { linearState?: (o: LinearStateOptions) => LinearState };
    // through the facade when wired, else on the test's own runtime
    const stats = typeof attn.linearState === 'function' ? () => wasm.memory.inUse : () => runtime.arena.inUse;
    const start = stats();
    const state = stateOf('wasm', { batch: B, heads: H, dim: D, featureMap: 'favor', numFeatures: 32, seed: 1 });
    const held = stats();
    expect(held).toBeGreaterThan(start);
    for (let n = 0; n < 20; n++) state.step(token(q, n), token(k, n), token(q, n));
    expect(stats()).toBe(held);
    state.dispose();
    expect(stats()).toBe(start);
    expect(() => state.step(token(q, 0), token(k, 0), token(q, 0))).toThrow(/disposed/);
    expect(wasm.memory.inUse).toBe(before);
  });

  it('costs the same per token at any position (the state does not grow)', () => {
    const state = stateOf('wasm', { heads: 4, dim: 16 });
    const x = randn([4, 16], 72);
    const timeSteps = (count: number) => {
      const start = performance.now();
      for (let i = 0; i < count; i++) state.step(x, x, x);
      return performance.now() - start;
    };
    timeSteps(3000); // warm up the code
    const early = Math.min(timeSteps(500), timeSteps(500));
    timeSteps(20000);
    const late = Math.min(timeSteps(500), timeSteps(500));
    // generous: only a state that grows with the position (linear cost) would fail this
    expect(late).toBeLessThan(3 * early + 5);
    state.dispose();
  });

  it('rejects efficient, causal / keyPadding options, bad sizes and wrongly sized tokens, naming the argument', () => {
    for (const r of [runtime, null]) {
      expect(() => createLinearState(r, { dim: 8, featureMap: 'efficient' })).toThrow(/options\.featureMap/);
      expect(() => createLinearState(r, { dim: 8, causal: true } as LinearStateOptions)).toThrow(/options\.causal/);
      expect(() => createLinearState(r, {} as LinearStateOptions)).toThrow(TypeError);
      expect(() => createLinearState(r, { dim: 0 })).toThrow(/options\.dim/);
      expect(() => createLinearState(r, { dim: 8, featureMap: 'favor' })).toThrow(/options\.projection/);
      const state = createLinearState(r, { batch: 2, heads: 2, dim: 8 });
      const x = new Float32Array(32);
      expect(() => state.step(x, x, new Float32Array(3))).toThrow(/^v: expected 32 values/);
      expect(() => state.step({ data: x, dims: [4, 8] }, x, x)).toThrow(/^q\.dims/);
      expect(() => state.step(x, x, x, new Uint8Array(3))).toThrow(/^keyPadding/);
      expect(() => state.step(x, 'k' as unknown as Float32Array, x)).toThrow(TypeError);
      expect(state.step(x, x, x).dims).toEqual([2, 2, 8]);
      state.dispose();
    }
  });
});
