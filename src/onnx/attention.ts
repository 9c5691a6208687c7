/**
 * The ONNX `Attention` operator (opsets 23 to 25; opset 26 keeps
 * Attention-25) as a mapping onto the library's own calls: `full` or
 * `local` with `scale`, `causal`, `keyPadding`, `mask`, `bias`, `softcap`,
 * grouped-query heads and `layout`. What the operator computes, and where
 * the onnx reference departs from its documentation, is in
 * onnx-attention.md (the onnx reference implementation is the authority).
 */
import { swapMiddleAxes } from '../layout.js';
import type { Tensor } from '../tensor.js';
import { FLOAT32_MAX } from '../validate.js';
import { asRecord, checkNames, floatAttribute, floatTensor, intAttribute, integers, isGiven, readTensor, type OnnxTensor, type TypedTensor } from './tensors.js';

/** The inputs of `attn.onnxAttention`, by ONNX name; an absent optional input is a missing key. */
export interface OnnxAttentionInputs {
  /** `[B, Hq, Sq, D]`, or `[B, Sq, Hq * D]` with `q_num_heads`. */
  readonly Q: OnnxTensor;
  /** `[B, Hkv, Skv, D]`, or `[B, Skv, Hkv * D]` with `kv_num_heads`. */
  readonly K: OnnxTensor;
  /** `[B, Hkv, Skv, Dv]`, or `[B, Skv, Hkv * Dv]`. */
  readonly V: OnnxTensor;
  /** Bool (true = attend) or float32 (added to the logits), broadcastable to `[B, Hq, Sq, T]`; a shorter last axis hides the missing keys. */
  readonly attn_mask?: OnnxTensor;
  /** `[B, Hkv, P, D]`, always 4D; with `past_value`. */
  readonly past_key?: OnnxTensor;
  /** `[B, Hkv, P, Dv]`, always 4D; with `past_key`. */
  readonly past_value?: OnnxTensor;
  /** `[B]` int64: keys `j >= nonpad_kv_seqlen[b]` are padding (opset 24; not with a past). */
  readonly nonpad_kv_seqlen?: OnnxTensor;
}

/** The attributes of `attn.onnxAttention`, by ONNX name; absent ones take the ONNX defaults. */
export interface OnnxAttentionAttributes {
  /** 0 (default) or 1: key j visible to query i iff `j <= offset + i` (the operator's offset, see onnx-attention.md). */
  readonly is_causal?: number;
  /** Heads of 3D Q (required there, refused on 4D). */
  readonly q_num_heads?: number;
  /** Heads of 3D K and V (required there, refused on 4D). */
  readonly kv_num_heads?: number;
  /** 0 to 3: which `qk_matmul_output` to return (absent: none). */
  readonly qk_matmul_output_mode?: number;
  /** Logit scale >= 0; default `1 / sqrt(D)`. */
  readonly scale?: number;
  /** c > 0 caps logits to `c tanh(l / c)` before the mask; 0 (default) none. */
  readonly softcap?: number;
  /** 1, 10, 11 or 16 (the type the softmax runs in); accepted, the softmax runs in float32 or float64 either way. */
  readonly softmax_precision?: number;
  /** Opset 25: keys `j >= p - L` only (-1, the default: unbounded). */
  readonly left_window_size?: number;
  /** Opset 25: keys `j <= p + R` only (-1, the default: unbounded). */
  readonly right_window_size?: number;
}

/** The outputs: `Y` in Q's form, the caches 4D, `qk_matmul_output` `[B, Hq, Sq, T]` when asked for. */
export interface OnnxAttentionOutputs {
  readonly Y: Tensor;
  readonly present_key: Tensor;
  readonly present_value: Tensor;
  readonly qk_matmul_output?: Tensor;
}

/** The calls of an attention instance that the operator maps onto. */
export interface AttentionCalls {
  apply(name: 'full' | 'local', q: Tensor, k: Tensor, v: Tensor, options: object): Tensor;
  weights(name: 'full' | 'local', q: Tensor, k: Tensor, options: object): Tensor;
  logits(name: 'full' | 'local', q: Tensor, k: Tensor, options: object): Tensor;
}

