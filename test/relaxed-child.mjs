// Run by relaxed.test.ts under `node --experimental-wasm-relaxed-simd`: every
// golden case on the relaxed-SIMD build; prints the features and each case's max error.
import { readFileSync, readdirSync } from 'node:fs';
import { createAttention } from '../dist/index.js';

const revive = (value) => {
  if (Array.isArray(value)) return value.map(revive);
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value.dims) && Array.isArray(value.data)) {
    const data = Float32Array.from(value.data);
    for (const at of value.neginf ?? []) data[at] = -Infinity;
    return { dims: value.dims, data };
  }
  if (Array.isArray(value.u8)) return Uint8Array.from(value.u8);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
};

const attn = await createAttention({ backend: 'wasm', relaxedSimd: true });
const dir = new URL('./golden/', import.meta.url);
const errors = {};
// the variant files (the ONNX operator files have cases of another form)
for (const file of readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('onnx-'))) {
  for (const [index, c] of revive(JSON.parse(readFileSync(new URL(file, dir), 'utf8'))).entries()) {
    const out = attn.apply(c.variant, c.q, c.k, c.v, c.options);
    let worst = out.data.length === c.expected.data.length ? 0 : Infinity;
    for (let i = 0; i < out.data.length; i++) worst = Math.max(worst, Math.abs(out.data[i] - c.expected.data[i]) || 0, Number.isNaN(out.data[i]) ? Infinity : 0);
    errors[`${file}#${index} ${c.name}`] = worst;
  }
}
console.log(JSON.stringify({ features: attn.features, errors }));
