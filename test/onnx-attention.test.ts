// The ONNX Attention operator against the vectors of the onnx reference implementation
// (test/golden/onnx-attention.json), on both backends.
import { beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention } from '../dist/index.js';
import { loadOnnxGolden } from './golden.js';

const cases = loadOnnxGolden('onnx-attention.json');
const backends: Record<string, Attention> = {};
beforeAll(async () => {
  backends.wasm = await createAttention({ backend: 'wasm' });
  backends.js = await createAttention({ backend: 'js' });
});

/** The worst `|got - want| / max(1, |want|)`; Infinity where a -Infinity is not matched or a value is NaN. */
function worstRelative(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    if (want[i] === -Infinity || got[i] === -Infinity) {
      if (want[i] !== got[i]) return Infinity;
      continue;
    }
    const error = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    if (!(error <= worst)) worst = Number.isNaN(error) ? Infinity : error;
  }
  return worst;
}

describe.each(['js', 'wasm'])('onnxAttention (%s)', (backend) => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const attributes = 'qk_matmul_output' in c.expected && c.attributes.qk_matmul_output_mode === undefined ? { ...c.attributes, qk_matmul_output_mode: 0 } : c.attributes;
    const outputs = backends[backend].onnxAttention(c.inputs as never, attributes) as unknown as Record<string, { data: Float32Array; dims: number[] }>;
    for (const [name, want] of Object.entries(c.expected)) {
      expect(outputs[name].dims, name).toEqual(want.dims);
      expect(worstRelative(outputs[name].data, want.data as Float32Array), name).toBeLessThanOrEqual(1e-4);
    }
  });
});