const INPUT_NAMES = ['Q', 'K', 'V', 'attn_mask', 'past_key', 'past_value', 'nonpad_kv_seqlen'] as const;
const ATTRIBUTE_NAMES = [
  'is_causal', 'q_num_heads', 'kv_num_heads', 'qk_matmul_output_mode', 'scale', 'softcap', 'softmax_precision', 'left_window_size', 'right_window_size',
] as const;
const SOFTMAX_PRECISIONS = [1, 10, 11, 16];

/** The attributes, checked (sizes and heads are checked against the inputs later). */
interface Attributes {
  readonly causal: boolean;
  readonly qHeads: number | null;
  readonly kvHeads: number | null;
  readonly mode: number | null;
  readonly scale: number | null;
  /** 0: no cap. */
  readonly softcap: number;
  /** -1: unbounded. */
  readonly left: number;
  readonly right: number;
}

function readAttributes(attributes: Readonly<Record<string, unknown>>): Attributes {
  const isCausal = intAttribute(attributes, 'is_causal', 0);
  if (isCausal !== 0 && isCausal !== 1) throw new RangeError(`attributes.is_causal: expected 0 or 1, received ${isCausal}`);
  const mode = intAttribute(attributes, 'qk_matmul_output_mode', null);
  if (mode !== null && (mode < 0 || mode > 3)) throw new RangeError(`attributes.qk_matmul_output_mode: expected 0, 1, 2 or 3, received ${mode}`);
  const precision = intAttribute(attributes, 'softmax_precision', null);
  if (precision !== null && !SOFTMAX_PRECISIONS.includes(precision)) {
    throw new RangeError(`attributes.softmax_precision: expected 1 (float), 10 (float16), 11 (double) or 16 (bfloat16), received ${precision}`);
  }
  const scale = floatAttribute(attributes, 'scale');
  // sqrt(scale) scales Q and K in the operator: a negative scale has no meaning there
  if (scale !== null && !(Number.isFinite(scale) && scale >= 0)) throw new RangeError(`attributes.scale: expected a finite number >= 0, received ${scale}`);
  const softcap = floatAttribute(attributes, 'softcap') ?? 0;
  if (!(Number.isFinite(softcap) && softcap >= 0)) throw new RangeError(`attributes.softcap: expected a finite number >= 0 (0: no cap), received ${softcap}`);
  if (softcap > FLOAT32_MAX) throw new RangeError(`attributes.softcap: expected a number that float32 holds (at most ${FLOAT32_MAX}), received ${softcap}`);
  const [left, right] = (['left_window_size', 'right_window_size'] as const).map((key) => {
    const size = intAttribute(attributes, key, -1);
    if (size < -1) throw new RangeError(`attributes.${key}: expected an integer >= -1 (-1: unbounded), received ${size}`);
    return size;
  });
  return { causal: isCausal === 1, qHeads: intAttribute(attributes, 'q_num_heads', null), kvHeads: intAttribute(attributes, 'kv_num_heads', null), mode, scale, softcap, left, right };
}

/** The sizes of one node. */
interface Sizes {
  readonly rank: 3 | 4;
  readonly B: number;
  readonly Hq: number;
  readonly Hkv: number;
  readonly Sq: number;
  readonly Skv: number;
  /** Past length (0 without a past) and total key length `T = P + Skv`. */
  readonly P: number;
  readonly T: number;
  readonly D: number;
  readonly Dv: number;
}

function dimsText(t: Tensor): string {
  return `[${t.dims.join(', ')}]`;
}

