// Backward pass of `full` (SPEC "Gradients") as FlashAttention-2's: no
// Nq x Nk buffer, the probabilities recomputed tile by tile from each row's
// log-sum-exp. Mirrors src/grad/full-plan.ts; the forward is
// assembly/variants/full.ts, whose engine loop gives the row statistics.
//
// With P = softmax(l), l = softcap(scale q k^T) + bias (+ masks), g = dOut:
//   stage 1, per row:  lse = log sum exp l,  delta = g . out
//   stage 2, per key block J, over every row block I:
//     dP = g V_J^T,  dl = P (dP - delta),  ds = dl cap'(s)
//     dV_J += P^T g_I,  dK_J += ds^T q_I,  dq_I += ds K_J   (times scale at the end)
//   stage 3, only with a bias: dbias += dl, summed over its broadcast axes.
// Scores are the engine's blocks st[key][8 rows] (lanes = rows): ds times K_J
// reads them as they are; a row block's P and ds are gathered as panels
// [key / 4][64 rows][4] so that the products for dV_J and dK_J run over all 64
// rows at once, with constant offsets (gemmPanels).
import { dot } from '../core/features';
import { addKeyBias, maskCausal, maskWindowStart, scoreBlock } from '../core/flash';
import { KEY_BLOCK, ROWS, keyCountPadded, packKeys, packedBias, packedKeys, packedValues } from '../core/flash-layout';
import { packQueryStrided } from '../core/gather';
import { gemmPanels } from '../core/gemm';
import { at, scaleRow } from '../core/memory';
import { expNonPositive } from '../core/simd';
import { BLOCK_HIDDEN, BLOCK_SEEN, applyTerms, tanh4, termsCap, termsCover } from '../core/terms';
import { attentionRows } from '../variants/full';
import { applyPatternCover, patternCover } from './patterns';

/** Rows whose probabilities and score gradients are gathered for one set of products. */
const ROW_BLOCK: i32 = 64;
const BLOCK_FLOATS: i32 = KEY_BLOCK * ROW_BLOCK;
const TILE_FLOATS: i32 = KEY_BLOCK * ROWS;

/** Zeroes `floats` floats (a gradient before its sums). */
export function fullGradZero(x: usize, floats: i32): void {
  memory.fill(x, 0, <usize>floats << 2);
}

/** x *= s over `floats` floats (dq and dk take the scale once, after their sums). */
export function fullGradScale(x: usize, floats: i32, s: f32): void {
  scaleRow(x, x, s, floats);
}

/** A head of v (N rows of Dv) packed as keys kp[j/4][Dv][4], for dP = g V^T by the engine's score loop. */
export function fullGradPackValueKeys(v: usize, N: i32, Dv: i32, vKeys: usize): void {
  packKeys(v, N, Dv, Dv, vKeys);
}

/**
 * Stage 1 for rows [rowStart, rowEnd) of one head: the forward (into out,
 * rows of Dv) with each row's log-sum-exp (+inf for a row that sees no key,
 * so that its probabilities recompute as 0), then delta_i = g_i . out_i.
 * With the output given (the caller's forward: out points at it) only the
 * log-sum-exp is computed (the engine with no value columns: no P V).
 * The band: the row at position p sees keys p - lo .. p + hi (-1: no bound
 * on that side), so causal is hi = 0 and `local` its window.
 */
export function fullGradRowStats(
  q: usize, g: usize, out: usize, outputGiven: bool, Nq: i32, Nk: i32, D: i32, Dv: i32, scale: f32, lo: i32, hi: i32, terms: usize,
  pack: usize, tiles: usize, rowStart: i32, rowEnd: i32, lse: usize, delta: usize,
): void {
  // the engine's causal prefix and window, moved up by hi: keys p - lo .. p + hi
  const shift = max(hi, 0);
  attentionRows(
    q, out, Nk, D, outputGiven ? 0 : Dv, D, Dv, scale, hi >= 0, terms, packedKeys(pack), packedValues(pack, Nk, D), 0,
    load<i32>(pack) != 0 ? packedBias(pack, Nk, D, Dv) : 0, tiles, rowStart, rowEnd, Nk - Nq + shift, 1, lo >= 0 ? lo + shift : -1, lse,
  );
  for (let i = rowStart; i < rowEnd; i++) store<f32>(at(delta, i), dot(at(g, i * Dv), at(out, i * Dv), Dv));
}

