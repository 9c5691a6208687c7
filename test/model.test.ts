// SPEC "Attention as models use it": grouped-query heads, layout 'bnhd', and mask / bias /
// softcap, through the public facade on both backends (on wasm every kernel reads the
// shared kv heads, and the flash engine the terms and the layout, in place).
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, variantNames, type Attention, type VariantName } from '../dist/index.js';
import { maxAbsDiff } from './golden.js';
import { padding, randn, repeatInterleaveHeads, swapHeadsAndPositions, type T } from './random.js';

const backends: Record<string, Attention> = {};
beforeAll(async () => {
  backends.wasm = await createAttention({ backend: 'wasm' });
  backends.js = await createAttention({ backend: 'js' });
});

const [B, H, Hkv, N, D, Dv] = [2, 6, 2, 16, 8, 5];
const G = H / Hkv;
const q = randn([B, H, N, D], 1);
const k = randn([B, Hkv, N, D], 2);
const v = randn([B, Hkv, N, Dv], 3);
const keyPadding = padding(B, N, 4);

// Per-head parameters keep their leading axis of H query heads.
const gqaCases: [VariantName, object][] = [
  ['full', { causal: true, keyPadding }],
  ['local', { before: 3, after: 1, keyPadding }],
  ['strided', { stride: 3, window: 2, causal: true }],
  ['global', { tokens: [0, 5] }],
  ['sparse', { patterns: [{ type: 'local', window: 1 }, { type: 'random', count: 2, seed: 9 }], keyPadding }],
  ['mixed', { heads: [{ kind: 'local', window: 2 }, { kind: 'full' }, { kind: 'linear' }, { kind: 'strided', stride: 2 }, { kind: 'full', causal: true }, { kind: 'global', tokens: [1] }] }],
  ['routing', { window: 5, centroids: randn([H, 3, D], 5), causal: true, keyPadding }],
  ['routing', { window: 6, clusters: 3, iterations: 4, seed: 7 }],
  ['sinkhorn', { blockSize: 4, keyPadding }],
  ['sinkhorn', { blockSize: 4, causal: true, sortLogits: randn([B, H, 4, 4], 6) }],
  ['linformer', { e: randn([H, 4, N], 7), f: randn([1, 4, N], 8), keyPadding }],
  ['compressed', { factor: 3, keyPadding, causal: true }],
  ['compressed', { factor: 4, convK: { weight: randn([H, D, D, 4], 9, 0.3), bias: randn([H, D], 10) }, nullKey: randn([H, D], 11), nullValue: randn([H, Dv], 12) }],
  ['linear', { causal: true, keyPadding }],
  ['linear', { featureMap: 'favor', projection: randn([H, 12, D], 13, 0.5) }],
  ['linear', { featureMap: 'efficient', keyPadding }],
];

describe.each(['js', 'wasm'])('grouped-query attention (%s)', (backend) => {
  it.each(gqaCases)('%s: equals the call with k and v repeated to H heads (repeat_interleave)', (name, options) => {
    const attn = backends[backend];
    const grouped = attn.apply(name, q, k, v, options);
    const repeated = attn.apply(name, q, repeatInterleaveHeads(k, G), repeatInterleaveHeads(v, G), options);
    expect(grouped.dims).toEqual([B, H, N, Dv]);
    // a kernel reading the shared head in place does the repeated call's arithmetic exactly
    expect(maxAbsDiff(grouped.data, repeated.data)).toBe(0);
  });

  it("needs WebAssembly memory for Hkv heads, not H: no per-query-head copy of k or v", async () => {
    if (backend === 'js') return; // no WebAssembly memory
    const [Hq, Nk, Dk] = [8, 2048, 64];
    const [qm, km, vm] = [randn([1, Hq, 64, Dk], 16), randn([1, 1, Nk, Dk], 17), randn([1, 1, Nk, Dk], 18)];
    const sizeAfter = async (kx: T, vx: T) => {
      const fresh = await createAttention({ backend: 'wasm', threads: 1 });
      fresh.full(qm, kx, vx);
      return fresh.memory.size;
    };
    const grouped = await sizeAfter(km, vm);
    const repeated = await sizeAfter(repeatInterleaveHeads(km, Hq), repeatInterleaveHeads(vm, Hq));
    // the repeated call holds 7 more copies of k and v (7 MiB); the grouped one none of them
    expect(repeated - grouped).toBeGreaterThanOrEqual(2 * (Hq - 1) * Nk * Dk * 4 - 2 ** 16);
  });

  it('weights() of grouped heads equal those of repeated heads', () => {
    const attn = backends[backend];
    for (const [name, options] of gqaCases) {
      const grouped = attn.weights(name, q, k, options);
      expect(maxAbsDiff(grouped.data, attn.weights(name, q, repeatInterleaveHeads(k, G), options).data), name).toBe(0);
    }
  });

  it('multi-query attention (Hkv = 1) on the thread pool equals the call on this thread', async () => {
    const attn = backends[backend];
    const [k1, v1] = [randn([B, 1, N, D], 14), randn([B, 1, N, Dv], 15)];
    for (const [name, options] of gqaCases) {
      expect(maxAbsDiff((await attn.run(name, q, k1, v1, options)).data, attn.apply(name, q, k1, v1, options).data), name).toBe(0);
    }
  });
});