/** B, heads, lengths and head sizes of Q, K, V (3D: unpacked with the head-count attributes). */
function readSizes(Q: Tensor, K: Tensor, V: Tensor, a: Attributes): Omit<Sizes, 'P' | 'T'> {
  const rank = Q.dims.length;
  if ((rank !== 3 && rank !== 4) || K.dims.length !== rank || V.dims.length !== rank) {
    throw new RangeError(`inputs.Q: Q, K and V must all be 3D [B, S, H * D] or all 4D [B, H, S, D], received Q ${dimsText(Q)}, K ${dimsText(K)}, V ${dimsText(V)}`);
  }
  let sizes: [number, number, number, number][];
  if (rank === 4) {
    for (const key of ['q_num_heads', 'kv_num_heads'] as const) {
      const heads = key === 'q_num_heads' ? a.qHeads : a.kvHeads;
      if (heads !== null) throw new RangeError(`attributes.${key}: only 3D inputs take it (4D inputs carry their heads in dims[1]), received ${heads}`);
    }
    // [B, H, S, Dx]
    sizes = [Q, K, V].map((t) => [t.dims[0], t.dims[1], t.dims[2], t.dims[3]]);
  } else {
    const heads = (key: 'q_num_heads' | 'kv_num_heads', value: number | null): number => {
      if (value === null) throw new TypeError(`attributes.${key}: required with 3D inputs [B, S, H * D], received undefined`);
      if (value <= 0) throw new RangeError(`attributes.${key}: expected a head count >= 1, received ${value}`);
      return value;
    };
    const Hq = heads('q_num_heads', a.qHeads);
    const Hkv = heads('kv_num_heads', a.kvHeads);
    sizes = ([['Q', Q, Hq, 'q_num_heads'], ['K', K, Hkv, 'kv_num_heads'], ['V', V, Hkv, 'kv_num_heads']] as const).map(([name, t, H, key]) => {
      if (t.dims[2] % H !== 0) throw new RangeError(`inputs.${name}.dims: the hidden size ${t.dims[2]} is not a multiple of the ${H} heads of attributes.${key}, received ${dimsText(t)}`);
      return [t.dims[0], H, t.dims[1], t.dims[2] / H];
    });
  }
  const [[B, Hq, Sq, D], [Bk, Hkv, Skv, Dk], [Bv, Hv, Sv, Dv]] = sizes;
  if (Bk !== B || Bv !== B) throw new RangeError(`inputs.${Bk !== B ? 'K' : 'V'}.dims: batch size must be Q's ${B}, received K ${dimsText(K)}, V ${dimsText(V)}`);
  // 3D inputs take their head sizes from the head-count attributes
  const from = Q.dims.length === 3 ? ' (hidden sizes divided by attributes.q_num_heads and attributes.kv_num_heads)' : '';
  if (D < 1) throw new RangeError(`inputs.Q.dims: the head size must be at least 1, received ${dimsText(Q)}${from}`);
  if (Dk !== D) throw new RangeError(`inputs.K.dims: the head size must be Q's ${D}, received ${Dk} (${dimsText(K)})${from}`);
  if (Sv !== Skv || Hv !== Hkv) throw new RangeError(`inputs.V.dims: V must have K's length ${Skv} and ${Hkv} heads, received ${dimsText(V)}`);
  if (Hkv < 1 || Hq % Hkv !== 0) throw new RangeError(`inputs.K.dims: Q's ${Hq} heads must be a multiple of K's ${Hkv} heads (grouped-query attention), received ${dimsText(K)}`);
  return { rank, B, Hq, Hkv, Sq, Skv, D, Dv };
}

/** past_key and past_value (both or neither), 4D and agreeing with K and V; their length P. */
function readPast(inputs: Readonly<Record<string, unknown>>, s: Omit<Sizes, 'P' | 'T'>): { key: Tensor; value: Tensor; P: number } | null {
  if (isGiven(inputs.past_key) !== isGiven(inputs.past_value)) {
    const [missing, present] = isGiven(inputs.past_key) ? ['past_value', 'past_key'] : ['past_key', 'past_value'];
    throw new RangeError(`inputs.${missing}: required together with inputs.${present} (the caches come in pairs), received undefined`);
  }
  if (!isGiven(inputs.past_key)) return null;
  const key = floatTensor(inputs.past_key, 'inputs.past_key');
  const value = floatTensor(inputs.past_value, 'inputs.past_value');
  const P = key.dims[2];
  for (const [name, t, Dx] of [['past_key', key, s.D], ['past_value', value, s.Dv]] as const) {
    const [B, H, length, size] = t.dims;
    if (t.dims.length !== 4 || B !== s.B || H !== s.Hkv || length !== P || size !== Dx) {
      throw new RangeError(`inputs.${name}.dims: expected [B, Hkv, P, ${name === 'past_key' ? 'D' : 'Dv'}] = [${s.B}, ${s.Hkv}, ${P}, ${Dx}], received ${dimsText(t)}`);
    }
  }
  return { key, value, P };
}