/** Packs every 8-row tile of a head (N rows of D, times scale) as the engine's query tiles qt[d][8], one after the other. */
export function fullGradPackRows(x: usize, N: i32, D: i32, scale: f32, tiles: usize): void {
  for (let i0 = 0; i0 < N; i0 += ROWS) packQueryStrided(x, i0, 1, min(ROWS, N - i0), D, D, scale, at(tiles, i0 * D));
}

/** Bytes of the per-thread working buffers of stages 2 and 3. */
export function fullGradWorkBytes(): i32 {
  return (4 * TILE_FLOATS + 2 * BLOCK_FLOATS) << 2;
}

// work: st[64][8] | dp[64][8] | capSlope[64][8] | seen[64][8] | P and ds panels [16][64 rows][4]

/**
 * The tile of rows ti .. ti + 8 against the key block at j0 (keys: its key
 * count rounded to 4): st <- P, dp <- dl = P (dP - delta), capSlope <-
 * cap'(s) when the head is capped; pattern: a pattern record
 * (grad/patterns.ts) or 0. False when the tile sees no key of the block (st
 * and dp are then not written).
 */
function tileGradients(
  qTiles: usize, gTiles: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, lo: i32, hi: i32, terms: usize, pattern: usize,
  pack: usize, vKeys: usize, lse: usize, delta: usize, work: usize, ti: i32, j0: i32, keys: i32,
): bool {
  const p0 = Nk - Nq + ti; // row i sits at position Nk - Nq + i
  const rows = min(ROWS, Nq - ti);
  if (hi >= 0 && p0 + rows - 1 + hi < j0) return false;
  if (lo >= 0 && p0 - lo > j0 + keys - 1) return false;
  const cover = terms != 0 ? termsCover(terms, keys, ti, 1, Nq, j0, 1, 0, Nk) : BLOCK_SEEN;
  if (cover == BLOCK_HIDDEN) return false;
  const seen = at(work, 3 * TILE_FLOATS);
  if (pattern != 0 && !patternCover(pattern, Nk, ti, rows, p0, j0, keys, seen)) return false;
  const st = work;
  const dp = at(work, TILE_FLOATS);
  const capSlope = at(work, 2 * TILE_FLOATS);
  scoreBlock(packedKeys(pack), j0 >> 2, keys >> 2, at(qTiles, ti * D), D, st);
  const cap = terms != 0 ? termsCap(terms) : 0;
  if (cap > 0) {
    // d/ds c tanh(s / c) = 1 - tanh^2(s / c)
    const inv = f32x4.splat(1 / cap);
    const one = f32x4.splat(1);
    for (let t = 0; t < keys * ROWS; t += 4) {
      const th = tanh4(f32x4.mul(v128.load(at(st, t)), inv));
      v128.store(at(capSlope, t), f32x4.sub(one, f32x4.mul(th, th)));
    }
  }
  if (terms != 0) applyTerms(terms, st, keys, ti, 1, Nq, j0, 1, 0, Nk, cover);
  if (load<i32>(pack) != 0) addKeyBias(st, keys, at(packedBias(pack, Nk, D, Dv), j0));
  if (hi >= 0 && j0 + keys - 1 > p0 + hi) maskCausal(st, keys, j0, p0 + hi);
  if (lo >= 0 && j0 < p0 + rows - 1 - lo) maskWindowStart(st, keys, j0, p0 - lo);
  if (pattern != 0) applyPatternCover(st, keys, seen);
  scoreBlock(vKeys, j0 >> 2, keys >> 2, at(gTiles, ti * Dv), Dv, dp);
  // rows past Nq: lse +inf and delta 0 make their probabilities and gradients 0
  const lse0 = rowLanes(lse, ti, rows, Infinity);
  const lse1 = rowLanes(lse, ti + 4, rows - 4, Infinity);
  const delta0 = rowLanes(delta, ti, rows, 0);
  const delta1 = rowLanes(delta, ti + 4, rows - 4, 0);
  for (let t = 0; t < keys; t++) {
    const row = at(st, t * ROWS);
    const drow = at(dp, t * ROWS);
    const p0 = expNonPositive(f32x4.sub(v128.load(row), lse0));
    const p1 = expNonPositive(f32x4.sub(v128.load(row, 16), lse1));
    v128.store(row, p0);
    v128.store(row, p1, 16);
    v128.store(drow, f32x4.mul(p0, f32x4.sub(v128.load(drow), delta0)));
    v128.store(drow, f32x4.mul(p1, f32x4.sub(v128.load(drow, 16), delta1)), 16);
  }
  return true;
}

