// The model terms of SPEC "Masks, bias and soft-capping", written once for
// every kernel of the flash engine (full and the pattern passes). They act on
// a block of scores st[t][8] (lanes = the tile's query rows, q already
// scaled) right after the Q K^T product and before any other mask:
//   1. soft-capping  s <- c tanh(s / c)   (before the bias, so -inf stays -inf:
//                                          ONNX Attention's order)
//   2. bias          s <- s + bias(i, j)  (-inf hides the key)
//   3. mask          s <- -inf where mask(i, j) = 0
// and termsHideBlock tells a kernel that a key block is hidden from every row
// of its tile, so it skips the block (a block-sparse mask costs nothing there).
//
// A head's terms are a 32-byte record written by writeTerms: the u8 mask and
// f32 bias at that head's [Nq, Nk] slice, with row and key strides in
// elements (0 on a broadcast axis), and the cap (0: none).
import { expNonPositive } from './simd';

const MASK: usize = 0;
const MASK_ROW: usize = 4;
const MASK_KEY: usize = 8;
const BIAS: usize = 12;
const BIAS_ROW: usize = 16;
const BIAS_KEY: usize = 20;
const CAP: usize = 24;

const NEG_INF: f32 = -Infinity;
const SIGN: v128 = i32x4.splat(0x80000000);

/** Bytes of one head's terms record. */
export function termsBytes(): i32 {
  return 32;
}

/** Writes a head's terms record (a pointer of 0: no mask, no bias; softcap 0: no cap). */
export function writeTerms(terms: usize, mask: usize, maskRow: i32, maskKey: i32, bias: usize, biasRow: i32, biasKey: i32, softcap: f32): void {
  store<u32>(terms + MASK, <u32>mask);
  store<i32>(terms + MASK_ROW, maskRow);
  store<i32>(terms + MASK_KEY, maskKey);
  store<u32>(terms + BIAS, <u32>bias);
  store<i32>(terms + BIAS_ROW, biasRow);
  store<i32>(terms + BIAS_KEY, biasKey);
  store<f32>(terms + CAP, softcap);
}

/**
 * tanh of four lanes as sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) from
 * expNonPositive (XNNPACK's rr2_p5 constants, see simd.ts): no constant of
 * its own, absolute error below 3e-7, exactly +-1 for |x| > 44.
 */
// @ts-ignore: decorator
@inline export function tanh4(x: v128): v128 {
  const one = f32x4.splat(1);
  const e = expNonPositive(f32x4.mul(f32x4.abs(x), f32x4.splat(-2)));
  return v128.or(f32x4.div(f32x4.sub(one, e), f32x4.add(one, e)), v128.and(x, SIGN));
}

/** Key t of a block: `first + t step`, or `keyList[t]` when a list of positions is given. */
// @ts-ignore: decorator
@inline function keyAt(first: i32, step: i32, keyList: usize, t: i32): i32 {
  return keyList != 0 ? load<i32>(keyList + (<usize>t << 2)) : first + t * step;
}

/**
 * Applies a head's terms to a block of count scores: the tile's rows are
 * i0 + r rowStep (r < 8; those from rowEnd on are not output and left
 * alone), its keys keyAt(jFirst, jStep, keyList, t); keys from Nk on are the
 * padding of the last key tile, hidden already.
 */
export function applyTerms(terms: usize, st: usize, count: i32, i0: i32, rowStep: i32, rowEnd: i32, jFirst: i32, jStep: i32, keyList: usize, Nk: i32): void {
  const cap = load<f32>(terms + CAP);
  if (cap > 0) {
    const c = f32x4.splat(cap);
    const inv = f32x4.splat(1 / cap);
    for (let t = 0; t < count; t++) {
      const row = st + (<usize>t << 5);
      v128.store(row, f32x4.mul(c, tanh4(f32x4.mul(v128.load(row), inv))));
      v128.store(row, f32x4.mul(c, tanh4(f32x4.mul(v128.load(row, 16), inv))), 16);
    }
  }
  const bias = <usize>load<u32>(terms + BIAS);
  const mask = <usize>load<u32>(terms + MASK);
  if (bias == 0 && mask == 0) return;
  const biasRow = <usize>load<i32>(terms + BIAS_ROW);
  const biasKey = <usize>load<i32>(terms + BIAS_KEY);
  const maskRow = <usize>load<i32>(terms + MASK_ROW);
  const maskKey = <usize>load<i32>(terms + MASK_KEY);
  for (let r = 0; r < 8; r++) {
    const i = i0 + r * rowStep;
    if (i >= rowEnd) break;
    const biasAt = bias + ((<usize>i * biasRow) << 2);
    const maskAt = mask + <usize>i * maskRow;
    const lane = st + (<usize>r << 2);
    for (let t = 0; t < count; t++) {
      const j = keyAt(jFirst, jStep, keyList, t);
      if (j >= Nk) continue;
      const s = lane + (<usize>t << 5);
      if (bias != 0) store<f32>(s, load<f32>(s) + load<f32>(biasAt + ((<usize>j * biasKey) << 2)));
      if (mask != 0 && load<u8>(maskAt + <usize>j * maskKey) == 0) store<f32>(s, NEG_INF);
    }
  }
}

/**
 * Whether the mask or a -inf bias hides every key of the block (keys as in
 * applyTerms, those below Nk) from every row of the tile (below rowEnd).
 */
export function termsHideBlock(terms: usize, count: i32, i0: i32, rowStep: i32, rowEnd: i32, jFirst: i32, jStep: i32, keyList: usize, Nk: i32): bool {
  const bias = <usize>load<u32>(terms + BIAS);
  const mask = <usize>load<u32>(terms + MASK);
  if (bias == 0 && mask == 0) return false;
  const biasRow = <usize>load<i32>(terms + BIAS_ROW);
  const biasKey = <usize>load<i32>(terms + BIAS_KEY);
  const maskRow = <usize>load<i32>(terms + MASK_ROW);
  const maskKey = <usize>load<i32>(terms + MASK_KEY);
  for (let r = 0; r < 8; r++) {
    const i = i0 + r * rowStep;
    if (i >= rowEnd) break;
    const biasAt = bias + ((<usize>i * biasRow) << 2);
    const maskAt = mask + <usize>i * maskRow;
    for (let t = 0; t < count; t++) {
      const j = keyAt(jFirst, jStep, keyList, t);
      if (j >= Nk) continue;
      if (mask != 0 && load<u8>(maskAt + <usize>j * maskKey) == 0) continue;
      if (bias != 0 && load<f32>(biasAt + ((<usize>j * biasKey) << 2)) == NEG_INF) continue;
      return false;
    }
  }
  return true;
}
