// The relaxed-SIMD build (fused multiply-add) passes the golden cases; Node 20
// runs it only with a flag, so it runs in a child process.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createAttention, hasRelaxedSimd } from '../dist/index.js';

describe('relaxed SIMD build', () => {
  it('is not picked where the runtime lacks relaxed SIMD, and demanding it is a clear error', async () => {
    if (hasRelaxedSimd()) return; // a runtime with relaxed SIMD on by default picks it: covered below
    expect((await createAttention()).features).toEqual({ simd: true, relaxedSimd: false });
    await expect(createAttention({ relaxedSimd: true })).rejects.toThrow(/no relaxed SIMD/);
  });

  it('passes every golden case under --experimental-wasm-relaxed-simd', () => {
    const child = fileURLToPath(new URL('./relaxed-child.mjs', import.meta.url));
    const printed = execFileSync(process.execPath, ['--experimental-wasm-relaxed-simd', child], { encoding: 'utf8' });
    const { features, errors } = JSON.parse(printed) as { features: object; errors: Record<string, number> };
    expect(features).toEqual({ simd: true, relaxedSimd: true });
    expect(Object.keys(errors).length).toBeGreaterThan(70);
    expect(Object.keys(errors).filter((name) => name.startsWith('onnx-linear-attention.json')).length).toBeGreaterThan(50);
    expect(Object.keys(errors).filter((name) => name.startsWith('grad/')).length).toBeGreaterThan(100);
    for (const [name, error] of Object.entries(errors)) expect(error, name).toBeLessThanOrEqual(1e-4);
  });
});
