// Pattern attention (local, strided, global, sparse): softmax over the keys a
// pattern makes visible, at a cost proportional to the visible pairs, never
// to Nq x Nk. Mirrors src/patterns.ts.
//
// A query's visible keys are covered by up to three disjoint passes, each
// contiguous in some packing of the keys; the online softmax merges them
// (its state m, l, o is exact whatever the order the keys come in):
//   window pass  rows in order, keys in order: the local window [p - A, p + B]
//                (the union of the local rules) and, for a global query
//                position, the whole row;
//   stride pass  rows and keys grouped by position modulo the stride, so the
//                dilated window of 8 rows of one residue is a contiguous run
//                of that residue's keys; keys the window pass took are hidden;
//   extra pass   the few remaining keys (global tokens, random picks, further
//                strided rules), listed per query tile by the caller with a
//                bit per row, gathered, and attended.
// Between passes each row's m, l and o live in per-row arrays; a pass that
// is the only one starts its tiles empty and writes the output rows itself.
import { copyRow, scaleRow } from '../core/memory';
import {
  KEY_BLOCK, ROWS, accumulateFourRows, accumulateValues, addKeyBias, finishRows, keyCountPadded, packedBias, packedKeys, packedValues,
  scoreBlock, scoreBlock4, softmaxBlock, startRows, tileOutput, tileScores, tileState, valueWidthPadded,
} from '../core/flash';
import { packKeysStrided, packQueryStrided } from '../core/gather';
import { roundUp } from '../core/simd';
import { BLOCK_HIDDEN, applyTerms, termsCover } from '../core/terms';

const NEG_INF: f32 = -Infinity;
const LANES_0123 = v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0);

// ------------------------------------------------------------ row state

/** Bytes of the per-row state: m [nqPad], l [nqPad], o [nqPad][dvPad]. */
export function patternStateBytes(Nq: i32, Dv: i32): f64 {
  const nqPad = <f64>roundUp(Nq, ROWS);
  return nqPad * (2 + <f64>valueWidthPadded(Dv)) * 4;
}

/** Every row starts with m = -inf, l = 0, o = 0. */
export function patternStart(rows: usize, Nq: i32, Dv: i32): void {
  const nqPad = roundUp(Nq, ROWS);
  for (let i = 0; i < nqPad; i++) store<f32>(rows + (<usize>i << 2), NEG_INF);
  memory.fill(rows + (<usize>nqPad << 2), 0, <usize>(nqPad * (1 + valueWidthPadded(Dv))) << 2);
}

/** out[i] = o[i] / l[i] (0 for a row that saw no key) for every row of one head (output rows oLd floats apart). */
export function patternFinish(rows: usize, Nq: i32, Dv: i32, out: usize, oLd: i32): void {
  const nqPad = roundUp(Nq, ROWS);
  const dvPad = valueWidthPadded(Dv);
  const sums = rows + (<usize>nqPad << 2);
  const acc = sums + (<usize>nqPad << 2);
  for (let i = 0; i < Nq; i++) {
    const l = load<f32>(sums + (<usize>i << 2));
    scaleRow(out + <usize>i * (<usize>oLd << 2), acc + (<usize>(i * dvPad) << 2), l > 0 ? 1 / l : 0, Dv);
  }
}

/**
 * Moves the state of rows first, first + step, ... (8 of them, those below
 * limit) between the per-row arrays (of Nq rows) and a query tile. Rows from
 * limit on get an empty state on load and are not stored.
 */