/** One call's inputs for `layout: 'bnhd'` tests: shapes per variant (lsh shares q and k, synthesizer takes neither). */
function layoutCase(name: VariantName): { q: T | null; k: T | null; v: T; options: object } {
  const [qh, kh, vh] = [randn([B, 4, N, D], 21), randn([B, 2, N, D], 22), randn([B, 2, N, Dv], 23)];
  const full = { q: qh, k: kh, v: vh };
  switch (name) {
    case 'local':
      return { ...full, options: { window: 2, causal: true } };
    case 'strided':
      return { ...full, options: { stride: 2 } };
    case 'global':
      return { ...full, options: { tokens: [3] } };
    case 'sparse':
      return { ...full, options: { patterns: [{ type: 'local', window: 1 }, { type: 'global', tokens: [0] }] } };
    case 'mixed':
      return { ...full, options: { heads: [{ kind: 'full' }, { kind: 'local', window: 1 }, { kind: 'linear' }, { kind: 'sinkhorn', blockSize: 4 }] } };
    case 'lsh':
      return { q: qh, k: null, v: randn([B, 4, N, Dv], 24), options: { bucketSize: 4, rounds: 2, buckets: 4, seed: 3 } };
    case 'routing':
      return { ...full, options: { window: 4, clusters: 2, seed: 1 } };
    case 'sinkhorn':
      return { ...full, options: { blockSize: 4 } };
    case 'linformer':
      return { ...full, options: { e: randn([4, 3, N], 25) } };
    case 'compressed':
      return { ...full, options: { factor: 3 } };
    case 'synthesizer':
      return { q: null, k: null, v: randn([B, 4, N, Dv], 26), options: { logits: randn([4, N, N], 27) } };
    default:
      return { ...full, options: { causal: true } };
  }
}

describe.each(['js', 'wasm'])("layout 'bnhd' (%s)", (backend) => {
  it.each(variantNames)('%s: [B, N, H, D] in and out equals the bhnd call transposed', (name) => {
    const attn = backends[backend];
    const c = layoutCase(name);
    const swap = (x: T | null) => (x ? swapHeadsAndPositions(x) : null);
    const bhnd = attn.apply(name, c.q, c.k, c.v, c.options);
    const bnhd = attn.apply(name, swap(c.q), swap(c.k), swap(c.v), { ...c.options, layout: 'bnhd' });
    expect(bnhd.dims).toEqual([B, N, 4, Dv]);
    expect(bnhd.data).toEqual(swapHeadsAndPositions(bhnd as T).data);
    const weights = attn.weights(name, swap(c.q), swap(c.k), { ...c.options, layout: 'bnhd' });
    expect(weights.data).toEqual(attn.weights(name, c.q, c.k, c.options).data);
  });

  it("takes layout 'bhnd' as the default", () => {
    const attn = backends[backend];
    expect(attn.full(q, k, v, { layout: 'bhnd' }).data).toEqual(attn.full(q, k, v).data);
  });
});

/** A `[dims]` Uint8Array mask from a rule. */
function maskOf(dims: number[], allowed: (index: number[]) => boolean): { data: Uint8Array; dims: number[] } {
  const data = new Uint8Array(dims.reduce((a, b) => a * b, 1));
  const index = dims.map(() => 0);
  for (let n = 0; n < data.length; n++) {
    let rest = n;
    for (let axis = dims.length - 1; axis >= 0; axis--) {
      index[axis] = rest % dims[axis];
      rest = Math.floor(rest / dims[axis]);
    }
    data[n] = allowed(index) ? 1 : 0;
  }
  return { data, dims };
}

