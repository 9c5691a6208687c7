/**
 * The ONNX `LinearAttention` operator (opset 27) as a mapping onto
 * `attn.recurrent`: the 3D inputs `[B, T, H * D]` are the `'bnhd'` layout of
 * `[B, T, H, D]` (read in place), `past_state` is the initial state,
 * `present_state` the final one. What the operator computes is in
 * onnx-linear-attention.md (the onnx reference implementation is the authority).
 */
import type { Rule } from '../reference/recurrent.js';
import type { Tensor } from '../tensor.js';
import type { RecurrentOptions, RecurrentResult } from '../variants/recurrent.js';
import { ruleInputs } from '../variants/recurrent.js';
import { asRecord, checkNames, floatAttribute, floatTensor, intAttribute, isGiven, type OnnxTensor } from './tensors.js';

/** The inputs of `attn.onnxLinearAttention`, by ONNX name; an absent optional input is a missing key. */
export interface OnnxLinearAttentionInputs {
  /** `[B, T, Hq * dk]`. */
  readonly query: OnnxTensor;
  /** `[B, T, Hkv * dk]`. */
  readonly key: OnnxTensor;
  /** `[B, T, Hkv * dv]`. */
  readonly value: OnnxTensor;
  /** `[B, Hkv, dk, dv]`: the state before the first token; zeros when absent. */
  readonly past_state?: OnnxTensor;
  /** Gated rules: log-space decay `[B, T, Hkv]` (per head) or `[B, T, Hkv * dk]` (per key dim). */
  readonly decay?: OnnxTensor;
  /** Delta rules: `[B, T, Hkv]`, or `[B, T, 1]` shared by the kv heads. */
  readonly beta?: OnnxTensor;
}

/** The attributes of `attn.onnxLinearAttention`, by ONNX name; absent ones take the ONNX defaults. */
export interface OnnxLinearAttentionAttributes {
  /** Query heads (required). */
  readonly q_num_heads?: number;
  /** Key and value heads (required; q_num_heads a multiple of it). */
  readonly kv_num_heads?: number;
  /** `'linear' | 'gated' | 'delta' | 'gated_delta'` (default `'gated_delta'`). */
  readonly update_rule?: string;
  /** Output scale; 0 (the default) means `1 / sqrt(dk)`. */
  readonly scale?: number;
  /** A performance hint (default 64, at least 1): it never changes the result, and the kernels choose their own chunks. */
  readonly chunk_size?: number;
}

/** The outputs: `output` `[B, T, Hq * dv]` and `present_state` `[B, Hkv, dk, dv]`. */
export interface OnnxLinearAttentionOutputs {
  readonly output: Tensor;
  readonly present_state: Tensor;
}

/** The call of an attention instance that the operator maps onto. */
export interface RecurrentCalls {
  recurrent(q: Tensor, k: Tensor, v: Tensor, options: RecurrentOptions): RecurrentResult;
}

const INPUT_NAMES = ['query', 'key', 'value', 'past_state', 'decay', 'beta'] as const;
const ATTRIBUTE_NAMES = ['q_num_heads', 'kv_num_heads', 'update_rule', 'scale', 'chunk_size'] as const;

/** The operator's rule names and the library's. */
const UPDATE_RULES: Readonly<Record<string, Rule>> = { linear: 'linear', gated: 'gated', delta: 'delta', gated_delta: 'gatedDelta' };

function readRule(value: unknown): Rule {
  const names = Object.keys(UPDATE_RULES).map((r) => `'${r}'`).join(', ');
  if (!isGiven(value)) return 'gatedDelta';
  if (typeof value !== 'string') throw new TypeError(`attributes.update_rule: expected one of ${names}, received ${JSON.stringify(value) ?? String(value)}`);
  if (!Object.hasOwn(UPDATE_RULES, value)) throw new RangeError(`attributes.update_rule: expected one of ${names}, received ${JSON.stringify(value)}`);
  return UPDATE_RULES[value];
}

function heads(attributes: Readonly<Record<string, unknown>>, key: 'q_num_heads' | 'kv_num_heads'): number {
  const value = intAttribute(attributes, key, null);
  if (value === null) throw new TypeError(`attributes.${key}: required (the inputs pack their heads into the last axis), received undefined`);
  if (value < 1) throw new RangeError(`attributes.${key}: expected a head count >= 1, received ${value}`);
  return value;
}

const dimsText = (t: Tensor): string => `[${t.dims.join(', ')}]`;

/** A 3D `[B, T, H * size]` input as the 4D `[B, T, H, size]` it packs. */
function unpack(t: Tensor, name: string, B: number, T: number, H: number, headsKey: string): Tensor {
  if (t.dims.length !== 3) throw new RangeError(`inputs.${name}.dims: expected 3D [B, T, H * size], received ${dimsText(t)}`);
  if (t.dims[0] !== B || t.dims[1] !== T) throw new RangeError(`inputs.${name}.dims: expected query's batch ${B} and length ${T} ([${B}, ${T}, ...]), received ${dimsText(t)}`);
  if (t.dims[2] % H !== 0 || t.dims[2] === 0) throw new RangeError(`inputs.${name}.dims: the hidden size ${t.dims[2]} is not a positive multiple of the ${H} heads of attributes.${headsKey}, received ${dimsText(t)}`);
  return { data: t.data, dims: [B, T, H, t.dims[2] / H] };
}