/** Four rows' values x[i0 ..] as lanes, `fill` in the lanes of rows past the count. */
// @ts-ignore: decorator
@inline function rowLanes(x: usize, i0: i32, count: i32, fill: f32): v128 {
  if (count >= 4) return v128.load(at(x, i0));
  let lanes = f32x4.splat(fill);
  if (count > 0) lanes = f32x4.replace_lane(lanes, 0, load<f32>(at(x, i0)));
  if (count > 1) lanes = f32x4.replace_lane(lanes, 1, load<f32>(at(x, i0 + 1)));
  if (count > 2) lanes = f32x4.replace_lane(lanes, 2, load<f32>(at(x, i0 + 2)));
  return lanes;
}

/**
 * Stage 2 for one head, the key blocks at j0 .. j1 (band lo, hi as in stage
 * 1) and rows [rowStart, rowEnd): dv, dk rows j0 .. j1 (the kv head's,
 * [Nk][Dv] and [Nk][D]) and dq ([Nq][D]) gain the blocks' terms; dk and dq
 * are scaled once, after their last terms. Each 64-row block meets every
 * key block of the range in turn, so the rows are read once per range and
 * the range's dk and dv stay in cache. q, g, k: the head's rows ('bhnd');
 * qTiles, gTiles: fullGradPackRows of q (times scale) and g; pack: packHead
 * of k, v; vKeys: v packed as keys.
 */
export function fullGradKeyBlocks(
  q: usize, g: usize, k: usize, qTiles: usize, gTiles: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, lo: i32, hi: i32, terms: usize, pattern: usize,
  pack: usize, vKeys: usize, lse: usize, delta: usize, work: usize, dq: usize, dk: usize, dv: usize, j0: i32, j1: i32, rowStart: i32, rowEnd: i32,
): void {
  const first = Nk - Nq;
  for (let i0 = rowStart; i0 < rowEnd; i0 += ROW_BLOCK) {
    for (let jb = j0; jb < j1; jb += KEY_BLOCK) {
      // only the rows whose band meets the block's keys
      const keys = min(KEY_BLOCK, keyCountPadded(Nk) - jb);
      const from = hi >= 0 ? max(i0, (jb - hi - first) & ~(ROWS - 1)) : i0;
      const to = min(min(i0 + ROW_BLOCK, rowEnd), lo >= 0 ? jb + keys + lo - first : rowEnd);
      if (from < to) rowBlock(q, g, k, qTiles, gTiles, Nq, Nk, D, Dv, lo, hi, terms, pattern, pack, vKeys, lse, delta, work, dq, dk, dv, jb, from, to - from);
    }
  }
}

