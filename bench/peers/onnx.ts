/**
 * The ONNX models the onnxruntime-web peer runs, written as protobuf
 * bytes by hand (no Python, no .onnx file): the fields of onnx.proto that
 * these graphs need and nothing else.
 *
 * - `multiHeadAttentionModel`: one `com.microsoft` MultiHeadAttention node,
 *   inputs q, k, v `[1, N, H*D]` (its native layout), output `[1, N, H*D]`.
 * - `matMulSoftmaxModel`: `softmax((q * scale) k^T) v` as Mul, Transpose,
 *   MatMul, Softmax, MatMul, inputs `[1, H, N, D]` (ours), output `[1, H, N, D]`.
 * - `attentionModel`: the ONNX `Attention` op (opset 23) with grouped-query
 *   heads, 3D inputs `[1, N, H*D]` and `[1, N, Hkv*D]`.
 * - `groupQueryAttentionModel`: the `com.microsoft` GroupQueryAttention op
 *   (causal), the same layout.
 * - `attentionDecodeModel`: the ONNX `Attention` op for one decoding step,
 *   with `past_key` / `past_value` `[1, Hkv, P, D]` and their presents.
 */

const utf8 = new TextEncoder();

/** Wire types of the protobuf encoding. */
const VARINT = 0;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** Tensor element types FLOAT and INT32 in onnx.proto (TensorProto.DataType). */
const FLOAT = 1;
const INT32 = 6;
/** AttributeProto.AttributeType values used here. */
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

function varint(value: number): number[] {
  const out: number[] = [];
  let n = BigInt(value);
  if (n < 0n) n += 1n << 64n; // int64 fields: two's complement in 10 bytes
  do {
    let byte = Number(n & 0x7fn);
    n >>= 7n;
    if (n > 0n) byte |= 0x80;
    out.push(byte);
  } while (n > 0n);
  return out;
}

const key = (field: number, wire: number) => varint((field << 3) | wire);
const int = (field: number, value: number) => [...key(field, VARINT), ...varint(value)];
const message = (field: number, body: number[]) => [...key(field, LENGTH_DELIMITED), ...varint(body.length), ...body];
const text = (field: number, value: string) => message(field, [...utf8.encode(value)]);
const float = (field: number, value: number) => [...key(field, FIXED32), ...new Uint8Array(new Float32Array([value]).buffer)];

/** A dimension: a number, or a name for a free (symbolic) size. */
type Dim = number | string;

/** ValueInfoProto: name and a tensor type (float by default) of the given shape. */
function valueInfo(name: string, dims: readonly Dim[], type = FLOAT): number[] {
  const shape = dims.flatMap((d) => message(1, typeof d === 'number' ? int(1, d) : text(2, d)));
  const tensorType = [...int(1, type), ...message(2, shape)];
  return [...text(1, name), ...message(2, message(1, tensorType))];
}

type Attribute = number[];
const intAttr = (name: string, value: number): Attribute => [...text(1, name), ...int(20, ATTR_INT), ...int(3, value)];
const floatAttr = (name: string, value: number): Attribute => [...text(1, name), ...int(20, ATTR_FLOAT), ...float(2, value)];
const intsAttr = (name: string, values: number[]): Attribute => [...text(1, name), ...int(20, ATTR_INTS), ...values.flatMap((v) => int(8, v))];

/** NodeProto. */
function node(op: string, inputs: string[], outputs: string[], attributes: Attribute[] = [], domain = ''): number[] {
  return [
    ...inputs.flatMap((i) => text(1, i)),
    ...outputs.flatMap((o) => text(2, o)),
    ...text(4, op),
    ...attributes.flatMap((a) => message(5, a)),
    ...(domain ? text(7, domain) : []),
  ];
}

/**
 * ModelProto around one graph: IR version 8 with opset 17 by default (IR 11
 * for opset 23, the first with the ONNX Attention op), and com.microsoft 1.
 * An input may have an element type other than float (`[name, dims, type]`).
 */
function model(nodes: number[][], inputs: [string, Dim[], number?][], outputs: [string, Dim[]][], opset = 17): Uint8Array {
  const graph = [
    ...nodes.flatMap((n) => message(1, n)),
    ...text(2, 'attention'),
    ...inputs.flatMap(([name, dims, type]) => message(11, valueInfo(name, dims, type))),
    ...outputs.flatMap(([name, dims]) => message(12, valueInfo(name, dims))),
  ];
  return new Uint8Array([
    ...int(1, opset >= 23 ? 11 : 8),
    ...text(2, 'wasm-attention bench'),
    ...message(7, graph),
    ...message(8, [...text(1, ''), ...int(2, opset)]),
    ...message(8, [...text(1, 'com.microsoft'), ...int(2, 1)]),
  ]);
}