function moveRows(rows: usize, Nq: i32, Dv: i32, tile: usize, D: i32, first: i32, step: i32, limit: i32, toTile: bool): void {
  const nqPad = roundUp(Nq, ROWS);
  const dvPad = valueWidthPadded(Dv);
  const rowBytes = <usize>dvPad << 2;
  const state = tileState(tile, D);
  const o = tileOutput(tile, D);
  const sums = rows + (<usize>nqPad << 2);
  const acc = sums + (<usize>nqPad << 2);
  // rows below limit, counted without forming a row number past it
  const below = first < limit ? (limit - 1 - first) / step + 1 : 0;
  for (let t = 0; t < ROWS; t++) {
    const i = t < below ? first + t * step : limit;
    const m = state + (<usize>t << 2);
    const l = m + 32;
    const ot = o + <usize>t * rowBytes;
    if (toTile) {
      if (i < limit) {
        store<f32>(m, load<f32>(rows + (<usize>i << 2)));
        store<f32>(l, load<f32>(sums + (<usize>i << 2)));
        copyRow(ot, acc + <usize>i * rowBytes, dvPad);
      } else {
        store<f32>(m, NEG_INF);
        store<f32>(l, 0);
        memory.fill(ot, 0, rowBytes);
      }
    } else if (i < limit) {
      store<f32>(rows + (<usize>i << 2), load<f32>(m));
      store<f32>(sums + (<usize>i << 2), load<f32>(l));
      copyRow(acc + <usize>i * rowBytes, ot, dvPad);
    }
  }
}

/**
 * Starts the tile of rows first, first + step, ... (those below limit): their
 * state from the per-row arrays, or empty when the pass is the only one and
 * writes the output itself (out != 0).
 */
function beginRows(rows: usize, Nq: i32, Dv: i32, tile: usize, D: i32, first: i32, step: i32, limit: i32, out: usize): void {
  if (out != 0) startRows(tileState(tile, D), tileOutput(tile, D), valueWidthPadded(Dv));
  else moveRows(rows, Nq, Dv, tile, D, first, step, limit, true);
}

/** Ends the tile beginRows started: its state back to the per-row arrays, or its rows o / l into the output (rows oLd floats apart). */
function endRows(rows: usize, Nq: i32, Dv: i32, tile: usize, D: i32, first: i32, step: i32, limit: i32, out: usize, oLd: i32): void {
  if (out == 0) {
    moveRows(rows, Nq, Dv, tile, D, first, step, limit, false);
    return;
  }
  // (step oLd stays below Nq oLd whenever a second row is written)
  const count = first < limit ? (limit - 1 - first) / step + 1 : 0;
  finishRows(tileOutput(tile, D), tileState(tile, D), valueWidthPadded(Dv), out + <usize>first * (<usize>oLd << 2), 0, count, Dv, step * oLd);
}

/** A tile that sees no key in this pass: nothing to do, unless the pass writes the output (the rows then see nothing: zeros). */
function skipRows(Nq: i32, Dv: i32, tile: usize, D: i32, first: i32, step: i32, limit: i32, out: usize, oLd: i32): void {
  if (out == 0) return;
  beginRows(0, Nq, Dv, tile, D, first, step, limit, out);
  endRows(0, Nq, Dv, tile, D, first, step, limit, out, oLd);
}

/** Packs rows first, first + step, ... below limit of q (rows qLd apart, times scale) as the tile's qt[d][8]; the others are 0. */
function packQueryRows(q: usize, limit: i32, D: i32, qLd: i32, scale: f32, first: i32, step: i32, qt: usize): void {
  packQueryStrided(q, first, step, min(ROWS, (limit - first + step - 1) / step), D, qLd, scale, qt);
}

/** -1 when position p is a global token, else 0. */
// @ts-ignore: decorator
@inline function isGlobal(isToken: usize, Nk: i32, p: i32): i32 {
  return isToken != 0 && p >= 0 && p < Nk && load<u8>(isToken + p) != 0 ? -1 : 0;
}

/** -1 in the lanes of rows whose position is a global token, 0 elsewhere (rows p0 + (4 half + t) step). */
function globalRows(isToken: usize, Nk: i32, p0: i32, step: i32, half: i32): v128 {
  const p = p0 + half * 4 * step;
  let mask = i32x4.splat(isGlobal(isToken, Nk, p));
  mask = i32x4.replace_lane(mask, 1, isGlobal(isToken, Nk, p + step));
  mask = i32x4.replace_lane(mask, 2, isGlobal(isToken, Nk, p + 2 * step));
  return i32x4.replace_lane(mask, 3, isGlobal(isToken, Nk, p + 3 * step));
}