/** nonpad_kv_seqlen: `[B]` lengths in `0..Skv`, never with a past. */
function readNonpad(value: unknown, s: Sizes, hasPast: boolean): number[] | null {
  if (!isGiven(value)) return null;
  const t: TypedTensor = readTensor(value, 'inputs.nonpad_kv_seqlen', ['int64']);
  if (hasPast) throw new RangeError('inputs.nonpad_kv_seqlen: an external cache cannot be combined with inputs.past_key / past_value, received both');
  if (t.dims.length !== 1 || t.dims[0] !== s.B) throw new RangeError(`inputs.nonpad_kv_seqlen.dims: expected [B] = [${s.B}], received [${t.dims.join(', ')}]`);
  const lengths = integers(t);
  for (const n of lengths) {
    if (!(n >= 0 && n <= s.Skv)) throw new RangeError(`inputs.nonpad_kv_seqlen: expected lengths in 0..${s.Skv} (Skv), received ${n}`);
  }
  return lengths;
}

/** attn_mask as the library takes it: a bool mask as `mask`, a float one as `bias`, with T keys. */
type MaskInput =
  | { readonly kind: 'mask'; readonly tensor: { readonly data: Uint8Array; readonly dims: readonly number[] } }
  | { readonly kind: 'bias'; readonly tensor: { readonly data: Float32Array; readonly dims: readonly number[] } };

/**
 * attn_mask, broadcastable to `[B, Hq, Sq, T]` (rank 1 `[T]`, 2 `[Sq, T]`,
 * 3 `[Hq, Sq, T]`, 4 `[B, Hq, Sq, T]`, each axis but the last possibly 1),
 * a last axis shorter than T padded at the end with false / -Infinity (the
 * missing keys are hidden), as the operator does.
 */
function readMask(value: unknown, s: Sizes): MaskInput {
  const name = 'inputs.attn_mask';
  const t = readTensor(value, name, ['bool', 'float32']);
  if (t.dims.length < 1 || t.dims.length > 4) throw new RangeError(`${name}.dims: expected rank 1 to 4, broadcastable to [B, Hq, Sq, T] = [${s.B}, ${s.Hq}, ${s.Sq}, ${s.T}], received [${t.dims.join(', ')}]`);
  const dims = t.dims.length === 1 ? [1, t.dims[0]] : [...t.dims];
  const L = dims[dims.length - 1];
  const lead = [1, 1, 1, ...dims.slice(0, -1)].slice(-3);
  const sizes = [s.B, s.Hq, s.Sq];
  if (L > s.T || !lead.every((d, axis) => d === 1 || d === sizes[axis])) {
    throw new RangeError(`${name}.dims: expected a shape broadcastable to [B, Hq, Sq, T] = [${s.B}, ${s.Hq}, ${s.Sq}, ${s.T}] with at most T keys, received [${t.dims.join(', ')}]`);
  }
  const isBool = t.type === 'bool';
  let data = t.data as Uint8Array | Float32Array;
  if (L < s.T) {
    const rows = dims.slice(0, -1).reduce((a, b) => a * b, 1);
    const padded = isBool ? new Uint8Array(rows * s.T) : new Float32Array(rows * s.T).fill(-Infinity);
    for (let r = 0; r < rows; r++) padded.set(data.subarray(r * L, (r + 1) * L), r * s.T);
    data = padded;
  }
  const withT = [...dims.slice(0, -1), s.T];
  return isBool ? { kind: 'mask', tensor: { data: data as Uint8Array, dims: withT } } : { kind: 'bias', tensor: { data: data as Float32Array, dims: withT } };
}