/** `com.microsoft` MultiHeadAttention: q, k, v and output `[1, N, H*D]`. */
export function multiHeadAttentionModel(H: number, D: number, scale: number): Uint8Array {
  const io: Dim[] = [1, 'N', H * D];
  return model(
    [node('MultiHeadAttention', ['q', 'k', 'v'], ['out'], [intAttr('num_heads', H), floatAttr('scale', scale)], 'com.microsoft')],
    [['q', io], ['k', io], ['v', io]],
    [['out', io]],
  );
}

/**
 * The ONNX `Attention` op (opset 23) with grouped-query heads: 3D inputs q
 * `[1, N, H*D]`, k and v `[1, N, Hkv*D]`, attributes q_num_heads and
 * kv_num_heads; output `[1, N, H*D]`. Query head h reads kv head
 * floor(h / (H / Hkv)), as ours.
 */
export function attentionModel(H: number, Hkv: number, D: number, scale: number): Uint8Array {
  return model(
    [node('Attention', ['q', 'k', 'v'], ['out'], [intAttr('q_num_heads', H), intAttr('kv_num_heads', Hkv), floatAttr('scale', scale)])],
    [['q', [1, 'N', H * D]], ['k', [1, 'N', Hkv * D]], ['v', [1, 'N', Hkv * D]]],
    [['out', [1, 'N', H * D]]],
    23,
  );
}

/**
 * One decoding step of the ONNX `Attention` op (opset 23): q `[1, 1, H*D]`,
 * k and v `[1, 1, Hkv*D]` for the new token, `past_key` and `past_value`
 * `[1, Hkv, P, D]`; outputs `[1, 1, H*D]` and the presents `[1, Hkv, P + 1, D]`
 * (the operator concatenates past and new: a copy of the cache per step).
 */
export function attentionDecodeModel(H: number, Hkv: number, D: number, scale: number): Uint8Array {
  return model(
    [node('Attention', ['q', 'k', 'v', '', 'past_key', 'past_value'], ['out', 'present_key', 'present_value'], [intAttr('q_num_heads', H), intAttr('kv_num_heads', Hkv), floatAttr('scale', scale)])],
    [['q', [1, 1, H * D]], ['k', [1, 1, Hkv * D]], ['v', [1, 1, Hkv * D]], ['past_key', [1, Hkv, 'P', D]], ['past_value', [1, Hkv, 'P', D]]],
    [['out', [1, 1, H * D]], ['present_key', [1, Hkv, 'T', D]], ['present_value', [1, Hkv, 'T', D]]],
    23,
  );
}

/**
 * `com.microsoft` GroupQueryAttention: q `[1, N, H*D]`, k and v
 * `[1, N, Hkv*D]`, no past (the whole sequence as one prompt): seqlens_k
 * `[1]` int32 = N - 1 and total_sequence_length `[]` int32 = N are inputs.
 * The op is causal by construction (it serves decoders).
 */
export function groupQueryAttentionModel(H: number, Hkv: number, D: number, scale: number): Uint8Array {
  return model(
    [
      node(
        'GroupQueryAttention',
        ['q', 'k', 'v', '', '', 'seqlens_k', 'total_sequence_length'],
        ['out', 'present_key', 'present_value'],
        [intAttr('num_heads', H), intAttr('kv_num_heads', Hkv), floatAttr('scale', scale)],
        'com.microsoft',
      ),
    ],
    [['q', [1, 'N', H * D]], ['k', [1, 'N', Hkv * D]], ['v', [1, 'N', Hkv * D]], ['seqlens_k', [1], INT32], ['total_sequence_length', [], INT32]],
    [['out', [1, 'N', H * D]]],
  );
}

/**
 * `softmax((q * scale) k^T) v` as plain ONNX ops; the scale is an input (a
 * scalar), applied to q (N D multiplications, not N^2).
 */
export function matMulSoftmaxModel(H: number, D: number): Uint8Array {
  const io: Dim[] = [1, H, 'N', D];
  return model(
    [
      node('Mul', ['q', 'scale'], ['qScaled']),
      node('Transpose', ['k'], ['kT'], [intsAttr('perm', [0, 1, 3, 2])]),
      node('MatMul', ['qScaled', 'kT'], ['logits']),
      node('Softmax', ['logits'], ['weights'], [intAttr('axis', -1)]),
      node('MatMul', ['weights', 'v'], ['out']),
    ],
    [['q', io], ['k', io], ['v', io], ['scale', []]],
    [['out', io]],
  );
}