// ------------------------------------------------------------- the passes

/**
 * The model terms (rows and keys as applyTerms takes them; terms 0: none) and
 * then the key bias (padding) on the scores of one block of packed keys [x0, x0 + count).
 */
// @ts-ignore: decorator
@inline function addTerms(
  st: usize, bias: usize, hidden: bool, x0: i32, count: i32,
  terms: usize, i0: i32, rowStep: i32, rowEnd: i32, jFirst: i32, jStep: i32, keyList: usize, keyCount: i32, Nk: i32, cover: i32,
): void {
  if (terms != 0) applyTerms(terms, st, keyCount, i0, rowStep, rowEnd, jFirst, jStep, keyList, Nk, cover);
  if (hidden) addKeyBias(st, count, bias + (<usize>x0 << 2));
}

/** Scores of one block of packed keys [x0, x0 + count) for one tile, with addTerms. */
// @ts-ignore: decorator
@inline function scoreKeys(
  kp: usize, bias: usize, hidden: bool, x0: i32, count: i32, tile: usize, D: i32,
  terms: usize, i0: i32, rowStep: i32, rowEnd: i32, jFirst: i32, jStep: i32, keyList: usize, keyCount: i32, Nk: i32, cover: i32,
): void {
  const st = tileScores(tile, D);
  scoreBlock(kp, x0 >> 2, count >> 2, tile, D, st);
  addTerms(st, bias, hidden, x0, count, terms, i0, rowStep, rowEnd, jFirst, jStep, keyList, keyCount, Nk, cover);
}

// A stride tile's rows 0-3 and rows 4-7 see bands of keys that overlap only in
// part: each half is scored and accumulated over its own band (its lanes of
// the other keys are left as they are, and the mask hides them).

/** Scores of packed keys [xa, xb) (within the block at x0 of count keys) for half h of the tile (rows 4 h .. 4 h + 3). */
function scoreHalf(kp: usize, x0: i32, count: i32, xa: i32, xb: i32, tile: usize, D: i32, h: i32): void {
  const lo = max(xa, x0);
  const hi = min(xb, x0 + count);
  const lanes = <usize>h << 4;
  if (lo < hi) scoreBlock4(kp, lo >> 2, (hi - lo) >> 2, tile + lanes, D, tileScores(tile, D) + (<usize>(lo - x0) << 5) + lanes);
}

/**
 * accumulateValues of half h of the tile over its packed keys [xa, xb) within
 * the block at x0 (none: the rescale only); packed key x's value row at
 * values + (x - base) keyBytes.
 */
function accumulateHalf(values: usize, keyBytes: usize, base: i32, x0: i32, count: i32, xa: i32, xb: i32, tile: usize, D: i32, dvPad: i32, h: i32): void {
  const lo = max(xa, x0);
  const hi = max(lo, min(xb, x0 + count));
  const st = tileScores(tile, D) + (<usize>(lo - x0) << 5);
  accumulateFourRows(st, hi - lo, values + <usize>(lo - base) * keyBytes, keyBytes, dvPad, tileOutput(tile, D), tileState(tile, D), h * 4);
}

/** The first index t of the residue-r keys j = r + t s that a row at position p may see (j >= p - reach; reach < 0: unbounded). */
// @ts-ignore: decorator
@inline function bandFirst(r: i32, s: i32, p: i32, reach: i32): i32 {
  const jLo = reach < 0 ? 0 : max(0, p - reach);
  return jLo <= r ? 0 : (jLo - r + s - 1) / s;
}

/** The last index t of the n residue-r keys that a row at position p may see (j <= p + reach, and j <= p when causal), or -1. */
// @ts-ignore: decorator
@inline function bandLast(r: i32, s: i32, n: i32, p: i32, reach: i32, causal: bool, Nk: i32): i32 {
  const end = causal ? min(Nk, p + 1) : Nk;
  const jHi = min(end - 1, reach < 0 || p > i32.MAX_VALUE - reach ? i32.MAX_VALUE : p + reach);
  return jHi < r ? -1 : min(n - 1, (jHi - r) / s);
}