/** `concat(past, x)` on the sequence axis, `[B, Hkv, P + S, Dx]`; x is `[B, Hkv, S, Dx]`, or `[B, S, Hkv * Dx]` when `packed`. */
function present(past: Tensor | null, x: Tensor, s: Sizes, Dx: number, packed: boolean): Tensor {
  const { B, Hkv, P, T, Skv } = s;
  const data = new Float32Array(B * Hkv * T * Dx);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hkv; h++) {
      const at = (b * Hkv + h) * T * Dx;
      if (past) data.set(past.data.subarray((b * Hkv + h) * P * Dx, (b * Hkv + h + 1) * P * Dx), at);
      for (let n = 0; n < Skv; n++) {
        const from = packed ? ((b * Skv + n) * Hkv + h) * Dx : ((b * Hkv + h) * Skv + n) * Dx;
        data.set(x.data.subarray(from, from + Dx), at + (P + n) * Dx);
      }
    }
  }
  return { data, dims: [B, Hkv, T, Dx] };
}

/**
 * The library options that make the operator's visibility and logits: the
 * mask (bool) or bias (float), key padding from nonpad_kv_seqlen, and the
 * causal / window frontier `offset + i` with the operator's offset (past
 * length P; `nonpad[b] - Sq` with an external cache; else 0).
 */
function visibility(a: Attributes, s: Sizes, hasPast: boolean, nonpad: number[] | null, mask: MaskInput | null): { name: 'full' | 'local'; options: Record<string, unknown> } {
  const { B, Sq, T } = s;
  const offsets = Array.from({ length: B }, (_, b) => (hasPast ? s.P : nonpad ? nonpad[b] - Sq : 0));
  const options: Record<string, unknown> = {};
  if (nonpad) {
    const keyPadding = new Uint8Array(B * T);
    for (let b = 0; b < B; b++) keyPadding.fill(1, b * T, b * T + nonpad[b]);
    options.keyPadding = keyPadding;
  }
  if (mask?.kind === 'bias') options.bias = mask.tensor;
  const windowed = a.left >= 0 || a.right >= 0;
  if (!a.causal && !windowed) {
    if (mask?.kind === 'mask') options.mask = mask.tensor;
    return { name: 'full', options };
  }
  // The library's causal and local windows sit at p = i + (T - Sq), bottom-right aligned;
  // where the operator's offset is the same for every batch item, they say it natively.
  if (offsets.every((offset) => offset === T - Sq)) {
    if (mask?.kind === 'mask') options.mask = mask.tensor;
    options.causal = a.causal;
    if (!windowed) return { name: 'full', options };
    // an unbounded side reaches every key: p - j < T and j - p < Sq
    options.before = a.left >= 0 ? a.left : T;
    options.after = a.right >= 0 ? a.right : Sq;
    return { name: 'local', options };
  }
  // Elsewhere (top-left causal without a cache, Skv != Sq with a past, per-batch external caches)
  // no native option sits at the operator's frontier, so it becomes a generated boolean mask,
  // intersected with a bool attn_mask.
  const frontier = (b: number, i: number, j: number): boolean => {
    const p = offsets[b] + i;
    return (!a.causal || j <= p) && (a.left < 0 || j >= p - a.left) && (a.right < 0 || j <= p + a.right);
  };
  options.mask = frontierMask(frontier, s, offsets.some((offset) => offset !== offsets[0]), mask?.kind === 'mask' ? mask.tensor : null);
  return { name: 'full', options };
}

/**
 * The frontier as a mask `[B|1, H|1, Sq, T]`, and with a bool mask `given`
 * (`[B|1, H|1, Sq|1, T]`, already padded to T) the intersection of both.
 */
function frontierMask(frontier: (b: number, i: number, j: number) => boolean, s: Sizes, perBatch: boolean, given: { data: Uint8Array; dims: readonly number[] } | null): { data: Uint8Array; dims: number[] } {
  const { Sq, T } = s;
  const [gb, gh, gq] = given ? ([1, 1, 1, ...given.dims].slice(-4) as number[]) : [1, 1, 1];
  const Bm = perBatch || gb > 1 ? s.B : 1;
  const Hm = gh;
  const data = new Uint8Array(Bm * Hm * Sq * T);
  for (let b = 0; b < Bm; b++) {
    for (let h = 0; h < Hm; h++) {
      for (let i = 0; i < Sq; i++) {
        const row = ((b * Hm + h) * Sq + i) * T;
        const givenRow = ((Math.min(b, gb - 1) * gh + h) * gq + Math.min(i, gq - 1)) * T;
        for (let j = 0; j < T; j++) data[row + j] = frontier(b, i, j) && (!given || given.data[givenRow + j] !== 0) ? 1 : 0;
      }
    }
  }
  return { data, dims: [Bm, Hm, Sq, T] };
}

