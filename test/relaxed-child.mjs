// Run by relaxed.test.ts under `node --experimental-wasm-relaxed-simd`: every
// golden case on the relaxed-SIMD build, gradients included; prints the features
// and each case's max error (for the ONNX operator files and the gradients,
// relative above 1 as their READMEs say).
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

/** An ONNX file's tensor as onnxruntime-web makes it. */
const onnxTensor = ({ type, dims, data, neginf = [] }) => {
  if (type === 'bool') return { type, dims, data: Uint8Array.from(data) };
  if (type === 'int64') return { type, dims, data: BigInt64Array.from(data, BigInt) };
  const floats = Float32Array.from(data);
  for (const at of neginf) floats[at] = -Infinity;
  return { type, dims, data: floats };
};
const relative = (got, want) => {
  let worst = got.length === want.length ? 0 : Infinity;
  for (let i = 0; i < want.length; i++) {
    if (want[i] === -Infinity || got[i] === -Infinity) worst = want[i] === got[i] ? worst : Infinity;
    else worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])) || 0, Number.isNaN(got[i]) ? Infinity : 0);
  }
  return worst;
};
for (const c of JSON.parse(readFileSync(new URL('onnx-attention.json', dir), 'utf8'))) {
  const inputs = Object.fromEntries(Object.entries(c.inputs).map(([name, t]) => [name, onnxTensor(t)]));
  // an expected qk_matmul_output without the attribute means mode 0
  const attributes = c.expected.qk_matmul_output && c.attributes.qk_matmul_output_mode === undefined ? { ...c.attributes, qk_matmul_output_mode: 0 } : c.attributes;
  const outputs = attn.onnxAttention(inputs, attributes);
  errors[`onnx-attention.json ${c.name}`] = Math.max(...Object.entries(c.expected).map(([name, t]) => relative(outputs[name].data, onnxTensor(t).data)));
}
for (const c of JSON.parse(readFileSync(new URL('onnx-linear-attention.json', dir), 'utf8'))) {
  const inputs = Object.fromEntries(Object.entries(c.inputs).map(([name, t]) => [name, onnxTensor(t)]));
  const outputs = attn.onnxLinearAttention(inputs, c.attributes);
  errors[`onnx-linear-attention.json ${c.name}`] = Math.max(...Object.entries(c.expected).map(([name, t]) => relative(outputs[name].data, onnxTensor(t).data)));
}
// the gradient goldens (test/golden/grad/README.md): max |got - want| / max(1, max |want|) per tensor
const tensors = (x, path) =>
  x && Array.isArray(x.dims) ? [[path, x]] : x && typeof x === 'object' ? Object.entries(x).flatMap(([key, value]) => tensors(value, `${path}.${key}`)) : [];
const scaled = (got, want) => {
  let [worst, scale] = [got.length === want.length ? 0 : Infinity, 1];
  for (let i = 0; i < want.length; i++) [worst, scale] = [Math.max(worst, Math.abs(got[i] - want[i]) || (Number.isNaN(got[i]) ? Infinity : 0)), Math.max(scale, Math.abs(want[i]))];
  return worst / scale;
};
const gradDir = new URL('./golden/grad/', import.meta.url);
for (const file of readdirSync(gradDir).filter((f) => f.endsWith('.json'))) {
  for (const [index, c] of revive(JSON.parse(readFileSync(new URL(file, gradDir), 'utf8'))).entries()) {
    const got = attn.backward(c.variant, c.q, c.k, c.v, c.gradOutput, c.options);
    const found = new Map([...tensors({ q: got.q, k: got.k, v: got.v }, ''), ...tensors(got.params, '.params')]);
    for (const [path, want] of [...tensors({ q: c.expected.q, k: c.expected.k, v: c.expected.v }, ''), ...tensors(c.expected.params, '.params')]) {
      errors[`grad/${file}#${index} ${c.name} ${path.slice(1)}`] = found.has(path) ? scaled(found.get(path).data, want.data) : Infinity;
    }
  }
}
console.log(JSON.stringify({ features: attn.features, errors }));
