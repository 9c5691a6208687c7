// Every case of test/golden/grad/*.json through attn.backward (JS backend, the default wasm
// instance) and attn.runBackward, each compared with the golden gradients (never with another
// backend): max |got - want| / max(1, max |want|) <= 1e-4 per tensor (test/golden/grad/README.md);
// and runBackward on the pool gives the bits of backward on one thread (SPEC "Gradients").
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, variantNames, type Attention, type GradientTensors, type VariantName } from '../dist/index.js';
import { bytes } from './backends.js';
import { flatParams, gradGoldenFiles, loadGradGolden, relativeError, type GradGoldenCase } from './grad-golden.js';

const TOLERANCE = 1e-4;
const instances: Record<string, Attention> = {};
beforeAll(async () => {
  instances.js = await createAttention({ backend: 'js' });
  instances.wasm = await createAttention();
});

type Run = (attn: Attention, c: GradGoldenCase) => Promise<GradientTensors>;
const runs: Record<string, [string, Run]> = {
  'js backward': ['js', async (attn, c) => attn.backward(c.variant as VariantName, c.q, c.k, c.v, c.gradOutput, c.options)],
  'wasm backward': ['wasm', async (attn, c) => attn.backward(c.variant as VariantName, c.q, c.k, c.v, c.gradOutput, c.options)],
  'wasm runBackward': ['wasm', (attn, c) => attn.runBackward(c.variant as VariantName, c.q, c.k, c.v, c.gradOutput, c.options)],
};

/** Each gradient's worst error, by name; a missing or misshapen gradient fails the test. */
function compare(got: GradientTensors, c: GradGoldenCase): Record<string, number> {
  const errors: Record<string, number> = {};
  for (const input of ['q', 'k', 'v'] as const) {
    const want = c.expected[input];
    if (want === null) {
      expect(got[input], input).toBeNull();
      continue;
    }
    expect(got[input]?.dims, `${input}.dims`).toEqual(want.dims);
    errors[input] = relativeError(got[input]!.data, want.data);
  }
  const gotParams = new Map(flatParams(got.params));
  const wantParams = flatParams(c.expected.params);
  expect([...gotParams.keys()].sort()).toEqual(wantParams.map(([path]) => path).sort());
  for (const [path, want] of wantParams) {
    expect(gotParams.get(path)!.dims, `${path}.dims`).toEqual(want.dims);
    errors[path] = relativeError(gotParams.get(path)!.data, want.data);
  }
  return errors;
}

it('covers every registered variant', () => {
  const covered = new Set(gradGoldenFiles.flatMap((f) => loadGradGolden(f).map((c) => c.variant)));
  expect(variantNames.filter((n) => !covered.has(n))).toEqual([]);
});

describe.each(gradGoldenFiles)('%s', (file) => {
  const cases = loadGradGolden(file);
  describe.each(Object.keys(runs))('%s', (run) => {
    it.each(cases.map((c, index) => [`${index}: ${c.name}`, c] as const))('%s', async (_name, c) => {
      const [instance, call] = runs[run];
      const errors = compare(await call(instances[instance], c), c);
      for (const [name, error] of Object.entries(errors)) expect(error, name).toBeLessThanOrEqual(TOLERANCE);
    });
  });
});

/** Every gradient of a call, q, k, v then the params by path, as bytes. */
const gradientBytes = (g: GradientTensors): [string, Uint8Array][] =>
  [...flatParams({ q: g.q, k: g.k, v: g.v }, 'grad'), ...flatParams(g.params)].map(([path, t]) => [path, bytes(t.data)]);

describe.each(gradGoldenFiles)('%s: runBackward has the bits of backward', (file) => {
  it.each(loadGradGolden(file).map((c, index) => [`${index}: ${c.name}`, c] as const))('%s', async (_name, c) => {
    const name = c.variant as VariantName;
    const pooled = await instances.wasm.runBackward(name, c.q, c.k, c.v, c.gradOutput, c.options);
    expect(gradientBytes(pooled)).toEqual(gradientBytes(instances.wasm.backward(name, c.q, c.k, c.v, c.gradOutput, c.options)));
  });
});
