// The SIMD backward pass of `linear` (SPEC "Gradients"), every feature map,
// causal as reversed prefix sums: the gradient goldens; central finite
// differences of a dense float64 forward written here (grouped-query heads,
// Nq != Nk, padding, several chunks); the pool gives the same bits; the
// relaxed-SIMD build; bad gradOutput leaves the instance usable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention } from '../dist/index.js';
import { bytes } from './backends.js';
import { expectDifferences, expectGradients, loadGradGolden } from './grad-simd.js';
import { padding, randn, type T } from './random.js';

let one: Attention;
let two: Attention;
beforeAll(async () => {
  one = await createAttention({ backend: 'wasm', threads: 1 });
  two = await createAttention({ backend: 'wasm', threads: 2 });
});
afterAll(() => two.dispose());

interface Config {
  featureMap?: 'elu' | 'relu' | 'favor' | 'rfa' | 'efficient';
  causal?: boolean;
  keyPadding?: Uint8Array;
  projection?: T;
  scale?: number;
  eps?: number;
}

/** phi of one row in float64, unstabilised (inputs of unit scale). */
function phi(x: Float64Array, c: Config, h: number, D: number): Float64Array {
  const map = c.featureMap ?? 'elu';
  if (map === 'elu') return x.map((v) => (v > 0 ? v + 1 : Math.exp(v)));
  if (map === 'relu') return x.map((v) => Math.max(v, 0));
  const w = c.projection!;
  const M = w.dims[w.dims.length - 2];
  const base = w.dims.length === 3 && w.dims[0] > 1 ? h * M * D : 0;
  const dotRow = (m: number, y: Float64Array) => y.reduce((s, v, d) => s + w.data[base + m * D + d] * v, 0);
  if (map === 'favor') {
    const root = Math.sqrt(c.scale ?? 1 / Math.sqrt(D));
    const y = x.map((v) => v * root);
    const half = y.reduce((s, v) => s + v * v, 0) / 2;
    return Float64Array.from({ length: M }, (_, m) => Math.exp(dotRow(m, y) - half) / Math.sqrt(M));
  }
  const norm = Math.max(Math.hypot(...x), 1e-12);
  const y = x.map((v) => v / norm);
  const out = new Float64Array(2 * M);
  for (let m = 0; m < M; m++) {
    out[m] = Math.sin(dotRow(m, y)) / Math.sqrt(M);
    out[M + m] = Math.cos(dotRow(m, y)) / Math.sqrt(M);
  }
  return out;
}

/** sum(out * g) of linear attention, dense, in float64. q [B, H, Nq, D], k/v [B, Hkv, Nk, *]. */
function loss(q: Float64Array, k: Float64Array, v: Float64Array, g: Float32Array, dims: { B: number; H: number; Hkv: number; Nq: number; Nk: number; D: number; Dv: number }, c: Config): number {
  const { B, H, Hkv, Nq, Nk, D, Dv } = dims;
  const real = (b: number, j: number) => !c.keyPadding || c.keyPadding[b * Nk + j] !== 0;
  let total = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      const row = (x: Float64Array, n: number, N: number, width: number, head: number, heads: number) => x.subarray(((b * heads + head) * N + n) * width, ((b * heads + head) * N + n + 1) * width);
      if (c.featureMap === 'efficient') {
        const rhoK = new Float64Array(Nk * D);
        for (let d = 0; d < D; d++) {
          let sum = 0;
          for (let j = 0; j < Nk; j++) if (real(b, j)) sum += (rhoK[j * D + d] = Math.exp(row(k, j, Nk, D, kvh, Hkv)[d]));
          for (let j = 0; j < Nk; j++) rhoK[j * D + d] /= sum;
        }
        for (let i = 0; i < Nq; i++) {
          const e = row(q, i, Nq, D, h, H).map(Math.exp);
          const s = e.reduce((a, x) => a + x, 0);
          for (let j = 0; j < Nk; j++) {
            let a = 0;
            for (let d = 0; d < D; d++) a += (e[d] / s) * rhoK[j * D + d];
            const vj = row(v, j, Nk, Dv, kvh, Hkv);
            for (let x = 0; x < Dv; x++) total += a * vj[x] * g[((b * H + h) * Nq + i) * Dv + x];
          }
        }
        continue;
      }
      const phiK = Array.from({ length: Nk }, (_, j) => phi(row(k, j, Nk, D, kvh, Hkv), c, h, D));
      for (let i = 0; i < Nq; i++) {
        const pq = phi(row(q, i, Nq, D, h, H), c, h, D);
        const num = new Float64Array(Dv);
        let den = c.eps ?? 1e-6;
        for (let j = 0; j < Nk; j++) {
          if (!real(b, j) || (c.causal && j > i + Nk - Nq)) continue;
          const a = pq.reduce((s, x, f) => s + x * phiK[j][f], 0);
          den += a;
          const vj = row(v, j, Nk, Dv, kvh, Hkv);
          for (let x = 0; x < Dv; x++) num[x] += a * vj[x];
        }
        for (let x = 0; x < Dv; x++) total += (num[x] / den) * g[((b * H + h) * Nq + i) * Dv + x];
      }
    }
  }
  return total;
}