/** The block's masked scores into the tile's running softmax and output. */
// @ts-ignore: decorator
@inline function finishBlock(vp: usize, x0: i32, count: i32, tile: usize, D: i32, dvPad: i32): void {
  const state = tileState(tile, D);
  softmaxBlock(tileScores(tile, D), count, state);
  accumulateValues(tileScores(tile, D), count, vp + (<usize>(x0 * dvPad) << 2), dvPad, tileOutput(tile, D), state);
}

/**
 * Window pass over query rows [rowStart, rowEnd) of one head (keys packed in
 * order by packHead): a row at position p sees keys p - A ..= p + B (A = B = -1:
 * no local rule), all keys when p is a global token, and never j > p when causal.
 * out != 0: the only pass, writing the output rows (oLd floats apart) itself.
 */
export function patternWindowRows(
  q: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, qLd: i32, scale: f32, causal: bool, terms: usize,
  A: i32, B: i32, isToken: usize, pack: usize, tile: usize, rows: usize, rowStart: i32, rowEnd: i32, out: usize, oLd: i32,
): void {
  const dvPad = valueWidthPadded(Dv);
  const kp = packedKeys(pack);
  const vp = packedValues(pack, Nk, D);
  const bias = packedBias(pack, Nk, D, Dv);
  const hidden = load<i32>(pack) != 0;
  const shift = Nk - Nq;
  const st = tileScores(tile, D);
  const minusInf = f32x4.splat(NEG_INF);
  for (let i0 = rowStart; i0 < rowEnd; i0 += ROWS) {
    const p0 = i0 + shift;
    const pLast = min(i0 + ROWS, rowEnd) - 1 + shift;
    const end = causal ? min(Nk, pLast + 1) : Nk;
    const g0 = globalRows(isToken, Nk, p0, 1, 0);
    const g1 = globalRows(isToken, Nk, p0, 1, 1);
    const anyGlobal = v128.any_true(v128.or(g0, g1));
    const lo = anyGlobal ? 0 : max(0, p0 - A);
    const hi = anyGlobal ? end : min(end, pLast + B + 1);
    // no window and no global row, or no key in reach: nothing for this pass
    if ((!anyGlobal && A < 0) || lo >= hi) {
      skipRows(Nq, Dv, tile, D, i0, 1, rowEnd, out, oLd);
      continue;
    }
    packQueryRows(q, rowEnd, D, qLd, scale, i0, 1, tile);
    beginRows(rows, Nq, Dv, tile, D, i0, 1, rowEnd, out);
    const pos0 = i32x4.add(i32x4.splat(p0), LANES_0123);
    const pos1 = i32x4.add(pos0, i32x4.splat(4));
    const lo0 = i32x4.sub(pos0, i32x4.splat(A));
    const lo1 = i32x4.sub(pos1, i32x4.splat(A));
    const hi0 = i32x4.add(pos0, i32x4.splat(B));
    const hi1 = i32x4.add(pos1, i32x4.splat(B));
    const xEnd = roundUp(hi, 4);
    for (let x0 = lo & ~3; x0 < xEnd; x0 += KEY_BLOCK) {
      const count = min(KEY_BLOCK, xEnd - x0);
      const cover = terms != 0 ? termsCover(terms, count, i0, 1, rowEnd, x0, 1, 0, Nk) : 0;
      if (terms != 0 && cover == BLOCK_HIDDEN) continue;
      scoreKeys(kp, bias, hidden, x0, count, tile, D, terms, i0, 1, rowEnd, x0, 1, 0, count, Nk, cover);
      for (let t = 0; t < count; t++) {
        const j = i32x4.splat(x0 + t);
        let see0 = v128.or(g0, v128.and(i32x4.ge_s(j, lo0), i32x4.le_s(j, hi0)));
        let see1 = v128.or(g1, v128.and(i32x4.ge_s(j, lo1), i32x4.le_s(j, hi1)));
        if (causal) {
          see0 = v128.and(see0, i32x4.le_s(j, pos0));
          see1 = v128.and(see1, i32x4.le_s(j, pos1));
        }
        const row = st + (<usize>t << 5);
        v128.store(row, v128.bitselect(v128.load(row), minusInf, see0));
        v128.store(row, v128.bitselect(v128.load(row, 16), minusInf, see1), 16);
      }
      finishBlock(vp, x0, count, tile, D, dvPad);
    }
    endRows(rows, Nq, Dv, tile, D, i0, 1, rowEnd, out, oLd);
  }
}

