// The pattern kernel's per-row state between passes, and what every pass
// (patterns.ts, pattern-stride.ts) does to a query tile: start it from that
// state (or empty), pack its queries, score, mask and finish a block of keys,
// and end it back into the state (or into the output rows).
import { copyRow, scaleRow } from '../core/memory';
import { accumulateValues, addKeyBias, finishRows, scoreBlock, softmaxBlock, startRows } from '../core/flash';
import { ROWS, tileOutput, tileScores, tileState, valueWidthPadded } from '../core/flash-layout';
import { packQueryStrided } from '../core/gather';
import { roundUp } from '../core/simd';
import { applyTerms } from '../core/terms';

const NEG_INF: f32 = -Infinity;
export const LANES_0123 = v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0);

// ------------------------------------------------------------ row state

/** Bytes of the per-row state: m [nqPad], l [nqPad], o [nqPad][dvPad]. */
export function patternStateBytes(Nq: i32, Dv: i32): f64 {
  const nqPad = <f64>roundUp(Nq, ROWS);
  return nqPad * (2 + <f64>valueWidthPadded(Dv)) * 4;
}

/** Where the per-row state's l [nqPad] starts (m [nqPad] is at `rows`). */
// @ts-ignore: decorator
@inline export function stateSums(rows: usize, Nq: i32): usize {
  return rows + (<usize>roundUp(Nq, ROWS) << 2);
}

/** Where the per-row state's o [nqPad][dvPad] starts. */
// @ts-ignore: decorator
@inline export function stateOutputs(rows: usize, Nq: i32): usize {
  return rows + (<usize>roundUp(Nq, ROWS) << 3);
}

/** Every row starts with m = -inf, l = 0, o = 0. */
export function patternStart(rows: usize, Nq: i32, Dv: i32): void {
  const nqPad = roundUp(Nq, ROWS);
  for (let i = 0; i < nqPad; i++) store<f32>(rows + (<usize>i << 2), NEG_INF);
  memory.fill(stateSums(rows, Nq), 0, <usize>(nqPad * (1 + valueWidthPadded(Dv))) << 2);
}