/** The SIMD gradients against central differences of the float64 loss. */
function checkByDifferences(q: T, k: T, v: T, c: Config): void {
  const [B, H, Nq, D] = q.dims;
  const [, Hkv, Nk, Dv] = v.dims;
  const dims = { B, H, Hkv, Nq, Nk, D, Dv };
  const g = randn([B, H, Nq, Dv], 99);
  const got = one.backward('linear', q, k, v, g, c);
  const inputs = { q: Float64Array.from(q.data), k: Float64Array.from(k.data), v: Float64Array.from(v.data) };
  expectDifferences(inputs, { q: got.q!.data, k: got.k!.data, v: got.v!.data }, () => loss(inputs.q, inputs.k, inputs.v, g.data, dims, c));
}

describe('linear backward (SIMD)', () => {
  const cases = loadGradGolden('linear.json');

  it.each(cases.map((c) => [c.name, c] as const))('matches the golden %s', (_, c) => {
    const got = one.backward('linear', c.q, c.k, c.v, c.gradOutput, c.options);
    expectGradients(got, c.expected, 1e-4, c.name);
    expect(one.memory.inUse).toBe(0);
  });

  const favor = randn([3, 12, 8], 21);
  const rfa = randn([1, 6, 8], 22, 0.7);
  it.each([
    ['elu', { featureMap: 'elu' }],
    ['relu', { featureMap: 'relu' }],
    ['favor', { featureMap: 'favor', projection: favor, scale: 0.2 }],
    ['rfa', { featureMap: 'rfa', projection: rfa }],
  ] as const)('%s: finite differences over several chunks, grouped-query heads, padding, Nq != Nk, causal or not', (_, base) => {
    // 100 queries: two chunks of the sweeps
    const q = randn([2, 3, 100, 8], 1, 0.6);
    const k = randn([2, 1, 90, 8], 2, 0.6);
    const v = randn([2, 1, 90, 5], 3);
    const keyPadding = padding(2, 90, 4);
    checkByDifferences(q, k, v, { ...base, keyPadding });
    checkByDifferences(q, k, v, { ...base, keyPadding, causal: true });
    // more keys than queries (a decoding block) and more queries than keys
    checkByDifferences(randn([2, 3, 70, 8], 5, 0.6), k, v, { ...base, causal: true });
    checkByDifferences(q, randn([2, 3, 80, 8], 6, 0.6), randn([2, 3, 80, 5], 7), { ...base, causal: true, eps: 0.5 });
  });

  it('efficient: finite differences with padding and grouped-query heads', () => {
    checkByDifferences(randn([2, 2, 70, 8], 8), randn([2, 1, 80, 8], 9), randn([2, 1, 80, 6], 10), { featureMap: 'efficient', keyPadding: padding(2, 80, 11) });
  });

  it.each([
    ['elu causal', { causal: true }],
    ['relu', { featureMap: 'relu' }],
    ['favor causal', { featureMap: 'favor', numFeatures: 32, seed: 7, causal: true }],
    ['rfa', { featureMap: 'rfa', numFeatures: 16, seed: 8 }],
    ['efficient', { featureMap: 'efficient' }],
  ] as const)('runBackward on the pool gives the bits of backward: %s', async (_, options) => {
    const q = randn([2, 4, 300, 16], 1);
    const k = randn([2, 2, 280, 16], 2);
    const v = randn([2, 2, 280, 12], 3);
    const g = randn([2, 4, 300, 12], 4);
    const all = { ...options, keyPadding: padding(2, 280, 5) };
    const sync = one.backward('linear', q, k, v, g, all);
    const pooled = await two.runBackward('linear', q, k, v, g, all);
    for (const name of ['q', 'k', 'v'] as const) expect(bytes(pooled[name]!.data), name).toEqual(bytes(sync[name]!.data));
    expect(two.memory.inUse).toBe(0);
  });

  it('rejects a gradOutput of the wrong dims and stays usable', async () => {
    const q = randn([1, 2, 40, 8], 1);
    const g = randn([1, 2, 40, 8], 2);
    const before = one.backward('linear', q, q, q, g, { causal: true });
    expect(() => one.backward('linear', q, q, q, randn([1, 2, 39, 8], 3), { causal: true })).toThrow(/^gradOutput\.dims: expected the output's dims \[1, 2, 40, 8\], received \[1, 2, 39, 8\]/);
    await expect(two.runBackward('linear', q, q, q, randn([1, 2, 40, 7], 3))).rejects.toThrow(RangeError);
    expect(() => one.backward('linear', q, q, q, { data: [1, 2], dims: [1, 2, 40, 8] } as never)).toThrow(TypeError);
    expect(one.memory.inUse).toBe(0);
    expect(two.memory.inUse).toBe(0);
    expect(bytes(one.backward('linear', q, q, q, g, { causal: true }).q!.data)).toEqual(bytes(before.q!.data));
  });
});