/** fullGradKeyBlocks for rows i0 .. i0 + count (at most a row block, i0 a multiple of 8) and the key block at j0. */
function rowBlock(
  q: usize, g: usize, k: usize, qTiles: usize, gTiles: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, lo: i32, hi: i32, terms: usize, pattern: usize,
  pack: usize, vKeys: usize, lse: usize, delta: usize, work: usize, dq: usize, dk: usize, dv: usize, j0: i32, i0: i32, count: i32,
): void {
  const keys = min(KEY_BLOCK, keyCountPadded(Nk) - j0);
  const real = min(KEY_BLOCK, Nk - j0);
  const p = at(work, 4 * TILE_FLOATS);
  const ds = at(p, BLOCK_FLOATS);
  const dl = at(work, TILE_FLOATS);
  const capSlope = at(work, 2 * TILE_FLOATS);
  const capped = terms != 0 && termsCap(terms) > 0;
  const kj = at(k, j0 * D);
  let seen = false;
  for (let r = 0; r < count; r += ROWS) {
    const ti = i0 + r;
    const seesBlock = tileGradients(qTiles, gTiles, Nq, Nk, D, Dv, lo, hi, terms, pattern, pack, vKeys, lse, delta, work, ti, j0, keys);
    if (seesBlock) {
      seen = true;
      if (capped) {
        for (let t = 0; t < keys * ROWS; t += 4) v128.store(at(dl, t), f32x4.mul(v128.load(at(dl, t)), v128.load(at(capSlope, t))));
      }
      // dq of the tile's rows: ds (as the engine's [key][8 rows], two panels of 4 rows) times the block's keys
      gemmPanels(min(ROWS, Nq - ti), D, real, dl, 16, 32, kj, D, at(dq, ti * D), D);
    }
    // P and ds as panels [key / 4][row][4] for the products over the block's rows
    for (let t = 0; t < keys; t += 4) {
      const pp = at(p, (t >> 2) * PANEL_FLOATS + r * 4);
      const dp = at(ds, (t >> 2) * PANEL_FLOATS + r * 4);
      if (seesBlock) {
        panelRows(at(work, t * ROWS), pp);
        panelRows(at(dl, t * ROWS), dp);
      } else {
        for (let x: usize = 0; x < 128; x += 16) {
          v128.store(pp + x, f32x4.splat(0));
          v128.store(dp + x, f32x4.splat(0));
        }
      }
    }
  }
  if (!seen) return;
  gemmPanels(real, Dv, count, p, PANEL_FLOATS << 2, 16, at(g, i0 * Dv), Dv, at(dv, j0 * Dv), Dv);
  gemmPanels(real, D, count, ds, PANEL_FLOATS << 2, 16, at(q, i0 * D), D, at(dk, j0 * D), D);
}

/** Floats of one panel of 4 keys over a row block. */
const PANEL_FLOATS: i32 = 4 * ROW_BLOCK;

/** 4 keys x 8 rows of an engine block (st[key][8]) as 8 rows of 4 keys, 16 bytes apart from dst. */
// @ts-ignore: decorator
@inline function panelRows(st: usize, dst: usize): void {
  for (let half: usize = 0; half < 32; half += 16) {
    const a = v128.load(st + half);
    const b = v128.load(st + 32 + half);
    const c = v128.load(st + 64 + half);
    const d = v128.load(st + 96 + half);
    const ab01 = f32x4.shuffle(a, b, 0, 4, 1, 5);
    const cd01 = f32x4.shuffle(c, d, 0, 4, 1, 5);
    const ab23 = f32x4.shuffle(a, b, 2, 6, 3, 7);
    const cd23 = f32x4.shuffle(c, d, 2, 6, 3, 7);
    const out = dst + (half << 2);
    v128.store(out, f32x4.shuffle(ab01, cd01, 0, 1, 4, 5));
    v128.store(out, f32x4.shuffle(ab01, cd01, 2, 3, 6, 7), 16);
    v128.store(out, f32x4.shuffle(ab23, cd23, 0, 1, 4, 5), 32);
    v128.store(out, f32x4.shuffle(ab23, cd23, 2, 3, 6, 7), 48);
  }
}

/**
 * Stage 3 for one head and the key block at j0: the logits' gradient dl of
 * every row, added into the bias gradient at grad + i rowStride + j keyStride
 * (a stride of 0 sums a broadcast axis).
 */
export function fullGradBiasBlock(
  qTiles: usize, gTiles: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, lo: i32, hi: i32, terms: usize, pattern: usize,
  pack: usize, vKeys: usize, lse: usize, delta: usize, work: usize, grad: usize, rowStride: i32, keyStride: i32, j0: i32,
): void {
  const keys = min(KEY_BLOCK, keyCountPadded(Nk) - j0);
  const real = min(KEY_BLOCK, Nk - j0);
  const dl = at(work, TILE_FLOATS);
  for (let ti = 0; ti < Nq; ti += ROWS) {
    if (!tileGradients(qTiles, gTiles, Nq, Nk, D, Dv, lo, hi, terms, pattern, pack, vKeys, lse, delta, work, ti, j0, keys)) continue;
    const rows = min(ROWS, Nq - ti);
    for (let r = 0; r < rows; r++) {
      const row = at(grad, (ti + r) * rowStride);
      for (let t = 0; t < real; t++) {
        const cell = at(row, (j0 + t) * keyStride);
        store<f32>(cell, load<f32>(cell) + load<f32>(at(dl, t * ROWS + r)));
      }
    }
  }
}
