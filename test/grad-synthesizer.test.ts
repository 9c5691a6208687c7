// The SIMD backward pass of `synthesizer` (SPEC "Gradients"): gradients of v
// and of the logits' parameters (random logits, factors a and b, dense x, w1,
// b1, w2, b2), each per head or shared by heads: central differences of a
// dense float64 forward written here (causal, padding, several row blocks,
// Nmax > Nk); the float64 reference backward at sizes that cut the rows into
// several ranges and calls; the pool gives the same bits; gradients no row
// reaches are zeros, not stale memory; bad gradOutput leaves the instance
// usable. (The goldens run in grad-golden.test.ts and relaxed-child.mjs.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type GradientTensors } from '../dist/index.js';
import { bytes } from './backends.js';
import { flatParams } from './grad-golden.js';
import { expectDifferences, expectGradients } from './grad-simd.js';
import { padding, randn, type T } from './random.js';

let one: Attention;
let two: Attention;
let js: Attention;
beforeAll(async () => {
  one = await createAttention({ backend: 'wasm', threads: 1 });
  two = await createAttention({ backend: 'wasm', threads: 2 });
  js = await createAttention({ backend: 'js' });
});
afterAll(() => two.dispose());

interface Sizes {
  B: number;
  H: number;
  Nq: number;
  Nk: number;
  Dv: number;
}

/** A parameter's head h: its offset in floats (a leading head axis of 1, or none, is shared). */
const headAt = (t: T, inner: number, h: number) => (t.dims.length === inner || t.dims[0] === 1 ? 0 : h * t.dims.slice(1).reduce((a, b) => a * b, 1));

/** The float64 logits of row (b, h, i), from the parameters as Float64Arrays (perturbed in place by the differences). */
type LogitRow = (x: Record<string, Float64Array>, b: number, h: number, i: number) => Float64Array;

function randomRow(logits: T, { Nk }: Sizes): LogitRow {
  return (x, _b, h, i) => x.logits.slice(headAt(logits, 2, h) + i * Nk, headAt(logits, 2, h) + (i + 1) * Nk);
}

function factorizedRow(a: T, b: T, { Nk }: Sizes): LogitRow {
  const R = a.dims[a.dims.length - 1];
  return (x, _b, h, i) =>
    Float64Array.from({ length: Nk }, (_, j) => {
      let s = 0;
      for (let r = 0; r < R; r++) s += x.a[headAt(a, 2, h) + i * R + r] * x.b[headAt(b, 2, h) + j * R + r];
      return s;
    });
}

function denseRow(p: Record<'x' | 'w1' | 'b1' | 'w2' | 'b2', T>, { Nq, Nk }: Sizes): LogitRow {
  const Dm = p.x.dims[2];
  const [Dh, Nmax] = p.w2.dims.slice(-2);
  return (x, b, h, i) => {
    const hidden = Array.from({ length: Dh }, (_, u) => {
      let s = x.b1[headAt(p.b1, 1, h) + u];
      for (let c = 0; c < Dm; c++) s += x.x[(b * Nq + i) * Dm + c] * x.w1[headAt(p.w1, 2, h) + c * Dh + u];
      return Math.max(s, 0);
    });
    return Float64Array.from({ length: Nk }, (_, j) => {
      let s = x.b2[headAt(p.b2, 1, h) + j];
      for (let u = 0; u < Dh; u++) s += hidden[u] * x.w2[headAt(p.w2, 2, h) + u * Nmax + j];
      return s;
    });
  };
}

/** sum(out * g) in float64: out = softmax(B) v over the keys causal and padding leave, a row that sees none 0. */
function loss(x: Record<string, Float64Array>, g: Float32Array, s: Sizes, row: LogitRow, causal: boolean, pad: Uint8Array | null): number {
  const { B, H, Nq, Nk, Dv } = s;
  let total = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        const logits = row(x, b, h, i);
        const shown = (j: number) => (!causal || j <= i + Nk - Nq) && (!pad || pad[b * Nk + j] !== 0);
        let top = -Infinity;
        for (let j = 0; j < Nk; j++) if (shown(j)) top = Math.max(top, logits[j]);
        if (top === -Infinity) continue;
        const w = Array.from(logits, (l, j) => (shown(j) ? Math.exp(l - top) : 0));
        const sum = w.reduce((a, c) => a + c, 0);
        const base = (b * H + h) * Nk;
        for (let j = 0; j < Nk; j++) for (let d = 0; d < Dv; d++) total += (w[j] / sum) * x.v[(base + j) * Dv + d] * g[((b * H + h) * Nq + i) * Dv + d];
      }
    }
  }
  return total;
}

