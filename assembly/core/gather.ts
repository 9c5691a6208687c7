// Packing rows into the attention engine's layouts (query tiles qt[d][8],
// key tiles kp[d][4], value rows of dvPad): rows in order or by a stride
// (full, the pattern passes) or picked by position (lsh, routing), four rows
// at a time through 4 x 4 register transposes.
import { madd, roundUp } from './simd';

const ALL: v128 = i32x4.splat(-1);
const NONE: v128 = i32x4.splat(0);

/**
 * Transposes 4 rows (each D floats from its pointer, times its scale,
 * zeroed where its keep mask is 0) into D vectors of 4 lanes: vector d goes
 * to dst + d stride bytes.
 */
// @ts-ignore: decorator
@inline export function transposeRows(
  p0: usize, p1: usize, p2: usize, p3: usize, s0: v128, s1: v128, s2: v128, s3: v128,
  k0: v128, k1: v128, k2: v128, k3: v128, D: i32, dst: usize, stride: usize,
): void {
  const d4 = D & ~3;
  let out = dst;
  for (let d = 0; d < d4; d += 4) {
    const at = <usize>d << 2;
    // mask after scaling, so a hidden row is exactly 0 whatever it holds
    const a = v128.and(f32x4.mul(v128.load(p0 + at), s0), k0);
    const b = v128.and(f32x4.mul(v128.load(p1 + at), s1), k1);
    const c = v128.and(f32x4.mul(v128.load(p2 + at), s2), k2);
    const e = v128.and(f32x4.mul(v128.load(p3 + at), s3), k3);
    const ab01 = f32x4.shuffle(a, b, 0, 4, 1, 5); // a0 b0 a1 b1
    const ce01 = f32x4.shuffle(c, e, 0, 4, 1, 5);
    const ab23 = f32x4.shuffle(a, b, 2, 6, 3, 7);
    const ce23 = f32x4.shuffle(c, e, 2, 6, 3, 7);
    v128.store(out, f32x4.shuffle(ab01, ce01, 0, 1, 4, 5)); // a0 b0 c0 e0
    v128.store(out + stride, f32x4.shuffle(ab01, ce01, 2, 3, 6, 7));
    v128.store(out + 2 * stride, f32x4.shuffle(ab23, ce23, 0, 1, 4, 5));
    v128.store(out + 3 * stride, f32x4.shuffle(ab23, ce23, 2, 3, 6, 7));
    out += 4 * stride;
  }
  for (let d = d4; d < D; d++) {
    const at = <usize>d << 2;
    const v = f32x4(load<f32>(p0 + at), load<f32>(p1 + at), load<f32>(p2 + at), load<f32>(p3 + at));
    const s = f32x4(f32x4.extract_lane(s0, 0), f32x4.extract_lane(s1, 0), f32x4.extract_lane(s2, 0), f32x4.extract_lane(s3, 0));
    const k = i32x4(i32x4.extract_lane(k0, 0), i32x4.extract_lane(k1, 0), i32x4.extract_lane(k2, 0), i32x4.extract_lane(k3, 0));
    v128.store(out, v128.and(f32x4.mul(v, s), k));
    out += stride;
  }
}

// @ts-ignore: decorator
@inline function rowAt(x: usize, pos: usize, t: i32, count: i32, D: i32): usize {
  return x + (<usize>(load<i32>(pos + (<usize>min(t, count - 1) << 2)) * D) << 2);
}

/**
 * The query tile qt[d][8] of rows pos[0..count) (count <= 8) of x [.][D],
 * times scale; rows past count are 0.
 */
export function gatherQueryTile(x: usize, pos: usize, count: i32, D: i32, scale: f32, qt: usize): void {
  const s = f32x4.splat(scale);
  for (let half = 0; half < 8; half += 4) {
    transposeRows(
      rowAt(x, pos, half, count, D), rowAt(x, pos, half + 1, count, D), rowAt(x, pos, half + 2, count, D), rowAt(x, pos, half + 3, count, D),
      s, s, s, s,
      half < count ? ALL : NONE, half + 1 < count ? ALL : NONE, half + 2 < count ? ALL : NONE, half + 3 < count ? ALL : NONE,
      D, qt + (<usize>half << 2), 32,
    );
  }
}

/**
 * Key tiles kp[t/4][d][4] of rows pos[0..count) of x [.][D], each row
 * times its scale inv[row] (or 1 when inv is 0); the rest of the last tile is 0.
 */
export function gatherKeyTiles(x: usize, pos: usize, count: i32, D: i32, inv: usize, kp: usize): void {
  const one = f32x4.splat(1);
  for (let t = 0; t < count; t += 4) {
    const p0 = rowAt(x, pos, t, count, D);
    const p1 = rowAt(x, pos, t + 1, count, D);
    const p2 = rowAt(x, pos, t + 2, count, D);
    const p3 = rowAt(x, pos, t + 3, count, D);
    let s0 = one, s1 = one, s2 = one, s3 = one;
    if (inv != 0) {
      s0 = v128.load32_splat(inv + (<usize>load<i32>(pos + (<usize>t << 2)) << 2));
      s1 = v128.load32_splat(inv + (<usize>load<i32>(pos + (<usize>min(t + 1, count - 1) << 2)) << 2));
      s2 = v128.load32_splat(inv + (<usize>load<i32>(pos + (<usize>min(t + 2, count - 1) << 2)) << 2));
      s3 = v128.load32_splat(inv + (<usize>load<i32>(pos + (<usize>min(t + 3, count - 1) << 2)) << 2));
    }
    transposeRows(
      p0, p1, p2, p3, s0, s1, s2, s3,
      ALL, t + 1 < count ? ALL : NONE, t + 2 < count ? ALL : NONE, t + 3 < count ? ALL : NONE,
      D, kp + (<usize>(t * D) << 2), 16,
    );
  }
}