describe.each(['js', 'wasm'])('mask, bias and softcap (%s)', (backend) => {
  const nq = 12;
  const qs = randn([B, H, nq, D], 31);
  const pattern = (i: number, j: number) => (i * 7 + j * 3) % 5 !== 0;

  it('a mask is the same in every broadcast form, and equals a -Infinity bias', () => {
    const attn = backends[backend];
    for (const name of ['full', 'local', 'strided', 'global', 'sparse'] as const) {
      const own = { full: {}, local: { window: 4 }, strided: { stride: 2 }, global: { tokens: [2] }, sparse: { patterns: [{ type: 'local', window: 3 }] } }[name];
      const rank2 = attn.apply(name, qs, k, v, { ...own, mask: maskOf([nq, N], ([i, j]) => pattern(i, j)) });
      const rank3 = attn.apply(name, qs, k, v, { ...own, mask: maskOf([1, nq, N], ([, i, j]) => pattern(i, j)) });
      const rank4 = attn.apply(name, qs, k, v, { ...own, mask: maskOf([B, H, nq, N], ([, , i, j]) => pattern(i, j)) });
      const bias = maskOf([nq, N], ([i, j]) => pattern(i, j));
      const asBias = attn.apply(name, qs, k, v, { ...own, bias: { data: Float32Array.from(bias.data, (m) => (m ? 0 : -Infinity)), dims: bias.dims } });
      expect(rank3.data, name).toEqual(rank2.data);
      expect(rank4.data, name).toEqual(rank2.data);
      expect(maxAbsDiff(asBias.data, rank2.data), name).toBeLessThanOrEqual(backend === 'js' ? 0 : 1e-6);
    }
  });

  it('a mask of the padded keys equals keyPadding; rows with nothing visible are zeros', () => {
    const attn = backends[backend];
    const asMask = attn.full(qs, k, v, { mask: maskOf([B, 1, 1, N], ([b, , , j]) => keyPadding[b * N + j] === 1) });
    expect(maxAbsDiff(asMask.data, attn.full(qs, k, v, { keyPadding }).data)).toBeLessThanOrEqual(1e-4);
    const empty = attn.local(qs, k, v, { window: 2, mask: maskOf([nq, N], ([i]) => i !== 3) });
    for (let bh = 0; bh < B * H; bh++) expect(Array.from(empty.data.subarray((bh * nq + 3) * Dv, (bh * nq + 4) * Dv))).toEqual(new Array(Dv).fill(0));
  });

  it('the logits are softcap(scale q.k) + bias: weights() against the formula, per head of a [H, Nq, Nk] bias', () => {
    const attn = backends[backend];
    const bias = randn([H, nq, N], 32);
    const [c, scale] = [0.8, 0.4];
    const P = attn.weights('full', qs, k, { bias, softcap: c, scale });
    for (const [b, h, i] of [[0, 0, 0], [1, 5, 11], [1, 2, 6]]) {
      const g = Math.floor(h / G);
      const logits = Array.from({ length: N }, (_, j) => {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += qs.data[((b * H + h) * nq + i) * D + d] * k.data[((b * Hkv + g) * N + j) * D + d];
        return c * Math.tanh((scale * dot) / c) + bias.data[(h * nq + i) * N + j];
      });
      const max = Math.max(...logits);
      const sum = logits.reduce((s, l) => s + Math.exp(l - max), 0);
      const row = P.data.subarray(((b * H + h) * nq + i) * N, ((b * H + h) * nq + i + 1) * N);
      expect(maxAbsDiff(row, logits.map((l) => Math.exp(l - max) / sum))).toBeLessThanOrEqual(1e-6);
    }
  });

  it('a bias constant along each row changes nothing; a very large cap is no cap', () => {
    const attn = backends[backend];
    const plain = attn.local(qs, k, v, { window: 3 });
    const shifted = attn.local(qs, k, v, { window: 3, bias: { data: Float32Array.from({ length: nq }, (_, i) => i - 4), dims: [nq, 1] } });
    expect(maxAbsDiff(shifted.data, plain.data)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(attn.local(qs, k, v, { window: 3, softcap: 1e6 }).data, plain.data)).toBeLessThanOrEqual(1e-5);
  });

  it("mask() of a pattern variant shows the mask (batch 0, head 0)", () => {
    const attn = backends[backend];
    const mask = maskOf([nq, N], ([i, j]) => pattern(i, j));
    const shown = attn.mask('local', nq, N, { window: 2, mask });
    const window = attn.mask('local', nq, N, { window: 2 });
    expect(Array.from(shown)).toEqual(Array.from(window, (w, n) => (w && mask.data[n] ? 1 : 0)));
  });

  it("mixed applies its top-level mask, bias and softcap to every head, each its own slice; a head's own option replaces it", () => {
    const attn = backends[backend];
    const heads = [{ kind: 'local', window: 2 }, { kind: 'full' }, { kind: 'strided', stride: 3 }, { kind: 'full', causal: true }, { kind: 'global', tokens: [0] }, { kind: 'sparse', patterns: [{ type: 'local', window: 1 }] }];
    const mask = maskOf([B, H, nq, N], ([b, h, i, j]) => (b + h + i * j) % 4 !== 1);
    const bias = randn([1, H, nq, N], 33);
    const together = attn.mixed(qs, k, v, { heads, mask, bias, softcap: 2 });
    const own = (h: number) => ({
      mask: { data: Uint8Array.from({ length: B * nq * N }, (_, n) => mask.data[((Math.floor(n / (nq * N)) * H + h) * nq * N) + (n % (nq * N))]), dims: [B, 1, nq, N] },
      bias: { data: bias.data.slice(h * nq * N, (h + 1) * nq * N), dims: [nq, N] },
      softcap: 2,
    });
    const separately = attn.mixed(qs, k, v, { heads: heads.map((spec, h) => ({ ...spec, ...own(h) })) });
    expect(together.data).toEqual(separately.data);
    const replaced = attn.mixed(qs, k, v, { heads: heads.map((spec, h) => (h === 1 ? { ...spec, softcap: 0.5 } : spec)), softcap: 2 });
    const byHand = attn.mixed(qs, k, v, { heads: heads.map((spec, h) => ({ ...spec, softcap: h === 1 ? 0.5 : 2 })) });
    expect(replaced.data).toEqual(byHand.data);
  });
});
