// Loading: the module from its default place, from bytes, from a compiled
// module and from a URL; the JS fallback where WebAssembly SIMD is missing.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAttention, hasSimd } from '../dist/index.js';
import { maxAbsDiff } from './golden.js';
import { randn } from './random.js';

const wasmUrl = new URL('../dist/attention.wasm', import.meta.url);
const q = randn([1, 2, 21, 8], 1);
const k = randn([1, 2, 21, 8], 2);
const v = randn([1, 2, 21, 8], 3);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('loading', () => {
  it('Node has WebAssembly SIMD, so auto picks the wasm backend', async () => {
    expect(hasSimd()).toBe(true);
    expect((await createAttention()).backend).toBe('wasm');
  });

  it.each([
    ['bytes', () => readFileSync(wasmUrl)],
    ['an ArrayBuffer', () => new Uint8Array(readFileSync(wasmUrl)).buffer],
    ['a compiled module', () => new WebAssembly.Module(readFileSync(wasmUrl))],
    ['a URL', () => wasmUrl],
    ['a URL string', () => wasmUrl.href],
  ])('takes the module as %s', async (_name, source) => {
    const attn = await createAttention({ backend: 'wasm', wasm: source() });
    const js = await createAttention({ backend: 'js' });
    expect(maxAbsDiff(attn.full(q, k, v).data, js.full(q, k, v).data)).toBeLessThanOrEqual(1e-4);
  });

  it('falls back to the JS backend without SIMD, unless wasm is demanded', async () => {
    vi.spyOn(WebAssembly, 'validate').mockReturnValue(false);
    expect(hasSimd()).toBe(false);
    const attn = await createAttention();
    expect(attn.backend).toBe('js');
    const want = (await createAttention({ backend: 'js' })).full(q, k, v, { causal: true });
    expect(maxAbsDiff(attn.full(q, k, v, { causal: true }).data, want.data)).toBe(0);
    await expect(createAttention({ backend: 'wasm' })).rejects.toThrow(/no WebAssembly SIMD/);
  });
});