/** Keys of residue r (positions r, r + s, ...) among Nk. */
// @ts-ignore: decorator
@inline function residueCount(Nk: i32, s: i32, r: i32): i32 {
  return r < Nk ? (Nk - r + s - 1) / s : 0;
}

/** First packed key of residue r (r <= min(s, Nk)): the residues before it, each padded to a key tile. */
// @ts-ignore: decorator
@inline function residueBase(Nk: i32, s: i32, r: i32): i32 {
  // residues below Nk mod s (all of them when s > Nk) hold one key more than the others
  const longer = Nk / s + 1;
  const longCount = min(r, Nk % s);
  return longCount * keyCountPadded(longer) + (r - longCount) * keyCountPadded(longer - 1);
}

/**
 * Whether the stride pass reads value rows where they are (rows that need no
 * padding to the engine's dvPad columns), or packed by residue like the keys.
 */
// @ts-ignore: decorator
@inline function valuesInPlace(Dv: i32): bool {
  return valueWidthPadded(Dv) == Dv;
}

/** Floats per packed key: its key tile column, its value row unless values are read in place, its bias. */
// @ts-ignore: decorator
@inline function residueKeyFloats(D: i32, Dv: i32): i32 {
  return D + (valuesInPlace(Dv) ? 0 : valueWidthPadded(Dv)) + 1;
}

/** Bytes of a head's keys (and values) packed by residue modulo s (each residue padded to a key tile). */
export function residuePackBytes(Nk: i32, D: i32, Dv: i32, s: i32): f64 {
  return 16 + <f64>residueBase(Nk, s, min(s, Nk)) * residueKeyFloats(D, Dv) * 4;
}

/**
 * Packs one head's keys (rows kLd floats apart) grouped by position modulo
 * s: residue 0's keys in order, then residue 1's, ..., each padded to a
 * multiple of 4, with the key bias (-inf for padding); its values (rows vLd
 * apart) the same way unless valuesInPlace. Layout: header (i32 "has hidden
 * keys", i32 packed keys) | key tiles | value rows | bias. Rows are read in
 * address order: rows a stride apart are not prefetched.
 */
export function packResidues(k: usize, v: usize, Nk: i32, D: i32, Dv: i32, kLd: i32, vLd: i32, s: i32, keyPadding: usize, pack: usize): void {
  const dvPad = valueWidthPadded(Dv);
  const residues = min(s, Nk);
  const total = residueBase(Nk, s, residues);
  const kp = pack + 16;
  const vp = kp + (<usize>(total * D) << 2);
  const bias = pack + 16 + (<usize>(total * (residueKeyFloats(D, Dv) - 1)) << 2);
  const rowBytes = <usize>dvPad << 2;
  const packValues = !valuesInPlace(Dv);
  // residue r holds `longer` keys when r < Nk mod s, one fewer otherwise
  const longer = Nk / s + 1;
  const shortFrom = Nk % s;
  let hidden = false;
  // row j = t s + r goes to x = residueBase(r) + t; at t = 0 mod 4 it starts residue r's key tile
  for (let j0 = 0, t = 0; j0 < Nk; j0 += s, t++) {
    let x = t;
    for (let j = j0; j < min(Nk, j0 + s); j++) {
      const r = j - j0;
      const n = r < shortFrom ? longer : longer - 1;
      if ((t & 3) == 0) packKeysStrided(k, j, s, min(4, n - t), D, kLd, kp + (<usize>(x * D) << 2));
      const real = keyPadding == 0 || load<u8>(keyPadding + j) != 0;
      if (!real) hidden = true;
      store<f32>(bias + (<usize>x << 2), real ? 0 : NEG_INF);
      if (packValues) {
        const dst = vp + <usize>x * rowBytes;
        copyRow(dst, v + <usize>j * (<usize>vLd << 2), Dv);
        memory.fill(dst + (<usize>Dv << 2), 0, <usize>(dvPad - Dv) << 2);
      }
      x += keyCountPadded(n);
    }
  }
  // the keys that fill each residue's last tile: hidden (their values are never read)
  for (let r = 0; r < residues; r++) {
    const end = residueBase(Nk, s, r + 1);
    for (let x = residueBase(Nk, s, r) + residueCount(Nk, s, r); x < end; x++) {
      hidden = true;
      store<f32>(bias + (<usize>x << 2), NEG_INF);
    }
  }
  store<i32>(pack, hidden ? 1 : 0);
  store<i32>(pack, total, 4);
}