/** Value rows vp[t][dvPad] of rows pos[0..count) of v [.][Dv], zero padded to dvPad columns and to a multiple of 4 rows. */
export function gatherValues(v: usize, pos: usize, count: i32, Dv: i32, vp: usize): void {
  const dvPad = roundUp(Dv, 8);
  const d4 = Dv & ~3;
  const rowBytes = <usize>dvPad << 2;
  for (let t = 0; t < count; t++) {
    const src = v + (<usize>(load<i32>(pos + (<usize>t << 2)) * Dv) << 2);
    const dst = vp + <usize>t * rowBytes;
    let d = 0;
    for (; d < d4; d += 4) v128.store(dst + (<usize>d << 2), v128.load(src + (<usize>d << 2)));
    for (; d < Dv; d++) store<f32>(dst + (<usize>d << 2), load<f32>(src + (<usize>d << 2)));
    for (; d < dvPad; d++) store<f32>(dst + (<usize>d << 2), 0);
  }
  const rows = (count + 3) & ~3;
  if (rows > count) memory.fill(vp + <usize>count * rowBytes, 0, <usize>(rows - count) * rowBytes);
}

/**
 * The query tile qt[d][8] of rows first, first + step, ... (count <= 8 of
 * them) of x (D features, rows ld floats apart), times scale; rows past count are 0.
 */
export function packQueryStrided(x: usize, first: i32, step: i32, count: i32, D: i32, ld: i32, scale: f32, qt: usize): void {
  const s = f32x4.splat(scale);
  const rowBytes = <usize>step * (<usize>ld << 2);
  const last = x + <usize>(first + (count - 1) * step) * (<usize>ld << 2);
  for (let half = 0; half < 8; half += 4) {
    // rows past count read the last row (always in bounds) and are masked to 0
    const p0 = half < count ? x + <usize>(first + half * step) * (<usize>ld << 2) : last;
    transposeRows(
      p0, half + 1 < count ? p0 + rowBytes : last, half + 2 < count ? p0 + 2 * rowBytes : last, half + 3 < count ? p0 + 3 * rowBytes : last,
      s, s, s, s,
      half < count ? ALL : NONE, half + 1 < count ? ALL : NONE, half + 2 < count ? ALL : NONE, half + 3 < count ? ALL : NONE,
      D, qt + (<usize>half << 2), 32,
    );
  }
}

/**
 * Key tiles kp[t/4][d][4] of rows first, first + step, ... (count of them)
 * of x (D features, rows ld floats apart); the rest of the last tile is 0.
 */
export function packKeysStrided(x: usize, first: i32, step: i32, count: i32, D: i32, ld: i32, kp: usize): void {
  const one = f32x4.splat(1);
  const rowBytes = <usize>step * (<usize>ld << 2);
  const last = x + <usize>(first + (count - 1) * step) * (<usize>ld << 2);
  for (let t = 0; t < count; t += 4) {
    const p0 = x + <usize>(first + t * step) * (<usize>ld << 2);
    transposeRows(
      p0, t + 1 < count ? p0 + rowBytes : last, t + 2 < count ? p0 + 2 * rowBytes : last, t + 3 < count ? p0 + 3 * rowBytes : last,
      one, one, one, one,
      ALL, t + 1 < count ? ALL : NONE, t + 2 < count ? ALL : NONE, t + 3 < count ? ALL : NONE,
      D, kp + (<usize>(t * D) << 2), 16,
    );
  }
}

/** inv[n] = 1 / max(|x_n|, 1e-12) for the rows of x [N][D]: what normalising a row multiplies it by. */
export function inverseNorms(x: usize, N: i32, D: i32, inv: usize): void {
  const d4 = D & ~3;
  for (let n = 0; n < N; n++) {
    const row = x + (<usize>(n * D) << 2);
    let acc = f32x4.splat(0);
    for (let d = 0; d < d4; d += 4) {
      const v = v128.load(row + (<usize>d << 2));
      acc = madd(v, v, acc);
    }
    let sq = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
    for (let d = d4; d < D; d++) {
      const v = load<f32>(row + (<usize>d << 2));
      sq += v * v;
    }
    store<f32>(inv + (<usize>n << 2), 1 / max(Mathf.sqrt(sq), <f32>1e-12));
  }
}

/** Rows pos[0..count) of x [.][n] += src [count][n] (a backward pass's scatter of gathered rows' gradients). */
export function scatterAddRows(src: usize, pos: usize, count: i32, n: i32, x: usize): void {
  const n4 = n & ~3;
  for (let t = 0; t < count; t++) {
    const s = src + (<usize>(t * n) << 2);
    const d = x + (<usize>(load<i32>(pos + (<usize>t << 2)) * n) << 2);
    let e = 0;
    for (; e < n4; e += 4) v128.store(d + (<usize>e << 2), f32x4.add(v128.load(d + (<usize>e << 2)), v128.load(s + (<usize>e << 2))));
    for (; e < n; e++) store<f32>(d + (<usize>e << 2), load<f32>(d + (<usize>e << 2)) + load<f32>(s + (<usize>e << 2)));
  }
}
