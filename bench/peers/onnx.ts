/**
 * The two ONNX models the onnxruntime-web peer runs, written as protobuf
 * bytes by hand (no Python, no .onnx file): the fields of onnx.proto that
 * these graphs need and nothing else.
 *
 * - `multiHeadAttentionModel`: one `com.microsoft` MultiHeadAttention node,
 *   inputs q, k, v `[1, N, H*D]` (its native layout), output `[1, N, H*D]`.
 * - `matMulSoftmaxModel`: `softmax((q * scale) k^T) v` as Mul, Transpose,
 *   MatMul, Softmax, MatMul, inputs `[1, H, N, D]` (ours), output `[1, H, N, D]`.
 */

const utf8 = new TextEncoder();

/** Wire types of the protobuf encoding. */
const VARINT = 0;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** Tensor element type FLOAT in onnx.proto (TensorProto.DataType). */
const FLOAT = 1;
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

/** ValueInfoProto: name and a float tensor type of the given shape. */
function valueInfo(name: string, dims: readonly Dim[]): number[] {
  const shape = dims.flatMap((d) => message(1, typeof d === 'number' ? int(1, d) : text(2, d)));
  const tensorType = [...int(1, FLOAT), ...message(2, shape)];
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

/** ModelProto (IR version 8, opset 17 and com.microsoft 1) around one graph. */
function model(nodes: number[][], inputs: [string, Dim[]][], outputs: [string, Dim[]][]): Uint8Array {
  const graph = [
    ...nodes.flatMap((n) => message(1, n)),
    ...text(2, 'attention'),
    ...inputs.flatMap(([name, dims]) => message(11, valueInfo(name, dims))),
    ...outputs.flatMap(([name, dims]) => message(12, valueInfo(name, dims))),
  ];
  return new Uint8Array([
    ...int(1, 8),
    ...text(2, 'wasm-attention bench'),
    ...message(7, graph),
    ...message(8, [...text(1, ''), ...int(2, 17)]),
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
