// The model terms of SPEC "Masks, bias and soft-capping", written once for
// every kernel of the flash engine (full and the pattern passes). They act on
// a block of scores st[t][8] (lanes = the tile's query rows, q already
// scaled) right after the Q K^T product and before any other mask:
//   1. soft-capping  s <- c tanh(s / c)   (before the bias, so -inf stays -inf:
//                                          ONNX Attention's order)
//   2. bias          s <- s + bias(i, j)  (-inf hides the key)
//   3. mask          s <- -inf where mask(i, j) = 0
// and termsCover tells a kernel that a key block is hidden from every row of
// its tile, so it skips the block (a block-sparse mask costs nothing there),
// or that the mask hides nothing there, so it is not applied.
//
// A head's terms are a 32-byte record written by writeTerms: the u8 mask and
// f32 bias at that head's [Nq, Nk] slice, with row and key strides in
// elements (0 on a broadcast axis), and the cap (0: none).
import { expNonPositive, madd } from './simd';

const MASK: usize = 0;
const MASK_ROW: usize = 4;
const MASK_KEY: usize = 8;
const BIAS: usize = 12;
const BIAS_ROW: usize = 16;
const BIAS_KEY: usize = 20;
const CAP: usize = 24;
const COVERS: usize = 28;
const COVER_BLOCKS: usize = 32;

const NEG_INF: f32 = -Infinity;
const SIGN: v128 = i32x4.splat(0x80000000);

/** Bytes of one head's terms record. */
export function termsBytes(): i32 {
  return 40;
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
  store<u32>(terms + COVERS, 0);
}

/** A record's soft-cap (0: none). */
export function termsCap(terms: usize): f32 {
  return load<f32>(terms + CAP);
}

/**
 * Lets the heads of a batch share their blocks' covers (a mask and bias that
 * do not vary by head): `covers` holds a byte per (8-row tile, 64-key block),
 * `blocks` to a tile row, 0 until the first head that needs it computes it.
 * Heads on other threads may compute the same byte at once: they write the
 * same value.
 */
export function shareCovers(terms: usize, covers: usize, blocks: i32): void {
  store<u32>(terms + COVERS, <u32>covers);
  store<i32>(terms + COVER_BLOCKS, blocks);
}

/** termsCover of a whole tile (rows i0 .. i0 + 8 below rowEnd) and a 64-key block at j0, from the shared covers when there are some. */
export function tileCover(terms: usize, count: i32, i0: i32, rowEnd: i32, j0: i32, Nk: i32): i32 {
  const covers = <usize>load<u32>(terms + COVERS);
  if (covers == 0) return termsCover(terms, count, i0, 1, rowEnd, j0, 1, 0, Nk);
  const at = covers + <usize>(i0 >> 3) * <usize>load<i32>(terms + COVER_BLOCKS) + <usize>(j0 >> 6);
  const known = load<u8>(at);
  if (known != 0) return <i32>known - 1;
  const cover = termsCover(terms, count, i0, 1, rowEnd, j0, 1, 0, Nk);
  store<u8>(at, <u8>(cover + 1));
  return cover;
}

// tanh's Taylor series at 0, x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 - ...
// (the coefficients rounded to float32), for |x| < 1/4 where the next term is
// below 1e-8 of the value.
const T3: f32 = reinterpret<f32>(0x3EAAAAAB); // 1/3
const T5: f32 = reinterpret<f32>(0x3E088889); // 2/15
const T7: f32 = reinterpret<f32>(0x3D5D0DD1); // 17/315
const T9: f32 = reinterpret<f32>(0x3CB327A4); // 62/2835
const SERIES_END: f32 = 0.25;

/**
 * tanh of four lanes, to a relative error of about 5e-7 (soft-capping scales
 * it by the cap, so it must hold near 0 too): the series above for |x| < 1/4,
 * else sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) from expNonPositive
 * (XNNPACK's rr2_p5 constants, simd.ts), where 1 - e >= 0.39 keeps it exact.
 */
// @ts-ignore: decorator
@inline export function tanh4(x: v128): v128 {
  const a = f32x4.abs(x);
  const x2 = f32x4.mul(x, x);
  let p = madd(x2, f32x4.splat(T9), f32x4.splat(-T7));
  p = madd(p, x2, f32x4.splat(T5));
  p = madd(p, x2, f32x4.splat(-T3));
  const near = madd(f32x4.mul(p, x2), x, x);
  const inSeries = f32x4.lt(a, f32x4.splat(SERIES_END));
  // a large cap keeps most logits / c in the series' range: no exp, no division
  if (i32x4.all_true(inSeries)) return near;
  const one = f32x4.splat(1);
  const e = expNonPositive(f32x4.mul(a, f32x4.splat(-2)));
  const far = v128.or(f32x4.div(f32x4.sub(one, e), f32x4.add(one, e)), v128.and(x, SIGN));
  return v128.bitselect(near, far, inSeries);
}

