// The ONNX LinearAttention operator against the vectors of the onnx reference implementation
// (test/golden/onnx-linear-attention.json): on both backends, and as attn.recurrent /
// attn.runRecurrent (the pool) on the same numbers; then the inputs the operator rejects.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type RecurrentOptions, type Tensor } from '../dist/index.js';
import { bytes } from './backends.js';
import { loadOnnxGolden, type OnnxGoldenCase } from './golden.js';

const cases = loadOnnxGolden('onnx-linear-attention.json');
const backends: Record<string, Attention> = {};
beforeAll(async () => {
  backends.wasm = await createAttention({ backend: 'wasm', threads: 1 });
  backends.js = await createAttention({ backend: 'js' });
  backends.pool = await createAttention({ backend: 'wasm', threads: 2 });
});
afterAll(() => backends.pool.dispose());

/** The worst `|got - want| / max(1, |want|)`; Infinity where a value is NaN. */
function worstRelative(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let worst = got.length === want.length ? 0 : Infinity;
  for (let i = 0; i < want.length; i++) {
    const error = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    if (!(error <= worst)) worst = Number.isNaN(error) ? Infinity : error;
  }
  return worst;
}

type Outputs = Record<string, { data: Float32Array; dims: readonly number[] }>;

function expectGolden(c: OnnxGoldenCase, outputs: Outputs): void {
  for (const [name, want] of Object.entries(c.expected)) {
    expect(outputs[name].dims, name).toEqual(want.dims);
    expect(worstRelative(outputs[name].data, want.data as Float32Array), name).toBeLessThanOrEqual(1e-4);
  }
}

const RULES: Record<string, RecurrentOptions['rule']> = { linear: 'linear', gated: 'gated', delta: 'delta', gated_delta: 'gatedDelta' };

/** The node as an attn.recurrent call, written out by hand from the operator's definition (3D = bnhd, scale 0 = default). */
function asRecurrentCall(c: OnnxGoldenCase): { q: Tensor; k: Tensor; v: Tensor; options: RecurrentOptions; Hq: number; dv: number } {
  const { q_num_heads: Hq, kv_num_heads: Hkv } = c.attributes;
  const f = (name: string) => c.inputs[name] as { data: Float32Array; dims: number[] };
  const [B, T, qWidth] = f('query').dims;
  const dk = qWidth / Hq;
  const dv = f('value').dims[2] / Hkv;
  const options: RecurrentOptions = { rule: RULES[(c.attributes.update_rule as unknown as string) ?? 'gated_delta'], layout: 'bnhd' };
  if (c.attributes.scale) options.scale = c.attributes.scale;
  if (c.inputs.decay) options.decay = { data: f('decay').data, dims: f('decay').dims[2] === Hkv ? [B, T, Hkv] : [B, T, Hkv, dk] };
  if (c.inputs.beta) options.beta = f('beta');
  if (c.inputs.past_state) options.initialState = f('past_state');
  return {
    q: { data: f('query').data, dims: [B, T, Hq, dk] },
    k: { data: f('key').data, dims: [B, T, Hkv, dk] },
    v: { data: f('value').data, dims: [B, T, Hkv, dv] },
    options,
    Hq,
    dv,
  };
}

describe.each(['js', 'wasm'])('onnxLinearAttention (%s)', (backend) => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expectGolden(c, backends[backend].onnxLinearAttention(c.inputs as never, c.attributes as never) as unknown as Outputs);
  });
});

