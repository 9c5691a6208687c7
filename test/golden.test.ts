// Every golden case of test/golden/*.json through the public facade, on both backends.
// (Until the flash engine reads mask, bias, softcap and grouped-query heads, the wasm
// backend runs full and pattern calls with them on the float64 reference.)
import { readdirSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, variantNames, type Attention, type VariantName } from '../dist/index.js';
import { isOnnxFile, loadGolden, maxAbsDiff } from './golden.js';

// the ONNX operator files have their own test (onnx-attention.test.ts)
const files = readdirSync(new URL('./golden/', import.meta.url)).filter((f) => f.endsWith('.json') && !isOnnxFile(f));
const backends: Record<string, Attention> = {};
beforeAll(async () => {
  backends.wasm = await createAttention({ backend: 'wasm' });
  backends.js = await createAttention({ backend: 'js' });
});

it('covers every registered variant', () => {
  const covered = new Set(files.flatMap((f) => loadGolden(f).map((c) => c.variant)));
  expect(variantNames.filter((n) => !covered.has(n))).toEqual([]);
});

describe.each(files)('%s', (file) => {
  for (const c of loadGolden(file)) {
    it.each(['wasm', 'js'])(`${c.name} (%s)`, (backend) => {
      const out = backends[backend].apply(c.variant as VariantName, c.q, c.k, c.v!, c.options);
      expect(out.dims).toEqual(c.expected.dims);
      expect(maxAbsDiff(out.data, c.expected.data)).toBeLessThanOrEqual(1e-4);
    });
  }
});