/**
 * `Y`, the caches and `qk_matmul_output` of one `Attention` node, computed
 * by `attn`'s `full` / `local` (and, for `qk_matmul_output`, its float64
 * logits and weights).
 */
export function onnxAttention(attn: AttentionCalls, givenInputs: unknown, givenAttributes?: unknown): OnnxAttentionOutputs {
  const inputs = asRecord(givenInputs, 'inputs');
  const attributes = asRecord(givenAttributes, 'attributes');
  checkNames(inputs, INPUT_NAMES, 'inputs', 'Attention');
  checkNames(attributes, ATTRIBUTE_NAMES, 'attributes', 'Attention');
  const a = readAttributes(attributes);
  for (const name of ['Q', 'K', 'V'] as const) if (!isGiven(inputs[name])) throw new TypeError(`inputs.${name}: required input is missing`);
  const [Q, K, V] = (['Q', 'K', 'V'] as const).map((name) => floatTensor(inputs[name], `inputs.${name}`));
  const shape = readSizes(Q, K, V, a);
  const past = readPast(inputs, shape);
  const P = past?.P ?? 0;
  const s: Sizes = { ...shape, P, T: P + shape.Skv };
  const nonpad = readNonpad(inputs.nonpad_kv_seqlen, s, past !== null);
  const mask = isGiven(inputs.attn_mask) ? readMask(inputs.attn_mask, s) : null;

  const packed = s.rank === 3;
  const presentKey = present(past?.key ?? null, K, s, s.D, packed);
  const presentValue = present(past?.value ?? null, V, s, s.Dv, packed);
  // 3D [B, S, H * Dx] is the 'bnhd' layout of [B, S, H, Dx]: read in place; with a past the keys are the 4D caches
  const bnhd = (t: Tensor, H: number) => ({ data: t.data, dims: [s.B, t.dims[1], H, t.dims[2] / H] });
  const inPlace = packed && !past;
  const q = !packed ? Q : inPlace ? bnhd(Q, s.Hq) : { data: swapMiddleAxes(Q.data, s.B, s.Sq, s.Hq, s.D), dims: [s.B, s.Hq, s.Sq, s.D] };
  const k = inPlace ? bnhd(K, s.Hkv) : past ? presentKey : K;
  const v = inPlace ? bnhd(V, s.Hkv) : past ? presentValue : V;
  const layout = inPlace ? 'bnhd' : 'bhnd';
  const scale = a.scale ?? 1 / Math.sqrt(s.D);
  const cap = a.softcap > 0 ? { softcap: a.softcap } : {};
  const { name, options } = visibility(a, s, past !== null, nonpad, mask);
  const call = { ...options, ...cap, scale, layout };

  const out = attn.apply(name, q, k, v, call);
  const Y = !packed ? out : { data: inPlace ? out.data : swapMiddleAxes(out.data, s.B, s.Hq, s.Sq, s.Dv), dims: [s.B, s.Sq, s.Hq * s.Dv] };
  const result: OnnxAttentionOutputs = { Y, present_key: presentKey, present_value: presentValue };
  if (a.mode === null) return result;
  // qk_matmul_output: 0 the scaled logits, 1 after the cap, 2 with the mask and bias (-Infinity where hidden), 3 the probabilities
  const qk = [
    () => attn.logits('full', q, k, { scale, layout }),
    () => attn.logits('full', q, k, { ...cap, scale, layout }),
    () => attn.logits(name, q, k, call),
    () => attn.weights(name, q, k, call),
  ][a.mode]();
  return { ...result, qk_matmul_output: qk };
}