/**
 * `output` and `present_state` of one `LinearAttention` node, computed by
 * `attn.recurrent` in the `'bnhd'` layout.
 */
export function onnxLinearAttention(attn: RecurrentCalls, givenInputs: unknown, givenAttributes?: unknown): OnnxLinearAttentionOutputs {
  const inputs = asRecord(givenInputs, 'inputs');
  const attributes = asRecord(givenAttributes, 'attributes');
  checkNames(inputs, INPUT_NAMES, 'inputs', 'LinearAttention');
  checkNames(attributes, ATTRIBUTE_NAMES, 'attributes', 'LinearAttention');
  const Hq = heads(attributes, 'q_num_heads');
  const Hkv = heads(attributes, 'kv_num_heads');
  if (Hq % Hkv !== 0) throw new RangeError(`attributes.q_num_heads: expected a multiple of attributes.kv_num_heads = ${Hkv}, received ${Hq}`);
  const rule = readRule(attributes.update_rule);
  const scaleAttribute = floatAttribute(attributes, 'scale') ?? 0;
  if (!Number.isFinite(scaleAttribute)) throw new RangeError(`attributes.scale: expected a finite number (0: 1 / sqrt(dk)), received ${scaleAttribute}`);
  const chunk = intAttribute(attributes, 'chunk_size', 64);
  if (chunk < 1) throw new RangeError(`attributes.chunk_size: expected an integer >= 1, received ${chunk}`);

  for (const name of ['query', 'key', 'value'] as const) if (!isGiven(inputs[name])) throw new TypeError(`inputs.${name}: required input is missing`);
  const [query, key, value] = (['query', 'key', 'value'] as const).map((name) => floatTensor(inputs[name], `inputs.${name}`));
  if (query.dims.length !== 3) throw new RangeError(`inputs.query.dims: expected 3D [B, T, Hq * dk], received ${dimsText(query)}`);
  const [B, T] = query.dims;
  const q = unpack(query, 'query', B, T, Hq, 'q_num_heads');
  const k = unpack(key, 'key', B, T, Hkv, 'kv_num_heads');
  const v = unpack(value, 'value', B, T, Hkv, 'kv_num_heads');
  const dk = q.dims[3];
  const dv = v.dims[3];
  if (k.dims[3] !== dk) throw new RangeError(`inputs.key.dims: the head size must be query's ${dk}, received ${k.dims[3]} (${dimsText(key)})`);

  const read = (name: 'decay' | 'beta', lasts: number[], forms: string): Tensor => {
    const t = floatTensor(inputs[name], `inputs.${name}`);
    if (t.dims.length !== 3 || t.dims[0] !== B || t.dims[1] !== T || !lasts.includes(t.dims[2])) {
      throw new RangeError(`inputs.${name}.dims: expected ${forms}, received ${dimsText(t)}`);
    }
    return t;
  };
  const { decay, beta } = ruleInputs(rule, inputs.decay, inputs.beta, {
    decay: () => {
      const t = read('decay', [Hkv, Hkv * dk], `[B, T, Hkv] = [${B}, ${T}, ${Hkv}] or [B, T, Hkv * dk] = [${B}, ${T}, ${Hkv * dk}]`);
      return { data: t.data, heads: Hkv, width: t.dims[2] === Hkv ? 1 : dk, layout: 'bnhd' };
    },
    beta: () => {
      const t = read('beta', [Hkv, 1], `[B, T, Hkv] = [${B}, ${T}, ${Hkv}] or [B, T, 1]`);
      return { data: t.data, heads: t.dims[2], width: 1, layout: 'bnhd' };
    },
  }, 'inputs');
  const options: RecurrentOptions = { rule, scale: scaleAttribute === 0 ? 1 / Math.sqrt(dk) : scaleAttribute, layout: 'bnhd' };
  // per head [B, T, Hkv], per key dim [B, T, Hkv, dk]; beta [B, T, Hkv | 1]: the 'bnhd' forms attn.recurrent reads
  if (decay) options.decay = { data: decay.data, dims: decay.width === 1 ? [B, T, Hkv] : [B, T, Hkv, dk] };
  if (beta) options.beta = { data: beta.data, dims: [B, T, beta.heads] };
  if (isGiven(inputs.past_state)) {
    const past = floatTensor(inputs.past_state, 'inputs.past_state');
    const want = [B, Hkv, dk, dv];
    if (past.dims.length !== 4 || !past.dims.every((d, i) => d === want[i])) throw new RangeError(`inputs.past_state.dims: expected [B, Hkv, dk, dv] = [${want.join(', ')}], received ${dimsText(past)}`);
    options.initialState = past;
  }
  const result = attn.recurrent(q, k, v, options);
  return { output: { data: result.data, dims: [B, T, Hq * dv] }, present_state: { data: result.state.data, dims: [B, Hkv, dk, dv] } };
}