// The columns of the last transpose4 (module globals: AssemblyScript returns one value).
let column0: v128 = i32x4.splat(0);
let column1: v128 = i32x4.splat(0);
let column2: v128 = i32x4.splat(0);
let column3: v128 = i32x4.splat(0);

/** Transposes four rows of four lanes: column c holds lane c of rows a, b, c, d. */
// @ts-ignore: decorator
@inline function transpose4(a: v128, b: v128, c: v128, d: v128): void {
  const ab01 = f32x4.shuffle(a, b, 0, 4, 1, 5);
  const cd01 = f32x4.shuffle(c, d, 0, 4, 1, 5);
  const ab23 = f32x4.shuffle(a, b, 2, 6, 3, 7);
  const cd23 = f32x4.shuffle(c, d, 2, 6, 3, 7);
  column0 = f32x4.shuffle(ab01, cd01, 0, 1, 4, 5);
  column1 = f32x4.shuffle(ab01, cd01, 2, 3, 6, 7);
  column2 = f32x4.shuffle(ab23, cd23, 0, 1, 4, 5);
  column3 = f32x4.shuffle(ab23, cd23, 2, 3, 6, 7);
}

/** The four bytes of a word as four i32 lanes (0 stays 0, anything else is nonzero). */
// @ts-ignore: decorator
@inline function bytesToLanes(w: u32): v128 {
  return i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(i32x4.splat(w)));
}

/** Key t of a block: `first + t step`, or `keyList[t]` when a list of positions is given. */
// @ts-ignore: decorator
@inline function keyAt(first: i32, step: i32, keyList: usize, t: i32): i32 {
  return keyList != 0 ? load<i32>(keyList + (<usize>t << 2)) : first + t * step;
}

/** What a head's mask and bias do to a block of the tile (termsCover). */
export const BLOCK_HIDDEN: i32 = 0; // every pair hidden: skip the block
export const BLOCK_SEEN: i32 = 1; // the mask hides no pair: only bias and cap apply
export const BLOCK_MIXED: i32 = 2; // the mask hides some pairs

/** Whether any byte of a word is 0 (the classic bit trick). */
// @ts-ignore: decorator
@inline function hasZeroByte(w: u32): bool {
  return ((w - 0x01010101) & ~w & 0x80808080) != 0;
}

/**
 * How the mask (and a bias of -inf) covers a block of count keys (as in
 * applyTerms) for the tile's rows: BLOCK_HIDDEN, BLOCK_SEEN or BLOCK_MIXED.
 * Contiguous mask rows are read sixteen bytes at a time (then four).
 */
export function termsCover(terms: usize, count: i32, i0: i32, rowStep: i32, rowEnd: i32, jFirst: i32, jStep: i32, keyList: usize, Nk: i32): i32 {
  const bias = <usize>load<u32>(terms + BIAS);
  const mask = <usize>load<u32>(terms + MASK);
  if (mask == 0 && bias == 0) return BLOCK_SEEN;
  const biasRow = <usize>load<i32>(terms + BIAS_ROW);
  const biasKey = <usize>load<i32>(terms + BIAS_KEY);
  const maskRow = <usize>load<i32>(terms + MASK_ROW);
  const maskKey = <usize>load<i32>(terms + MASK_KEY);
  const real = keyList != 0 ? count : min(count, jStep > 0 ? (Nk - jFirst + jStep - 1) / jStep : count);
  // the mask's bytes of a row are contiguous: 16, then 4, at a time
  const contiguous = mask != 0 && keyList == 0 && jStep == 1 && maskKey == 1;
  const vectors = contiguous ? real & ~15 : 0;
  const words = contiguous ? real & ~3 : 0;
  let anyHidden = false;
  let anySeen = false;
  for (let r = 0; r < 8; r++) {
    const i = i0 + r * rowStep;
    if (i >= rowEnd) break;
    const biasAt = bias + ((<usize>i * biasRow) << 2);
    const maskAt = mask + <usize>i * maskRow;
    let t = 0;
    for (; t < vectors; t += 16) {
      const m = v128.load(maskAt + <usize>(jFirst + t));
      if (!i8x16.all_true(m)) anyHidden = true;
      if (v128.any_true(m)) anySeen = anySeen || bias == 0 || !allMinusInf(biasAt, biasKey, jFirst + t, 16);
    }
    for (; t < words; t += 4) {
      const w = load<u32>(maskAt + <usize>(jFirst + t));
      if (hasZeroByte(w)) anyHidden = true;
      if (w != 0) anySeen = anySeen || bias == 0 || !allMinusInf(biasAt, biasKey, jFirst + t, 4);
    }
    for (; t < real; t++) {
      const j = keyAt(jFirst, jStep, keyList, t);
      if (j >= Nk) continue;
      if (mask != 0 && load<u8>(maskAt + <usize>j * maskKey) == 0) anyHidden = true;
      else if (bias == 0 || load<f32>(biasAt + ((<usize>j * biasKey) << 2)) != NEG_INF) {
        // without a mask, one pair a bias does not hide settles it
        if (mask == 0) return BLOCK_SEEN;
        anySeen = true;
      }
    }
    if (anyHidden && anySeen) return BLOCK_MIXED;
  }
  return anySeen ? (anyHidden ? BLOCK_MIXED : BLOCK_SEEN) : BLOCK_HIDDEN;
}

