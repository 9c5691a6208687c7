// Run by the test/grad-*.test.ts files under `node --experimental-wasm-relaxed-simd`:
// the gradient goldens named on the command line (test/golden/grad/<file>) on the
// relaxed-SIMD build; prints the features and each case's worst relative error
// over its gradients (the measure of test/golden/grad/README.md).
import { readFileSync } from 'node:fs';
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

const relative = (got, want) => {
  if (!got || got.data.length !== want.data.length) return Infinity;
  let scale = 1;
  for (const w of want.data) scale = Math.max(scale, Math.abs(w));
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Number.isNaN(got.data[i]) ? Infinity : Math.abs(got.data[i] - want.data[i]));
  return worst / scale;
};

/** The worst error over every tensor of want, nested as params are. */
const worstOf = (got, want) => {
  if (want === null || want === undefined) return got ? Infinity : 0;
  if (want.data instanceof Float32Array) return relative(got, want);
  return Math.max(0, ...Object.entries(want).map(([key, w]) => worstOf(got?.[key], w)));
};

const attn = await createAttention({ backend: 'wasm', relaxedSimd: true });
const errors = {};
for (const file of process.argv.slice(2)) {
  for (const c of revive(JSON.parse(readFileSync(new URL(`./golden/grad/${file}`, import.meta.url), 'utf8')))) {
    const got = attn.backward(c.variant, c.q, c.k, c.v, c.gradOutput, c.options);
    errors[`${file} ${c.name}`] = worstOf(got, c.expected);
  }
}
console.log(JSON.stringify({ features: attn.features, errors }));