describe('attn.recurrent and the pool on the golden numbers', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const { q, k, v, options, Hq, dv } = asRecurrentCall(c);
    const [B, T] = q.dims;
    const direct = backends.wasm.recurrent(q, k, v, options);
    const pooled = await backends.pool.runRecurrent(q, k, v, options);
    const node = backends.wasm.onnxLinearAttention(c.inputs as never, c.attributes as never);
    // the operator is attn.recurrent, and the pool gives the same bits
    expect(bytes(node.output.data)).toEqual(bytes(direct.data));
    expect(bytes(node.present_state.data)).toEqual(bytes(direct.state.data));
    expect(bytes(pooled.data)).toEqual(bytes(direct.data));
    expect(bytes(pooled.state.data)).toEqual(bytes(direct.state.data));
    expectGolden(c, { output: { data: pooled.data, dims: [B, T, Hq * dv] }, present_state: pooled.state });
  });

  it('gives the same numbers whatever chunk_size says (a hint)', () => {
    const c = cases.find((x) => x.attributes.chunk_size === 16)!;
    const outputs = [1, 16, 64, undefined].map((chunk_size) => backends.wasm.onnxLinearAttention(c.inputs as never, { ...c.attributes, chunk_size } as never).output.data);
    for (const out of outputs) expect(bytes(out)).toEqual(bytes(outputs[0]));
  });
});

