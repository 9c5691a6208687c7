// The SIMD backward pass of `linformer` (SPEC "Gradients"): gradients of q, k,
// v and of the projections e and f (e alone serving both sums both uses), per
// head or shared by heads: the gradient goldens; central differences of a
// dense float64 forward written here (grouped-query heads, padding, several
// query blocks); the pool gives the same bits; the relaxed-SIMD build; bad
// gradOutput leaves the instance usable.
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

/** sum(out * g) of linformer in float64: K' = e k, V' = f v (padded rows zero), softmax(scale q K'^T) V'. */
function loss(q: Float64Array, k: Float64Array, v: Float64Array, e: Float64Array, f: Float64Array, g: Float32Array, sizes: { B: number; H: number; Hkv: number; Nq: number; Nk: number; D: number; Dv: number; P: number; eHeads: number; fHeads: number }, pad: Uint8Array | null): number {
  const { B, H, Hkv, Nq, Nk, D, Dv, P, eHeads, fHeads } = sizes;
  const scale = 1 / Math.sqrt(D);
  let total = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kv = b * Hkv + Math.floor(h / (H / Hkv));
      const project = (proj: Float64Array, heads: number, x: Float64Array, Dx: number) => {
        const out = new Float64Array(P * Dx);
        const base = (heads === 1 ? 0 : h) * P * Nk;
        for (let r = 0; r < P; r++) {
          for (let j = 0; j < Nk; j++) {
            if (pad && pad[b * Nk + j] === 0) continue;
            for (let d = 0; d < Dx; d++) out[r * Dx + d] += proj[base + r * Nk + j] * x[(kv * Nk + j) * Dx + d];
          }
        }
        return out;
      };
      const kp = project(e, eHeads, k, D);
      const vp = project(f, fHeads, v, Dv);
      for (let i = 0; i < Nq; i++) {
        const row = (b * H + h) * Nq + i;
        const logits = Array.from({ length: P }, (_, r) => {
          let s = 0;
          for (let d = 0; d < D; d++) s += q[row * D + d] * kp[r * D + d];
          return s * scale;
        });
        const top = Math.max(...logits);
        const w = logits.map((s) => Math.exp(s - top));
        const sum = w.reduce((a, x) => a + x, 0);
        for (let r = 0; r < P; r++) for (let d = 0; d < Dv; d++) total += (w[r] / sum) * vp[r * Dv + d] * g[row * Dv + d];
      }
    }
  }
  return total;
}

function checkByDifferences(q: T, k: T, v: T, e: T, f: T | null, pad: Uint8Array | null): void {
  const [B, H, Nq, D] = q.dims;
  const [, Hkv, Nk, Dv] = v.dims;
  const P = e.dims[e.dims.length - 2];
  const heads = (t: T) => (t.dims.length === 3 ? t.dims[0] : 1);
  const sizes = { B, H, Hkv, Nq, Nk, D, Dv, P, eHeads: heads(e), fHeads: heads(f ?? e) };
  const g = randn([B, H, Nq, Dv], 99);
  const got = one.backward('linformer', q, k, v, g, { e, f: f ?? undefined, keyPadding: pad ?? undefined });
  const x = { q: Float64Array.from(q.data), k: Float64Array.from(k.data), v: Float64Array.from(v.data), e: Float64Array.from(e.data), ...(f ? { f: Float64Array.from(f.data) } : {}) };
  const params = got.params as Record<string, { data: Float32Array; dims: number[] }>;
  expect(Object.keys(params).sort()).toEqual(f ? ['e', 'f'] : ['e']);
  expect(params.e.data.length).toBe(e.data.length);
  const grads: Record<string, Float32Array> = { q: got.q!.data, k: got.k!.data, v: got.v!.data, e: params.e.data, ...(f ? { f: params.f.data } : {}) };
  expectDifferences(x, grads, () => loss(x.q, x.k, x.v, x.e, x.f ?? x.e, g.data, sizes, pad));
}

describe('linformer backward (SIMD)', () => {
  const cases = loadGradGolden('linformer.json');

  it.each(cases.map((c) => [c.name, c] as const))('matches the golden %s', (_, c) => {
    const got = one.backward('linformer', c.q, c.k, c.v, c.gradOutput, c.options);
    expectGradients(got, c.expected, 1e-4, c.name);
    expect(one.memory.inUse).toBe(0);
  });

  it('finite differences: grouped-query heads, padding, e shared by heads serving both, several query blocks', () => {
    checkByDifferences(randn([2, 4, 150, 8], 1), randn([2, 2, 40, 8], 2), randn([2, 2, 40, 6], 3), randn([1, 9, 40], 4, 0.3), null, padding(2, 40, 5));
  });

  it('finite differences: e and f per head, no padding', () => {
    checkByDifferences(randn([1, 3, 20, 8], 6), randn([1, 3, 30, 8], 7), randn([1, 3, 30, 5], 8), randn([3, 6, 30], 9, 0.3), randn([3, 6, 30], 10, 0.3), null);
    checkByDifferences(randn([1, 2, 20, 8], 11), randn([1, 1, 30, 8], 12), randn([1, 1, 30, 5], 13), randn([2, 6, 30], 14, 0.3), randn([6, 30], 15, 0.3), padding(1, 30, 16));
  });

  it.each([
    ['e shared', { e: randn([1, 48, 650], 11, 0.04) }],
    ['e and f per head', { e: randn([4, 48, 650], 12, 0.04), f: randn([4, 48, 650], 13, 0.04) }],
  ] as const)('runBackward on the pool gives the bits of backward: %s', async (_, options) => {
    const q = randn([2, 4, 300, 16], 1);
    const k = randn([2, 2, 650, 16], 2);
    const v = randn([2, 2, 650, 12], 3);
    const g = randn([2, 4, 300, 12], 4);
    const all = { ...options, keyPadding: padding(2, 650, 5) };
    const sync = one.backward('linformer', q, k, v, g, all);
    const pooled = await two.runBackward('linformer', q, k, v, g, all);
    for (const name of ['q', 'k', 'v'] as const) expect(bytes(pooled[name]!.data), name).toEqual(bytes(sync[name]!.data));
    for (const name of Object.keys(sync.params)) {
      expect(bytes((pooled.params[name] as { data: Float32Array }).data), name).toEqual(bytes((sync.params[name] as { data: Float32Array }).data));
    }
    expect(two.memory.inUse).toBe(0);
  });

  it('rejects a gradOutput of the wrong dims and stays usable', async () => {
    const q = randn([1, 2, 40, 8], 1);
    const g = randn([1, 2, 40, 8], 2);
    const options = { e: randn([5, 40], 3) };
    const before = one.backward('linformer', q, q, q, g, options);
    expect(() => one.backward('linformer', q, q, q, randn([1, 2, 40, 9], 3), options)).toThrow(/^gradOutput\.dims: expected the output's dims \[1, 2, 40, 8\], received \[1, 2, 40, 9\]/);
    await expect(two.runBackward('linformer', q, q, q, randn([2, 40, 8], 3), options)).rejects.toThrow(RangeError);
    expect(one.memory.inUse).toBe(0);
    expect(two.memory.inUse).toBe(0);
    expect(bytes(one.backward('linformer', q, q, q, g, options).k!.data)).toEqual(bytes(before.k!.data));
  });
});