/** out[i] = o[i] / l[i] (0 for a row that saw no key) for every row of one head (output rows oLd floats apart). */
export function patternFinish(rows: usize, Nq: i32, Dv: i32, out: usize, oLd: i32): void {
  const dvPad = valueWidthPadded(Dv);
  const sums = stateSums(rows, Nq);
  const acc = stateOutputs(rows, Nq);
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
export function moveRows(rows: usize, Nq: i32, Dv: i32, tile: usize, D: i32, first: i32, step: i32, limit: i32, toTile: bool): void {
  const dvPad = valueWidthPadded(Dv);
  const rowBytes = <usize>dvPad << 2;
  const state = tileState(tile, D);
  const o = tileOutput(tile, D);
  const sums = stateSums(rows, Nq);
  const acc = stateOutputs(rows, Nq);
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

// ------------------------------------------------------------ a pass's tiles

/**
 * Starts the tile of rows first, first + step, ... (those below limit): their
 * state from the per-row arrays, or empty when the pass is the only one and
 * writes the output itself (out != 0).
 */
export function beginRows(rows: usize, Nq: i32, Dv: i32, tile: usize, D: i32, first: i32, step: i32, limit: i32, out: usize): void {
  if (out != 0) startRows(tileState(tile, D), tileOutput(tile, D), valueWidthPadded(Dv));
  else moveRows(rows, Nq, Dv, tile, D, first, step, limit, true);
}

/** Ends the tile beginRows started: its state back to the per-row arrays, or its rows o / l into the output (rows oLd floats apart). */
export function endRows(rows: usize, Nq: i32, Dv: i32, tile: usize, D: i32, first: i32, step: i32, limit: i32, out: usize, oLd: i32): void {
  if (out == 0) {
    moveRows(rows, Nq, Dv, tile, D, first, step, limit, false);
    return;
  }
  // (step oLd stays below Nq oLd whenever a second row is written)
  const count = first < limit ? (limit - 1 - first) / step + 1 : 0;
  finishRows(tileOutput(tile, D), tileState(tile, D), valueWidthPadded(Dv), out + <usize>first * (<usize>oLd << 2), 0, count, Dv, step * oLd);
}

/** A tile that sees no key in this pass: nothing to do, unless the pass writes the output (the rows then see nothing: zeros). */
export function skipRows(Nq: i32, Dv: i32, tile: usize, D: i32, first: i32, step: i32, limit: i32, out: usize, oLd: i32): void {
  if (out == 0) return;
  beginRows(0, Nq, Dv, tile, D, first, step, limit, out);
  endRows(0, Nq, Dv, tile, D, first, step, limit, out, oLd);
}

/** Packs rows first, first + step, ... below limit of q (rows qLd apart, times scale) as the tile's qt[d][8]; the others are 0. */
export function packQueryRows(q: usize, limit: i32, D: i32, qLd: i32, scale: f32, first: i32, step: i32, qt: usize): void {
  packQueryStrided(q, first, step, min(ROWS, (limit - first + step - 1) / step), D, qLd, scale, qt);
}

/** -1 when position p is a global token, else 0. */
// @ts-ignore: decorator
@inline function isGlobal(isToken: usize, Nk: i32, p: i32): i32 {
  return isToken != 0 && p >= 0 && p < Nk && load<u8>(isToken + p) != 0 ? -1 : 0;
}

/** -1 in the lanes of rows whose position is a global token, 0 elsewhere (rows p0 + (4 half + t) step). */
export function globalRows(isToken: usize, Nk: i32, p0: i32, step: i32, half: i32): v128 {
  const p = p0 + half * 4 * step;
  let mask = i32x4.splat(isGlobal(isToken, Nk, p));
  mask = i32x4.replace_lane(mask, 1, isGlobal(isToken, Nk, p + step));
  mask = i32x4.replace_lane(mask, 2, isGlobal(isToken, Nk, p + 2 * step));
  return i32x4.replace_lane(mask, 3, isGlobal(isToken, Nk, p + 3 * step));
}

/**
 * The model terms (rows and keys as applyTerms takes them; terms 0: none) and
 * then the key bias (padding) on the scores of one block of packed keys [x0, x0 + count).
 */
// @ts-ignore: decorator
@inline export function addTerms(
  st: usize, bias: usize, hidden: bool, x0: i32, count: i32,
  terms: usize, i0: i32, rowStep: i32, rowEnd: i32, jFirst: i32, jStep: i32, keyList: usize, keyCount: i32, Nk: i32, cover: i32,
): void {
  if (terms != 0) applyTerms(terms, st, keyCount, i0, rowStep, rowEnd, jFirst, jStep, keyList, Nk, cover);
  if (hidden) addKeyBias(st, count, bias + (<usize>x0 << 2));
}

/** Scores of one block of packed keys [x0, x0 + count) for one tile, with addTerms. */
// @ts-ignore: decorator
@inline export function scoreKeys(
  kp: usize, bias: usize, hidden: bool, x0: i32, count: i32, tile: usize, D: i32,
  terms: usize, i0: i32, rowStep: i32, rowEnd: i32, jFirst: i32, jStep: i32, keyList: usize, keyCount: i32, Nk: i32, cover: i32,
): void {
  const st = tileScores(tile, D);
  scoreBlock(kp, x0 >> 2, count >> 2, tile, D, st);
  addTerms(st, bias, hidden, x0, count, terms, i0, rowStep, rowEnd, jFirst, jStep, keyList, keyCount, Nk, cover);
}

/** The block's masked scores into the tile's running softmax and output. */
// @ts-ignore: decorator
@inline export function finishBlock(vp: usize, x0: i32, count: i32, tile: usize, D: i32, dvPad: i32): void {
  const state = tileState(tile, D);
  softmaxBlock(tileScores(tile, D), count, state);
  accumulateValues(tileScores(tile, D), count, vp + (<usize>(x0 * dvPad) << 2), dvPad, tileOutput(tile, D), state);
}

/**
 * Hides key t of a block of scores from the rows of a tile that do not see
 * it (see0 for rows 0-3, see1 for rows 4-7, false lanes become -inf), and,
 * when causal, from the rows before its position j (pos0, pos1).
 */
// @ts-ignore: decorator
@inline export function hideUnseen(st: usize, t: i32, j: v128, see0: v128, see1: v128, causal: bool, pos0: v128, pos1: v128, minusInf: v128): void {
  if (causal) {
    see0 = v128.and(see0, i32x4.le_s(j, pos0));
    see1 = v128.and(see1, i32x4.le_s(j, pos1));
  }
  const row = st + (<usize>t << 5);
  v128.store(row, v128.bitselect(v128.load(row), minusInf, see0));
  v128.store(row, v128.bitselect(v128.load(row, 16), minusInf, see1), 16);
}