// Inputs the operator rejects, and unknown names: a TypeError / RangeError naming the input or
// attribute; the instance keeps working, its memory back where it was.
describe.each(['js', 'wasm'])('onnxLinearAttention rejects (%s)', (backend) => {
  const f32 = (dims: number[], seed = 1) => {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed * 7.1 + i * 0.37);
    return { type: 'float32', data, dims };
  };
  const query = f32([2, 5, 4 * 8], 1);
  const key = f32([2, 5, 2 * 8], 2);
  const value = f32([2, 5, 2 * 3], 3);
  const decay = { ...f32([2, 5, 2], 4), data: new Float32Array(20).fill(-0.1) };
  const beta = { ...f32([2, 5, 2], 5), data: new Float32Array(20).fill(0.5) };
  const qkv = { query, key, value };
  const heads = { q_num_heads: 4, kv_num_heads: 2 };
  const linear = { ...heads, update_rule: 'linear' };

  type Case = [string, object, object, typeof TypeError | typeof RangeError, RegExp];
  const rejected: Case[] = [
    ['an unknown input', { ...qkv, state: f32([2, 2, 8, 3]) }, linear, TypeError, /^inputs\.state: LinearAttention takes no such input.*'past_state'/],
    ['an unknown attribute, with a suggestion', qkv, { ...linear, chunksize: 4 }, TypeError, /^attributes\.chunksize: LinearAttention takes no such attribute \(did you mean 'chunk_size'\?\)/],
    ['a missing query', { key, value }, linear, TypeError, /^inputs\.query: required input is missing/],
    ['missing q_num_heads', qkv, { kv_num_heads: 2, update_rule: 'linear' }, TypeError, /^attributes\.q_num_heads: required/],
    ['kv_num_heads 0', qkv, { q_num_heads: 4, kv_num_heads: 0, update_rule: 'linear' }, RangeError, /^attributes\.kv_num_heads: expected a head count >= 1, received 0/],
    ['q heads not a multiple of kv heads', qkv, { q_num_heads: 4, kv_num_heads: 3, update_rule: 'linear' }, RangeError, /^attributes\.q_num_heads: expected a multiple of attributes\.kv_num_heads = 3, received 4/],
    ['an unknown update_rule', qkv, { ...heads, update_rule: 'gated-delta' }, RangeError, /^attributes\.update_rule: expected one of 'linear', 'gated', 'delta', 'gated_delta', received "gated-delta"/],
    ['an update_rule that is not a string', qkv, { ...heads, update_rule: 1 }, TypeError, /^attributes\.update_rule: expected one of/],
    ['the default rule (gated_delta) without decay', { ...qkv, beta }, heads, TypeError, /^inputs\.decay: rule 'gatedDelta' decays the state and needs a log-space decay/],
    ['the default rule without beta', { ...qkv, decay }, heads, TypeError, /^inputs\.beta: rule 'gatedDelta' needs the write strength beta/],
    ['a decay given to the linear rule', { ...qkv, decay }, linear, RangeError, /^inputs\.decay: only the rules 'gated' and 'gatedDelta' decay the state, received a decay with rule 'linear'/],
    ['a beta given to the gated rule', { ...qkv, decay, beta }, { ...heads, update_rule: 'gated' }, RangeError, /^inputs\.beta: only the rules 'delta' and 'gatedDelta' take beta, received a beta with rule 'gated'/],
    ['a decay of the wrong width', { ...qkv, decay: f32([2, 5, 3]), beta }, heads, RangeError, /^inputs\.decay\.dims: expected \[B, T, Hkv\] = \[2, 5, 2\] or \[B, T, Hkv \* dk\] = \[2, 5, 16\], received \[2, 5, 3\]/],
    ['a beta of the wrong length', { ...qkv, decay, beta: f32([2, 4, 2]) }, heads, RangeError, /^inputs\.beta\.dims: expected \[B, T, Hkv\] = \[2, 5, 2\] or \[B, T, 1\], received \[2, 4, 2\]/],
    ['a 4D query', { ...qkv, query: f32([2, 4, 5, 8]) }, linear, RangeError, /^inputs\.query\.dims: expected 3D \[B, T, Hq \* dk\]/],
    ['a hidden size not divisible by its heads', { ...qkv, query: f32([2, 5, 30]) }, linear, RangeError, /^inputs\.query\.dims: the hidden size 30 is not a positive multiple of the 4 heads/],
    ["key's length differs from query's", { ...qkv, key: f32([2, 4, 16]) }, linear, RangeError, /^inputs\.key\.dims: expected query's batch 2 and length 5/],
    ["key's head size differs from query's", { ...qkv, key: f32([2, 5, 12]) }, linear, RangeError, /^inputs\.key\.dims: the head size must be query's 8, received 6/],
    ['a past_state of other sizes', { ...qkv, past_state: f32([2, 2, 3, 8]) }, linear, RangeError, /^inputs\.past_state\.dims: expected \[B, Hkv, dk, dv\] = \[2, 2, 8, 3\], received \[2, 2, 3, 8\]/],
    ['a float64 value', { ...qkv, value: { type: 'float64', data: new Float64Array(30), dims: [2, 5, 6] } }, linear, TypeError, /^inputs\.value: expected a tensor of float32/],
    ['chunk_size 0', qkv, { ...linear, chunk_size: 0 }, RangeError, /^attributes\.chunk_size: expected an integer >= 1, received 0/],
    ['an infinite scale', qkv, { ...linear, scale: Infinity }, RangeError, /^attributes\.scale: expected a finite number/],
    ['inputs not an object', 'query' as never, linear, TypeError, /^inputs: expected an object/],
  ];

  it.each(rejected)('%s', (_name, inputs, attributes, type, message) => {
    const attn = backends[backend];
    const reference = attn.onnxLinearAttention(qkv as never, linear).output.data;
    const inUse = attn.memory.inUse;
    let error: unknown;
    try {
      attn.onnxLinearAttention(inputs as never, attributes as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(type);
    expect((error as Error).message).toMatch(message);
    expect(attn.memory.inUse).toBe(inUse);
    expect(attn.onnxLinearAttention(qkv as never, linear).output.data).toEqual(reference);
  });

  it('takes scale 0 as 1 / sqrt(dk), an input set to undefined as absent, and [B, T, 1] beta as shared by the kv heads', () => {
    const attn = backends[backend];
    const plain = attn.onnxLinearAttention(qkv as never, linear);
    expect(attn.onnxLinearAttention({ ...qkv, past_state: undefined } as never, { ...linear, scale: 0 }).output.data).toEqual(plain.output.data);
    const byHead = attn.onnxLinearAttention({ ...qkv, beta } as never, { ...heads, update_rule: 'delta' });
    const shared = attn.onnxLinearAttention({ ...qkv, beta: { ...beta, data: new Float32Array(10).fill(0.5), dims: [2, 5, 1] } } as never, { ...heads, update_rule: 'delta' });
    expect(shared.output.data).toEqual(byHead.output.data);
  });
});
