// Soak: many mixed calls on one instance (several variants and sizes,
// synchronous and pooled, overlapping, with pinned tensors, recurrent
// states and failing calls among them). After warm-up the memory never
// grows, nothing stays in use, and every call gives the bits it gave the
// first time. SOAK_CALLS sets the count (`npm run soak`: 10,000).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type VariantName } from '../dist/index.js';
import { maxAbsDiff } from './golden.js';
import { padding, randn } from './random.js';

const CALLS = Number(process.env.SOAK_CALLS ?? 500);

let attn: Attention;
let js: Attention;
beforeAll(async () => {
  attn = await createAttention({ backend: 'wasm', threads: 2 });
  js = await createAttention({ backend: 'js' });
});
afterAll(() => attn.dispose());

interface Recipe {
  readonly name: VariantName;
  readonly q: { data: Float32Array; dims: number[] } | null;
  readonly k: { data: Float32Array; dims: number[] } | null;
  readonly v: { data: Float32Array; dims: number[] };
  readonly options: object;
}

/** The calls the soak cycles through: each variant at a few sizes. */
function recipes(): Recipe[] {
  const out: Recipe[] = [];
  for (const [B, H, N, D, Dv] of [[1, 2, 17, 8, 8], [2, 3, 64, 16, 12], [1, 1, 130, 32, 32]]) {
    const seed = N * 7 + D;
    const q = randn([B, H, N, D], seed);
    const k = randn([B, H, N, D], seed + 1);
    const v = randn([B, H, N, Dv], seed + 2);
    const keyPadding = padding(B, N, seed + 3);
    const add = (name: VariantName, options: object, shared = false) => out.push({ name, q, k: shared ? null : k, v, options });
    add('full', { causal: true, keyPadding });
    add('local', { window: 5 });
    add('sparse', { patterns: [{ type: 'local', window: 3 }, { type: 'strided', stride: 4 }, { type: 'random', count: 2, seed: 1 }], causal: true });
    add('lsh', { bucketSize: 8, rounds: 2, buckets: 4, seed: 3 }, true);
    add('routing', { window: 8, clusters: 3, seed: 4, keyPadding });
    add('linear', { featureMap: 'favor', numFeatures: 16, seed: 5, causal: true });
    add('compressed', { factor: 3, causal: true });
    add('linformer', { e: randn([H, 6, N], seed + 4, 1 / Math.sqrt(N)) });
    add('mixed', { heads: Array.from({ length: H }, (_, h) => (h % 2 ? { kind: 'full' } : { kind: 'local', window: 2 })) });
    if (N % 4 === 0) add('sinkhorn', { blockSize: 4 });
    out.push({ name: 'synthesizer', q: null, k: null, v, options: { logits: randn([H, N, N], seed + 5) } });
  }
  return out;
}

/** A 32-bit FNV-1a hash of a result's bytes. */
function hash(data: Float32Array): number {
  let h = 0x811c9dc5;
  for (const byte of new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

describe('soak', () => {
  it(`${CALLS} mixed calls keep memory flat and results exact`, async () => {
    const all = recipes();
    const first = new Map<number, number>();
    const run = async (i: number): Promise<void> => {
      const r = all[i % all.length];
      const kind = i % 7;
      let result: Float32Array;
      if (kind === 0) {
        // pooled, with a synchronous call running on top of its frame meanwhile
        const pending = attn.run(r.name, r.q, r.k, r.v, r.options);
        const other = all[(i + 1) % all.length];
        attn.apply(other.name, other.q, other.k, other.v, other.options);
        result = (await pending).data;
      } else if (kind === 3 && r.q) {
        // inputs pinned in WebAssembly memory
        const q = attn.tensor(r.q.dims, r.q.data);
        result = attn.apply(r.name, q, r.k === null ? null : r.k, r.v, r.options).data;
        q.free();
      } else if (kind === 5) {
        // a failing call in between: the instance must not notice
        expect(() => attn.apply(r.name, r.q, r.k, r.v, { ...r.options, scale: Number.NaN })).toThrow(TypeError);
        const state = attn.linearState({ dim: 8, heads: 2 });
        state.step(new Float32Array(16), new Float32Array(16), new Float32Array(16));
        state.dispose();
        result = attn.apply(r.name, r.q, r.k, r.v, r.options).data;
      } else {
        result = attn.apply(r.name, r.q, r.k, r.v, r.options).data;
      }
      const key = i % all.length;
      if (!first.has(key)) first.set(key, hash(result));
      expect(hash(result), `call ${i}: ${r.name}`).toBe(first.get(key));
    };

    // warm-up: every recipe in every kind of call (7 kinds, coprime with the cycle unless it is a multiple of 7)
    const warmUp = all.length * 7;
    for (let i = 0; i < Math.min(warmUp, CALLS); i++) await run(i);
    const size = attn.memory.size;
    for (let i = warmUp; i < CALLS; i++) {
      await run(i);
      expect(attn.memory.size, `memory grew at call ${i}`).toBe(size);
    }
    expect(attn.memory.inUse).toBe(0);

    // the last call is still exact against the float64 reference
    const last = all[(CALLS - 1) % all.length];
    const got = attn.apply(last.name, last.q, last.k, last.v, last.options).data;
    expect(maxAbsDiff(got, js.apply(last.name, last.q, last.k, last.v, last.options).data)).toBeLessThanOrEqual(1e-4);
  }, Math.max(120_000, CALLS * 100));
});