/** Whether bias values j .. j + n - 1 of a row (key stride biasKey) are all -inf. */
function allMinusInf(biasAt: usize, biasKey: usize, j: i32, n: i32): bool {
  for (let t = 0; t < n; t++) if (load<f32>(biasAt + ((<usize>(j + t) * biasKey) << 2)) != NEG_INF) return false;
  return true;
}

/**
 * Applies a head's terms to a block of count scores: the tile's rows are
 * i0 + r rowStep (r < 8; those from rowEnd on are not output and left
 * alone), its keys keyAt(jFirst, jStep, keyList, t); keys from Nk on are the
 * padding of the last key tile, hidden already. The mask is applied only
 * where termsCover found it BLOCK_MIXED.
 */
export function applyTerms(terms: usize, st: usize, count: i32, i0: i32, rowStep: i32, rowEnd: i32, jFirst: i32, jStep: i32, keyList: usize, Nk: i32, cover: i32): void {
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
  const mask = cover == BLOCK_MIXED ? <usize>load<u32>(terms + MASK) : 0;
  if (bias == 0 && mask == 0) return;
  const biasRow = <usize>load<i32>(terms + BIAS_ROW);
  const biasKey = <usize>load<i32>(terms + BIAS_KEY);
  const maskRow = <usize>load<i32>(terms + MASK_ROW);
  const maskKey = <usize>load<i32>(terms + MASK_KEY);
  // keys contiguous in memory and all real: four rows by four keys at a time
  if (keyList == 0 && jStep == 1 && jFirst + count <= Nk && (bias == 0 || biasKey == 1) && (mask == 0 || maskKey == 1)) {
    for (let r0 = 0; r0 < 8; r0 += 4) {
      const first = i0 + r0 * rowStep;
      if (first >= rowEnd) break;
      // rows past rowEnd are not output: they read the last one, never past the tensor
      const last = rowEnd - 1;
      const i1 = min(first + rowStep, last), i2 = min(first + 2 * rowStep, last), i3 = min(first + 3 * rowStep, last);
      for (let t = 0; t < count; t += 4) {
        const j = <usize>(jFirst + t);
        const at = st + (<usize>t << 5) + (<usize>r0 << 2);
        let s0 = v128.load(at), s1 = v128.load(at, 32), s2 = v128.load(at, 64), s3 = v128.load(at, 96);
        if (bias != 0) {
          const b = bias + (j << 2);
          transpose4(
            v128.load(b + ((<usize>first * biasRow) << 2)), v128.load(b + ((<usize>i1 * biasRow) << 2)),
            v128.load(b + ((<usize>i2 * biasRow) << 2)), v128.load(b + ((<usize>i3 * biasRow) << 2)),
          );
          s0 = f32x4.add(s0, column0);
          s1 = f32x4.add(s1, column1);
          s2 = f32x4.add(s2, column2);
          s3 = f32x4.add(s3, column3);
        }
        if (mask != 0) {
          const m = mask + j;
          transpose4(
            bytesToLanes(load<u32>(m + <usize>first * maskRow)), bytesToLanes(load<u32>(m + <usize>i1 * maskRow)),
            bytesToLanes(load<u32>(m + <usize>i2 * maskRow)), bytesToLanes(load<u32>(m + <usize>i3 * maskRow)),
          );
          const minusInf = f32x4.splat(NEG_INF);
          s0 = v128.bitselect(minusInf, s0, i32x4.eq(column0, f32x4.splat(0)));
          s1 = v128.bitselect(minusInf, s1, i32x4.eq(column1, f32x4.splat(0)));
          s2 = v128.bitselect(minusInf, s2, i32x4.eq(column2, f32x4.splat(0)));
          s3 = v128.bitselect(minusInf, s3, i32x4.eq(column3, f32x4.splat(0)));
        }
        v128.store(at, s0);
        v128.store(at, s1, 32);
        v128.store(at, s2, 64);
        v128.store(at, s3, 96);
      }
    }
    return;
  }
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