/**
 * Stride pass over the rows of one head (keys packed by packResidues; values
 * too, or read in place from v, rows vLd floats apart): a row
 * at position p sees keys j = p mod s with |p - j| <= reach (reach < 0:
 * unbounded), j <= p when causal, except those the window pass took (the
 * window [p - A, p + B] and global rows). Tiles take rows f, f + s, ... of
 * one offset f; the tiles of every offset come one after the other, so that
 * q and the row state are read in address order. out != 0: the only pass,
 * writing the output rows (oLd floats apart) itself.
 */
export function patternStrideRows(
  q: usize, v: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, qLd: i32, vLd: i32, scale: f32, causal: bool, terms: usize,
  s: i32, reach: i32, A: i32, B: i32, isToken: usize, pack: usize, tile: usize, rows: usize, out: usize, oLd: i32,
): void {
  const dvPad = valueWidthPadded(Dv);
  const total = load<i32>(pack, 4);
  const kp = pack + 16;
  const vp = kp + (<usize>(total * D) << 2);
  const bias = pack + 16 + (<usize>(total * (residueKeyFloats(D, Dv) - 1)) << 2);
  const inPlace = valuesInPlace(Dv);
  const vRowBytes = <usize>vLd << 2;
  const keyBytes = inPlace ? <usize>s * vRowBytes : <usize>dvPad << 2;
  const hidden = load<i32>(pack) != 0;
  const shift = Nk - Nq;
  const st = tileScores(tile, D);
  const minusInf = f32x4.splat(NEG_INF);
  const far = reach < 0 ? i32.MAX_VALUE : reach;
  const offsets = min(s, Nq);
  const longest = offsets > 0 ? (Nq - 1) / s + 1 : 0;
  for (let t0 = 0; t0 < longest; t0 += ROWS) {
    for (let first = 0; first < offsets; first++) {
      // rows first, first + s, ... (rowCount of them), walked by their index t
      // so that no row number past Nq is ever formed; their keys: residue r
      const rowCount = (Nq - 1 - first) / s + 1;
      if (t0 >= rowCount) break; // later offsets have no more rows
      const r = (((first + shift) % s) + s) % s;
      const n = residueCount(Nk, s, r);
      const i0 = first + t0 * s;
      const p0 = i0 + shift;
      // the keys each half of the tile may see, as indices t of j = r + t s (none: lo > hi)
      const tileRows = min(ROWS, rowCount - t0);
      const lo0 = bandFirst(r, s, p0, reach);
      const hi0 = bandLast(r, s, n, p0 + min(3, tileRows - 1) * s, reach, causal, Nk);
      const lo1 = tileRows > 4 ? bandFirst(r, s, p0 + 4 * s, reach) : 0;
      const hi1 = tileRows > 4 ? bandLast(r, s, n, p0 + (tileRows - 1) * s, reach, causal, Nk) : -1;
      if (lo0 > hi0 && lo1 > hi1) {
        skipRows(Nq, Dv, tile, D, i0, s, Nq, out, oLd);
        continue;
      }
      packQueryRows(q, Nq, D, qLd, scale, i0, s, tile);
      beginRows(rows, Nq, Dv, tile, D, i0, s, Nq, out);
      // as packed keys, each half's band rounded out to key tiles
      const base = residueBase(Nk, s, r); // first packed key of residue r
      const values = inPlace ? v + <usize>r * vRowBytes : vp + (<usize>(base * dvPad) << 2);
      const xa0 = base + (lo0 & ~3);
      const xb0 = lo0 > hi0 ? xa0 : base + roundUp(hi0 + 1, 4);
      const xa1 = base + (lo1 & ~3);
      const xb1 = lo1 > hi1 ? xa1 : base + roundUp(hi1 + 1, 4);
      const stepPos = i32x4.splat(s);
      const pos0 = i32x4.add(i32x4.splat(p0), i32x4.mul(LANES_0123, stepPos));
      const pos1 = i32x4.add(pos0, i32x4.mul(i32x4.splat(4), stepPos));
      const g0 = globalRows(isToken, Nk, p0, s, 0);
      const g1 = globalRows(isToken, Nk, p0, s, 1);
      const xEnd = lo1 > hi1 ? xb0 : xb1;
      for (let x0 = lo0 > hi0 ? xa1 : xa0; x0 < xEnd; x0 += KEY_BLOCK) {
        const count = min(KEY_BLOCK, xEnd - x0);
        const jFirst = r + (x0 - base) * s;
        const cover = terms != 0 ? termsCover(terms, count, i0, s, Nq, jFirst, s, 0, Nk) : 0;
        if (terms != 0 && cover == BLOCK_HIDDEN) continue;
        scoreHalf(kp, x0, count, xa0, xb0, tile, D, 0);
        scoreHalf(kp, x0, count, xa1, xb1, tile, D, 1);
        addTerms(st, bias, hidden, x0, count, terms, i0, s, Nq, jFirst, s, 0, count, Nk, cover);
        for (let t = 0; t < count; t++) {
          const jPos = r + (x0 - base + t) * s;
          const j = i32x4.splat(jPos);
          const d0 = i32x4.abs(i32x4.sub(pos0, j));
          const d1 = i32x4.abs(i32x4.sub(pos1, j));
          // inside the reach, and not taken by the window pass
          let see0 = v128.andnot(i32x4.le_s(d0, i32x4.splat(far)), v128.or(g0, v128.and(i32x4.ge_s(j, i32x4.sub(pos0, i32x4.splat(A))), i32x4.le_s(j, i32x4.add(pos0, i32x4.splat(B))))));
          let see1 = v128.andnot(i32x4.le_s(d1, i32x4.splat(far)), v128.or(g1, v128.and(i32x4.ge_s(j, i32x4.sub(pos1, i32x4.splat(A))), i32x4.le_s(j, i32x4.add(pos1, i32x4.splat(B))))));
          if (causal) {
            see0 = v128.and(see0, i32x4.le_s(j, pos0));
            see1 = v128.and(see1, i32x4.le_s(j, pos1));
          }
          const row = st + (<usize>t << 5);
          v128.store(row, v128.bitselect(v128.load(row), minusInf, see0));
          v128.store(row, v128.bitselect(v128.load(row, 16), minusInf, see1), 16);
        }
        softmaxBlock(st, count, tileState(tile, D));
        // (the keys that fill the residue's last tile have no value row)
        accumulateHalf(values, keyBytes, base, x0, count, xa0, min(xb0, base + n), tile, D, dvPad, 0);
        accumulateHalf(values, keyBytes, base, x0, count, xa1, min(xb1, base + n), tile, D, dvPad, 1);
      }
      endRows(rows, Nq, Dv, tile, D, i0, s, Nq, out, oLd);
    }
  }
}