// Every input the operator rejects (onnx-attention.md "Inputs to reject"), and unknown names:
// a TypeError / RangeError naming the input or attribute; the instance keeps working, its memory back where it was.
describe.each(['js', 'wasm'])('onnxAttention rejects (%s)', (backend) => {
  const f32 = (dims: number[], seed = 1) => {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed * 7.1 + i * 0.37);
    return { type: 'float32', data, dims };
  };
  const Q = f32([2, 4, 5, 8], 1);
  const K = f32([2, 2, 6, 8], 2);
  const V = f32([2, 2, 6, 3], 3);
  const Q3 = f32([2, 5, 32], 4);
  const K3 = f32([2, 6, 16], 5);
  const V3 = f32([2, 6, 6], 6);
  const pastK = f32([2, 2, 3, 8], 7);
  const pastV = f32([2, 2, 3, 3], 8);
  const bool = (dims: number[]) => ({ type: 'bool', data: new Uint8Array(dims.reduce((a, b) => a * b, 1)).fill(1), dims });
  const int64 = (values: number[]) => ({ type: 'int64', data: BigInt64Array.from(values, BigInt), dims: [values.length] });
  const qkv = { Q, K, V };
  const qkv3 = { Q: Q3, K: K3, V: V3 };
  const heads3 = { q_num_heads: 4, kv_num_heads: 2 };

  type Case = [string, object, object, typeof TypeError | typeof RangeError, RegExp];
  const cases: Case[] = [
    ['an unknown input', { ...qkv, mask: bool([5, 6]) }, {}, TypeError, /^inputs\.mask: Attention takes no such input.*'attn_mask'/],
    ['an unknown attribute, with a suggestion', qkv, { is_casual: 1 }, TypeError, /^attributes\.is_casual: Attention takes no such attribute \(did you mean 'is_causal'\?\)/],
    ['a local_window_size (an attribute of GroupQueryAttention)', qkv, { local_window_size: 3 }, TypeError, /^attributes\.local_window_size: Attention takes no such attribute/],
    ['a missing Q', { K, V }, {}, TypeError, /^inputs\.Q: required input is missing/],
    ['Q of float64', { ...qkv, Q: { type: 'float64', data: new Float64Array(320), dims: [2, 4, 5, 8] } }, {}, TypeError, /^inputs\.Q: expected a tensor of float32/],
    ['past_key of float16', { ...qkv, past_key: { type: 'float16', data: new Uint16Array(48), dims: [2, 2, 3, 8] }, past_value: pastV }, {}, TypeError, /^inputs\.past_key: expected a tensor of float32/],
    ['an integer attn_mask', { ...qkv, attn_mask: { type: 'int32', data: new Int32Array(30), dims: [5, 6] } }, {}, TypeError, /^inputs\.attn_mask: expected a tensor of bool .* or float32/],
    ['a uint8 attn_mask', { ...qkv, attn_mask: { type: 'uint8', data: new Uint8Array(30), dims: [5, 6] } }, {}, TypeError, /^inputs\.attn_mask: expected a tensor of bool/],
    ['a float nonpad_kv_seqlen', { ...qkv, nonpad_kv_seqlen: f32([2]) }, {}, TypeError, /^inputs\.nonpad_kv_seqlen: expected a tensor of int64/],
    ['3D without q_num_heads', qkv3, { kv_num_heads: 2 }, TypeError, /^attributes\.q_num_heads: required with 3D inputs/],
    ['a fractional attribute', qkv, { is_causal: 0.5 }, TypeError, /^attributes\.is_causal: expected an integer, received 0\.5/],
    ['a scale that is not a number', qkv, { scale: '1' }, TypeError, /^attributes\.scale: expected a number/],
    ['Q, K, V of mixed ranks', { ...qkv, Q: Q3 }, heads3, RangeError, /^inputs\.Q: Q, K and V must all be 3D .* or all 4D/],
    ['q_num_heads on 4D inputs', qkv, { q_num_heads: 4 }, RangeError, /^attributes\.q_num_heads: only 3D inputs take it/],
    ['kv_num_heads 0', qkv3, { q_num_heads: 4, kv_num_heads: 0 }, RangeError, /^attributes\.kv_num_heads: expected a head count >= 1, received 0/],
    ['a hidden size not divisible by its heads', qkv3, { q_num_heads: 5, kv_num_heads: 2 }, RangeError, /^inputs\.Q\.dims: the hidden size 32 is not a multiple of the 5 heads/],
    ['batch sizes that differ', { ...qkv, K: f32([1, 2, 6, 8]) }, {}, RangeError, /^inputs\.K\.dims: batch size must be Q's 2/],
    ["K's head size differs from Q's", { ...qkv, K: f32([2, 2, 6, 7]) }, {}, RangeError, /^inputs\.K\.dims: the head size must be Q's 8, received 7/],
    ['K and V of different lengths', { ...qkv, V: f32([2, 2, 5, 3]) }, {}, RangeError, /^inputs\.V\.dims: V must have K's length 6 and 2 heads/],
    ['K and V of different heads', { ...qkv, V: f32([2, 1, 6, 3]) }, {}, RangeError, /^inputs\.V\.dims: V must have K's length 6 and 2 heads/],
    ['Hq not a multiple of Hkv', { ...qkv, K: f32([2, 3, 6, 8]), V: f32([2, 3, 6, 3]) }, {}, RangeError, /^inputs\.K\.dims: Q's 4 heads must be a multiple of K's 3 heads/],
    ['past_key without past_value', { ...qkv, past_key: pastK }, {}, RangeError, /^inputs\.past_value: required together with inputs\.past_key/],
    ['past_value without past_key', { ...qkv, past_value: pastV }, {}, RangeError, /^inputs\.past_key: required together with inputs\.past_value/],
    ['a past of other heads', { ...qkv, past_key: f32([2, 1, 3, 8]), past_value: pastV }, {}, RangeError, /^inputs\.past_key\.dims: expected \[B, Hkv, P, D\] = \[2, 2, 3, 8\]/],
    ['pasts of different lengths', { ...qkv, past_key: pastK, past_value: f32([2, 2, 4, 3]) }, {}, RangeError, /^inputs\.past_value\.dims: expected \[B, Hkv, P, Dv\] = \[2, 2, 3, 3\]/],
    ['a 3D past', { ...qkv, past_key: f32([2, 3, 16]), past_value: pastV }, {}, RangeError, /^inputs\.past_key\.dims: expected \[B, Hkv, P, D\]/],
    ['nonpad_kv_seqlen with a past', { ...qkv, past_key: pastK, past_value: pastV, nonpad_kv_seqlen: int64([6, 6]) }, {}, RangeError, /^inputs\.nonpad_kv_seqlen: an external cache cannot be combined with inputs\.past_key/],
    ['nonpad_kv_seqlen not [B]', { ...qkv, nonpad_kv_seqlen: int64([6]) }, {}, RangeError, /^inputs\.nonpad_kv_seqlen\.dims: expected \[B\] = \[2\], received \[1\]/],
    ['nonpad_kv_seqlen beyond Skv', { ...qkv, nonpad_kv_seqlen: int64([6, 7]) }, {}, RangeError, /^inputs\.nonpad_kv_seqlen: expected lengths in 0\.\.6 \(Skv\), received 7/],
    ['nonpad_kv_seqlen negative', { ...qkv, nonpad_kv_seqlen: { type: 'int64', data: Int32Array.from([-1, 3]), dims: [2] } }, {}, RangeError, /^inputs\.nonpad_kv_seqlen: expected lengths in 0\.\.6/],
    ['a mask that does not broadcast', { ...qkv, attn_mask: bool([3, 5, 6]) }, {}, RangeError, /^inputs\.attn_mask\.dims: expected a shape broadcastable to \[B, Hq, Sq, T\] = \[2, 4, 5, 6\]/],
    ['a rank-3 mask of batches (its first axis is heads)', { ...qkv, attn_mask: bool([2, 5, 6]) }, {}, RangeError, /^inputs\.attn_mask\.dims: expected a shape broadcastable/],
    ['a mask longer than T', { ...qkv, attn_mask: bool([5, 7]) }, {}, RangeError, /^inputs\.attn_mask\.dims: .* with at most T keys, received \[5, 7\]/],
    ['a rank-5 mask', { ...qkv, attn_mask: bool([1, 2, 4, 5, 6]) }, {}, RangeError, /^inputs\.attn_mask\.dims: expected rank 1 to 4/],
    ['left_window_size below -1', qkv, { left_window_size: -2 }, RangeError, /^attributes\.left_window_size: expected an integer >= -1 \(-1: unbounded\), received -2/],
    ['right_window_size below -1', qkv, { right_window_size: -3 }, RangeError, /^attributes\.right_window_size: expected an integer >= -1/],
    ['softmax_precision 2', qkv, { softmax_precision: 2 }, RangeError, /^attributes\.softmax_precision: expected 1 \(float\), 10 \(float16\), 11 \(double\) or 16 \(bfloat16\), received 2/],
    ['qk_matmul_output_mode 4', qkv, { qk_matmul_output_mode: 4 }, RangeError, /^attributes\.qk_matmul_output_mode: expected 0, 1, 2 or 3, received 4/],
    ['is_causal 2', qkv, { is_causal: 2 }, RangeError, /^attributes\.is_causal: expected 0 or 1, received 2/],
    ['a negative softcap', qkv, { softcap: -1 }, RangeError, /^attributes\.softcap: expected a finite number >= 0 \(0: no cap\), received -1/],
    ['an infinite softcap', qkv, { softcap: Infinity }, RangeError, /^attributes\.softcap: expected a finite number >= 0/],
    ['a softcap past float32', qkv, { softcap: 1e300 }, RangeError, /^attributes\.softcap: expected a number that float32 holds .* received 1e\+300/],
    ['a negative scale', qkv, { scale: -0.5 }, RangeError, /^attributes\.scale: expected a finite number >= 0, received -0\.5/],
    ['a NaN scale', qkv, { scale: NaN }, RangeError, /^attributes\.scale: expected a finite number >= 0, received NaN/],
    ['inputs not an object', 'Q' as never, {}, TypeError, /^inputs: expected an object/],
    ['attributes not an object', qkv, [1] as never, TypeError, /^attributes: expected an object/],
  ];

  it.each(cases)('%s', (_name, inputs, attributes, type, message) => {
    const attn = backends[backend];
    const reference = attn.onnxAttention(qkv as never, { is_causal: 1 }).Y.data;
    const inUse = attn.memory.inUse;
    let error: unknown;
    try {
      attn.onnxAttention(inputs as never, attributes as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(type);
    expect((error as Error).message).toMatch(message);
    expect(attn.memory.inUse).toBe(inUse);
    expect(attn.onnxAttention(qkv as never, { is_causal: 1 }).Y.data).toEqual(reference);
  });

  it('takes an attribute or input set to undefined as absent, and an Int32Array or bigint where int64 is due', () => {
    const attn = backends[backend];
    const plain = attn.onnxAttention(qkv as never, { is_causal: 1 });
    const same = attn.onnxAttention({ ...qkv, attn_mask: undefined } as never, { is_causal: BigInt(1) as never, softcap: undefined });
    expect(same.Y.data).toEqual(plain.Y.data);
    const padded = attn.onnxAttention({ ...qkv, nonpad_kv_seqlen: int64([4, 6]) } as never);
    const int32 = attn.onnxAttention({ ...qkv, nonpad_kv_seqlen: { type: 'int32', data: Int32Array.from([4, 6]), dims: [2] } } as never);
    expect(int32.Y.data).toEqual(padded.Y.data);
  });

  it('applies the causal frontier per query row under a mask whose query axis is 1 (where the reference gives every row the frontier of row 0)', () => {
    const attn = backends[backend];
    const keyPad = { type: 'bool', data: Uint8Array.from([1, 1, 0, 1, 1, 1]), dims: [1, 6] };
    const rows = { type: 'bool', data: Uint8Array.from({ length: 30 }, (_, n) => keyPad.data[n % 6]), dims: [5, 6] };
    const broadcast = attn.onnxAttention({ ...qkv, attn_mask: keyPad } as never, { is_causal: 1, qk_matmul_output_mode: 3 });
    const expanded = attn.onnxAttention({ ...qkv, attn_mask: rows } as never, { is_causal: 1, qk_matmul_output_mode: 3 });
    expect(broadcast.Y.data).toEqual(expanded.Y.data);
    expect(broadcast.qk_matmul_output!.data).toEqual(expanded.qk_matmul_output!.data);
    // top-left without a cache: row 0 sees key 0 only, row 4 keys 0..4 but 2
    const P = broadcast.qk_matmul_output!.data;
    expect(Array.from(P.subarray(0, 6)).map((p) => p > 0)).toEqual([true, false, false, false, false, false]);
    expect(Array.from(P.subarray(24, 30)).map((p) => p > 0)).toEqual([true, true, false, true, true, false]);
  });
});
