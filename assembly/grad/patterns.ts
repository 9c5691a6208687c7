// Backward pass of the pattern family (SPEC "Gradients"): full's
// FlashAttention-2 sweeps (grad/full.ts) over the pairs a pattern lets see.
// Mirrors src/grad/patterns.ts. The pattern is the forward's plan of passes
// (src/pattern-kernel.ts kernelPlan): row i at position p sees key j when
//   p is a global token (its row sees every key), or
//   p - A <= j <= p + B (the union of the local windows), or
//   p - j is a multiple of s within the reach (the first strided rule), or
//   j is one of the tile's extra keys (global tokens, random picks, further
//   strided rules) with row i's bit set.
// The row statistics come from the forward's own passes and row state.
import { ROWS, valueWidthPadded } from '../core/flash-layout';
import { stateOutputs, stateSums } from '../variants/pattern-tiles';

const A: usize = 0;
const B: usize = 4;
const IS_TOKEN: usize = 8;
const STRIDE: usize = 12;
const REACH: usize = 16;
const OFFSETS: usize = 20;
const KEYS: usize = 24;
const BITS: usize = 28;

/** Bytes of a pattern record. */
export function patternGradRecordBytes(): i32 {
  return 32;
}

/** Writes a pattern record: window sides (A < 0: none), global tokens u8 [Nk] (or 0), stride (0: none) and reach (< 0: unbounded), the extra keys' tables (or 0). */
export function writePatternRecord(
  record: usize, a: i32, b: i32, isToken: usize, s: i32, reach: i32, offsets: usize, keys: usize, bits: usize,
): void {
  store<i32>(record + A, a);
  store<i32>(record + B, b);
  store<u32>(record + IS_TOKEN, <u32>isToken);
  store<i32>(record + STRIDE, s);
  store<i32>(record + REACH, reach);
  store<u32>(record + OFFSETS, <u32>offsets);
  store<u32>(record + KEYS, <u32>keys);
  store<u32>(record + BITS, <u32>bits);
}

/** Whether position p is a global token (Nk of them). */
// @ts-ignore: decorator
@inline function isGlobal(isToken: usize, p: i32, Nk: i32): i32 {
  return isToken != 0 && p >= 0 && p < Nk && load<u8>(isToken + <usize>p) != 0 ? -1 : 0;
}

/** The lanes of four rows (positions p .. p + 3, those below `rows` real) that are global rows. */
// @ts-ignore: decorator
@inline function globalLanes(isToken: usize, p: i32, Nk: i32, r0: i32, rows: i32): v128 {
  let lanes = i32x4.splat(0);
  if (isToken == 0) return lanes;
  if (r0 < rows) lanes = i32x4.replace_lane(lanes, 0, isGlobal(isToken, p, Nk));
  if (r0 + 1 < rows) lanes = i32x4.replace_lane(lanes, 1, isGlobal(isToken, p + 1, Nk));
  if (r0 + 2 < rows) lanes = i32x4.replace_lane(lanes, 2, isGlobal(isToken, p + 2, Nk));
  if (r0 + 3 < rows) lanes = i32x4.replace_lane(lanes, 3, isGlobal(isToken, p + 3, Nk));
  return lanes;
}

/** The lanes (rows at positions p + lane, real where `real`) whose pattern sees key j by the window or the stride. */
// @ts-ignore: decorator
@inline function ruleLanes(p: v128, j: i32, a: i32, b: i32, s: i32, reach: i32, real: v128): v128 {
  const d = i32x4.sub(p, i32x4.splat(j));
  let seen = i32x4.splat(0);
  if (a >= 0) seen = v128.and(i32x4.le_s(d, i32x4.splat(a)), i32x4.ge_s(d, i32x4.splat(-b)));
  if (s > 0) {
    // d is a multiple of s iff d / s rounds to itself (exact for |d| < 2^24: positions are 32-bit, problems far smaller)
    const df = f32x4.convert_i32x4_s(d);
    const sf = f32x4.splat(<f32>s);
    let multiple = f32x4.eq(f32x4.mul(f32x4.nearest(f32x4.div(df, sf)), sf), df);
    if (reach >= 0) multiple = v128.and(multiple, i32x4.le_s(i32x4.abs(d), i32x4.splat(reach)));
    seen = v128.or(seen, multiple);
  }
  return v128.and(seen, real);
}