/** Bytes of the extra pass's gathered keys and values (one block). */
export function extraBytes(D: i32, Dv: i32): f64 {
  return <f64>KEY_BLOCK * (<f64>D + valueWidthPadded(Dv) + 1) * 4 + 16;
}

/**
 * Extra pass over query tiles [tileStart, tileEnd) of one head: tile t
 * (rows 8t ..) sees keys keys[offsets[t] .. offsets[t + 1]) (positions,
 * ascending), row r of the tile seeing a key when bit r of its bits is set
 * (the caller has applied the pattern, causal and what the other passes took);
 * key padding comes from the head's bias in `pack` (packHead).
 */
export function patternExtraRows(
  q: usize, k: usize, v: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, qLd: i32, kLd: i32, vLd: i32, scale: f32, terms: usize,
  offsets: usize, keys: usize, bits: usize, pack: usize, gathered: usize, tile: usize, rows: usize,
  tileStart: i32, tileEnd: i32,
): void {
  const dvPad = valueWidthPadded(Dv);
  const headBias = packedBias(pack, Nk, D, Dv);
  const gk = gathered;
  const gv = gk + (<usize>(KEY_BLOCK * D) << 2);
  const gb = gv + (<usize>(KEY_BLOCK * dvPad) << 2);
  const st = tileScores(tile, D);
  const minusInf = f32x4.splat(NEG_INF);
  const rowBits0 = v128(1, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0);
  const rowBits1 = i32x4.shl(rowBits0, 4);
  for (let t = tileStart; t < tileEnd; t++) {
    const from = load<i32>(offsets + (<usize>t << 2));
    const to = load<i32>(offsets + (<usize>(t + 1) << 2));
    if (from >= to) continue;
    const i0 = t * ROWS;
    packQueryRows(q, Nq, D, qLd, scale, i0, 1, tile);
    moveRows(rows, Nq, Dv, tile, D, i0, 1, Nq, true);
    for (let e0 = from; e0 < to; e0 += KEY_BLOCK) {
      const count = min(KEY_BLOCK, to - e0);
      const padded = roundUp(count, 4);
      const keyList = keys + (<usize>e0 << 2);
      const cover = terms != 0 ? termsCover(terms, count, i0, 1, Nq, 0, 0, keyList, Nk) : 0;
      if (terms != 0 && cover == BLOCK_HIDDEN) continue;
      // gather the block's keys (as key tiles of 4), values and bias
      memory.fill(gv, 0, <usize>(padded * dvPad) << 2);
      for (let x = 0; x < padded; x++) {
        const dst = gk + (<usize>((x >> 2) * D * 4 + (x & 3)) << 2);
        if (x < count) {
          const j = load<i32>(keys + (<usize>(e0 + x) << 2));
          const src = k + <usize>j * (<usize>kLd << 2);
          for (let d = 0; d < D; d++) store<f32>(dst + (<usize>d << 4), load<f32>(src + (<usize>d << 2)));
          copyRow(gv + (<usize>(x * dvPad) << 2), v + <usize>j * (<usize>vLd << 2), Dv);
          store<f32>(gb + (<usize>x << 2), load<f32>(headBias + (<usize>j << 2)));
        } else {
          for (let d = 0; d < D; d++) store<f32>(dst + (<usize>d << 4), 0);
          store<f32>(gb + (<usize>x << 2), NEG_INF);
        }
      }
      scoreKeys(gk, gb, true, 0, padded, tile, D, terms, i0, 1, Nq, 0, 0, keyList, count, Nk, cover);
      for (let x = 0; x < count; x++) {
        const b = i32x4.splat(load<u8>(bits + <usize>(e0 + x)));
        const row = st + (<usize>x << 5);
        v128.store(row, v128.bitselect(v128.load(row), minusInf, i32x4.ne(v128.and(b, rowBits0), i32x4.splat(0))));
        v128.store(row, v128.bitselect(v128.load(row, 16), minusInf, i32x4.ne(v128.and(b, rowBits1), i32x4.splat(0))), 16);
      }
      finishBlock(gv, 0, padded, tile, D, dvPad);
    }
    moveRows(rows, Nq, Dv, tile, D, i0, 1, Nq, false);
  }
}