/** The options' tensors by parameter name (logits, a, b, x, w1, ...). */
function tensorsOf(options: Record<string, unknown>): Record<string, T> {
  const nested = (options.factors ?? options.dense ?? { logits: options.logits }) as Record<string, T>;
  return Object.fromEntries(Object.entries(nested));
}

function checkByDifferences(v: T, Nq: number, options: Record<string, unknown>, row: (s: Sizes) => LogitRow): void {
  const [B, H, Nk, Dv] = v.dims;
  const s = { B, H, Nq, Nk, Dv };
  const g = randn([B, H, Nq, Dv], 99);
  const got = one.backward('synthesizer', null, null, v, g, options);
  expect(got.q).toBeNull();
  expect(got.k).toBeNull();
  const params = Object.fromEntries(flatParams(got.params).map(([path, t]) => [path.split('.').pop()!, t.data as Float32Array]));
  const tensors = tensorsOf(options);
  expect(Object.keys(params).sort()).toEqual(Object.keys(tensors).sort());
  const x = { v: Float64Array.from(v.data), ...Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, Float64Array.from(t.data)])) };
  const pad = (options.keyPadding as Uint8Array | undefined) ?? null;
  expectDifferences(x, { v: got.v!.data, ...params }, () => loss(x, g.data, s, row(s), options.causal === true, pad));
  expect(one.memory.inUse).toBe(0);
}

const dense = (B: number, Nq: number, Dm: number, Dh: number, Nmax: number, heads: Record<'w1' | 'b1' | 'w2' | 'b2', number[]>, seed: number) => ({
  x: randn([B, Nq, Dm], seed),
  w1: randn([...heads.w1, Dm, Dh], seed + 1, 0.5),
  b1: randn([...heads.b1, Dh], seed + 2, 0.3),
  w2: randn([...heads.w2, Dh, Nmax], seed + 3, 0.5),
  b2: randn([...heads.b2, Nmax], seed + 4, 0.3),
});