/**
 * The pattern's cover of the tile of rows ti .. ti + 8 (the first `rows`
 * real, positions p0 + r) and the keys j0 .. j0 + keys: seen[t][8] (i32
 * lanes, -1 where row r sees key j0 + t). False when no pair is seen.
 */
export function patternCover(record: usize, Nk: i32, ti: i32, rows: i32, p0: i32, j0: i32, keys: i32, seen: usize): bool {
  const a = load<i32>(record + A);
  const b = load<i32>(record + B);
  const isToken = <usize>load<u32>(record + IS_TOKEN);
  const s = load<i32>(record + STRIDE);
  const reach = load<i32>(record + REACH);
  const lanes = v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0);
  const p0v = i32x4.add(i32x4.splat(p0), lanes);
  const p1v = i32x4.add(p0v, i32x4.splat(4));
  const real0 = i32x4.lt_s(lanes, i32x4.splat(rows));
  const real1 = i32x4.lt_s(i32x4.add(lanes, i32x4.splat(4)), i32x4.splat(rows));
  const global0 = globalLanes(isToken, p0, Nk, 0, rows);
  const global1 = globalLanes(isToken, p0 + 4, Nk, 4, rows);
  let any = v128.or(global0, global1);
  for (let t = 0; t < keys; t++) {
    const j = j0 + t;
    const lo = v128.or(global0, ruleLanes(p0v, j, a, b, s, reach, real0));
    const hi = v128.or(global1, ruleLanes(p1v, j, a, b, s, reach, real1));
    v128.store(seen + (<usize>t << 5), lo);
    v128.store(seen + (<usize>t << 5), hi, 16);
    any = v128.or(any, v128.or(lo, hi));
  }
  const offsets = <usize>load<u32>(record + OFFSETS);
  if (offsets != 0) {
    const keyList = <usize>load<u32>(record + KEYS);
    const bits = <usize>load<u32>(record + BITS);
    const tile = ti >> 3;
    const end = load<i32>(offsets + (<usize>(tile + 1) << 2));
    // the tile's keys are sorted: from the first at or past j0
    let e = load<i32>(offsets + (<usize>tile << 2));
    let hiIndex = end;
    while (e < hiIndex) {
      const mid = (e + hiIndex) >>> 1;
      if (load<i32>(keyList + (<usize>mid << 2)) < j0) e = mid + 1;
      else hiIndex = mid;
    }
    for (; e < end; e++) {
      const t = load<i32>(keyList + (<usize>e << 2)) - j0;
      if (t >= keys) break;
      const rowBits = <i32>load<u8>(bits + <usize>e);
      for (let r = 0; r < rows; r++) {
        if ((rowBits >> r) & 1) {
          store<i32>(seen + (<usize>(t * ROWS + r) << 2), -1);
          any = i32x4.splat(-1);
        }
      }
    }
  }
  return v128.any_true(any);
}

/** Hides the scores st[t][8] of the pairs the cover does not see. */
export function applyPatternCover(st: usize, keys: i32, seen: usize): void {
  const minusInf = f32x4.splat(-Infinity);
  for (let t = 0; t < keys * ROWS; t += 4) {
    const at = <usize>t << 2;
    v128.store(st + at, v128.bitselect(v128.load(st + at), minusInf, v128.load(seen + at)));
  }
}

/**
 * Stage 1 of a pattern's backward for one head, after the forward's passes
 * (src/pattern-kernel.ts passCalls) left each row's m, l and o in `rows`:
 * lse = m + log l (+inf for a row that sees no key) and delta = g . out,
 * with out = o / l.
 */
export function patternGradRowStats(rows: usize, Nq: i32, Dv: i32, g: usize, lse: usize, delta: usize): void {
  const dvPad = valueWidthPadded(Dv);
  const sums = stateSums(rows, Nq);
  const acc = stateOutputs(rows, Nq);
  for (let i = 0; i < Nq; i++) {
    const m = load<f32>(rows + (<usize>i << 2));
    const l = load<f32>(sums + (<usize>i << 2));
    store<f32>(lse + (<usize>i << 2), l > 0 ? m + Mathf.log(l) : Infinity);
    const inv: f32 = l > 0 ? 1 / l : 0;
    const o = acc + (<usize>(i * dvPad) << 2);
    const gi = g + (<usize>(i * Dv) << 2);
    let sum: f32 = 0;
    for (let c = 0; c < Dv; c++) sum += load<f32>(gi + (<usize>c << 2)) * (load<f32>(o + (<usize>c << 2)) * inv);
    store<f32>(delta + (<usize>i << 2), sum);
  }
}