describe('synthesizer backward (SIMD)', () => {
  it('finite differences: given logits, per head and shared, causal and padded, several row blocks', () => {
    const logits = randn([2, 70, 9], 1, 2);
    checkByDifferences(randn([2, 2, 9, 3], 2), 70, { logits, causal: true, keyPadding: padding(2, 9, 3) }, (s) => randomRow(logits, s));
    const shared = randn([1, 5, 12], 4, 2);
    checkByDifferences(randn([2, 3, 12, 4], 5), 5, { logits: shared, keyPadding: padding(2, 12, 6) }, (s) => randomRow(shared, s));
  });

  it('finite differences: factors, a per head and b shared (and the other way), causal', () => {
    const a = randn([3, 80, 3], 7);
    const b = randn([20, 3], 8);
    checkByDifferences(randn([2, 3, 20, 4], 9), 80, { factors: { a, b }, causal: true }, (s) => factorizedRow(a, b, s));
    const a2 = randn([1, 6, 2], 10);
    const b2 = randn([2, 6, 2], 11);
    checkByDifferences(randn([1, 2, 6, 3], 12), 6, { factors: { a: a2, b: b2 }, keyPadding: padding(1, 6, 13) }, (s) => factorizedRow(a2, b2, s));
  });

  it('finite differences: dense, mixed per-head and shared layers, Nmax > Nk, causal and padded', () => {
    const p = dense(2, 70, 5, 6, 11, { w1: [2], b1: [], w2: [1], b2: [2] }, 14);
    checkByDifferences(randn([2, 2, 9, 3], 20), 70, { dense: p, causal: true, keyPadding: padding(2, 9, 21) }, (s) => denseRow(p, s));
    const q = dense(1, 7, 3, 4, 7, { w1: [], b1: [3], w2: [3], b2: [] }, 22);
    checkByDifferences(randn([1, 3, 7, 2], 30), 7, { dense: q }, (s) => denseRow(q, s));
  });

  // rows cut into several ranges and calls (given logits: partial dv per range), against the float64 reference
  const large: [string, Record<string, unknown>][] = [
    ['given logits shared, padded', { logits: randn([700, 1100], 40, 2), keyPadding: padding(1, 1100, 41) }],
    ['given logits per head, causal', { logits: randn([2, 700, 1100], 42, 2), causal: true }],
    ['factors causal, padded', { factors: { a: randn([2, 700, 8], 43, 0.5), b: randn([1100, 8], 44, 0.5) }, causal: true, keyPadding: padding(1, 1100, 45) }],
    ['dense shared', { dense: dense(1, 700, 16, 16, 1200, { w1: [], b1: [], w2: [], b2: [] }, 46) }],
  ];
  const v = randn([1, 2, 1100, 64], 50);
  const g = randn([1, 2, 700, 64], 51);

  it.each(large)('matches the float64 reference over several row ranges: %s', (_, options) => {
    const want = js.backward('synthesizer', null, null, v, g, options);
    expectGradients(one.backward('synthesizer', null, null, v, g, options), want, 1e-5, 'synthesizer');
    expect(one.memory.inUse).toBe(0);
  });

  /** Every gradient by path. */
  const gradients = (got: GradientTensors) => flatParams({ v: got.v, params: got.params }).map(([path, t]) => [path, t.data as Float32Array] as const);
  /** Two results' gradients bit for bit (as Buffers: a deep equality of megabytes would take seconds). */
  const expectSameBits = (got: GradientTensors, want: GradientTensors) => {
    const wanted = new Map(gradients(want));
    expect(gradients(got).map(([path]) => path)).toEqual([...wanted.keys()]);
    for (const [path, data] of gradients(got)) expect(Buffer.from(bytes(data)).equals(Buffer.from(bytes(wanted.get(path)!))), path).toBe(true);
  };

  it.each(large)('runBackward on the pool gives the bits of backward: %s', async (_, options) => {
    const sync = one.backward('synthesizer', null, null, v, g, options);
    const pooled = await two.runBackward('synthesizer', null, null, v, g, options);
    expectSameBits(pooled, sync);
    expect(two.memory.inUse).toBe(0);
  });

  it('gives zeros where no row or no batch reaches, after memory held other values', () => {
    const cases: [T, number, Record<string, unknown>][] = [
      // no query rows: dv and the logits' gradients are all zero
      [randn([1, 2, 6, 3], 60), 0, { logits: randn([0, 6], 61) }],
      [randn([1, 2, 6, 3], 62), 0, { factors: { a: randn([2, 0, 2], 63), b: randn([6, 2], 64) } }],
      [randn([1, 2, 6, 3], 65), 0, { dense: dense(1, 0, 3, 4, 8, { w1: [2], b1: [], w2: [], b2: [2] }, 66) }],
      // no batch: nothing reads the parameters
      [randn([0, 2, 6, 3], 67), 4, { logits: randn([2, 4, 6], 68) }],
      [randn([0, 2, 6, 3], 69), 4, { dense: dense(0, 4, 3, 4, 8, { w1: [], b1: [2], w2: [2], b2: [] }, 70) }],
    ];
    for (const [values, Nq, options] of cases) {
      const [B, H, , Dv] = values.dims;
      // fill memory with other values first
      one.backward('synthesizer', null, null, v, g, large[0][1]);
      const grads = randn([B, H, Nq, Dv], 71);
      const got = one.backward('synthesizer', null, null, values, grads, options);
      expectGradients(got, js.backward('synthesizer', null, null, values, grads, options), 0, JSON.stringify(values.dims));
      for (const [path, t] of flatParams({ v: got.v, params: got.params })) expect(t.data.every((x) => x === 0), path).toBe(true);
    }
  });

  it('rejects a gradOutput of the wrong dims and stays usable', async () => {
    const values = randn([1, 2, 9, 4], 80);
    const options = { logits: randn([2, 7, 9], 81), causal: true };
    const grads = randn([1, 2, 7, 4], 82);
    const before = one.backward('synthesizer', null, null, values, grads, options);
    expect(() => one.backward('synthesizer', null, null, values, randn([1, 2, 9, 4], 83), options)).toThrow(/^gradOutput\.dims: expected the output's dims \[1, 2, 7, 4\], received \[1, 2, 9, 4\]/);
    await expect(two.runBackward('synthesizer', null, null, values, randn([2, 7, 4], 84), options)).rejects.toThrow(RangeError);
    expect(one.memory.inUse).toBe(0);
    expect(two.memory.inUse).toBe(0);
    expectSameBits(one.backward('synthesizer', null, null, values, grads, options), before);
  });
});
