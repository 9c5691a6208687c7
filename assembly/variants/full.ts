// `full`: exact softmax attention over all keys that causal and key padding
// leave visible, by the tiled online-softmax engine (no Nq x Nk buffer).
// Mirrors src/variants/full.ts. attentionRows is the one loop; the key/value
// cache (kvcache.ts) runs it over its own packed buffers.
import { accumulateRows, addKeyBias, finishRows, maskBelow, maskPrefix, rowLogSumExp, scoreBlock, scoreBlock4, softmaxBlock, softmaxBlock4, startRows } from '../core/flash';
import {
  KEY_BLOCK, ROWS, STRIP_BYTES, TILE_GROUP, cacheBlockValues, packQueryTile, packedBias, packedKeys, packedValues, tileBytes, tileOutput, tileScores, tileState, valueWidthPadded,
} from '../core/flash-layout';
import { roundUp } from '../core/simd';
import { BLOCK_HIDDEN, applyTerms, termsCover, tileCover } from '../core/terms';

/**
 * Rows [rowStart, rowEnd) of one head: out = softmax(scale q k^T + mask) v,
 * with k and v packed by packHead. q: Nq rows of D (qLd floats apart), out:
 * Nq rows of Dv (oLd apart); causal is bottom-right aligned (key j visible to
 * row i iff j <= i + Nk - Nq); terms: the head's mask, bias and cap
 * (writeTerms), or 0. Row ranges let the caller split a head across calls
 * and threads. tiles: TILE_GROUP query tiles' working buffers (groupBytes).
 */
export function fullAttentionRows(
  q: usize, out: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, qLd: i32, oLd: i32,
  scale: f32, causal: bool, terms: usize, pack: usize, tiles: usize, rowStart: i32, rowEnd: i32,
): void {
  attentionRows(
    q, out, Nk, D, Dv, qLd, oLd, scale, causal, terms,
    packedKeys(pack), packedValues(pack, Nk, D), 0, load<i32>(pack) != 0 ? packedBias(pack, Nk, D, Dv) : 0,
    tiles, rowStart, rowEnd, Nk - Nq, 1, -1, 0,
  );
}

/**
 * The engine loop over Nk keys and values (a buffer may hold more: only tiles
 * below roundUp(Nk, 4) are read): packed keys kp[j/4][D][4] and value rows
 * vp[j][dvPad] when blockBytes is 0; else the cache layout (flash-layout.ts) from
 * kp, blocks of KEY_BLOCK positions blockBytes apart (vp unused). When
 * keyBias != 0, a per-key bias (0 or -inf) is added to every score (it hides
 * padding and the zero keys that fill the last tile).
 *
 * Row i of q sits at position first + i step (step 1: consecutive queries of
 * one head, first = Nk - Nq; step 0: rows that share one position, such as
 * the query heads of a grouped-query kv head at one decoding step). Causal:
 * row at position p sees keys j <= p; before >= 0: it sees keys
 * j >= p - before only (a sliding window), and blocks wholly below every
 * row's window are never read. lse != 0: each row's log-sum-exp of its
 * logits goes to lse[i] as well (the backward pass's statistics).
 */
export function attentionRows(
  q: usize, out: usize, Nk: i32, D: i32, Dv: i32, qLd: i32, oLd: i32,
  scale: f32, causal: bool, terms: usize, kp: usize, vp: usize, blockBytes: usize, keyBias: usize,
  tiles: usize, rowStart: i32, rowEnd: i32, first: i32, step: i32, before: i32, lse: usize,
): void {
  const dvPad = valueWidthPadded(Dv);
  const stride = <usize>tileBytes(D, Dv);
  const windowed = before >= 0;
  const blocked = blockBytes != 0;
  const lanes = v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0);
  const steps0 = i32x4.mul(lanes, i32x4.splat(step));
  const steps1 = i32x4.add(steps0, i32x4.splat(4 * step));
  for (let g0 = rowStart; g0 < rowEnd; g0 += ROWS * TILE_GROUP) {
    const count = min(TILE_GROUP, (rowEnd - g0 + ROWS - 1) / ROWS);
    for (let t = 0; t < count; t++) {
      const tile = tiles + <usize>t * stride;
      packQueryTile(q, g0 + t * ROWS, rowEnd, D, qLd, scale, tile);
      startRows(tileState(tile, D), tileOutput(tile, D), dvPad);
    }
    // causal: no row of the group sees past its last row's position; a
    // window: none sees below its first row's lower bound
    const lastRow = min(rowEnd, g0 + count * ROWS) - 1;
    const keyEnd = causal ? min(Nk, max(0, first + lastRow * step + 1)) : Nk;
    const keyEndPad = roundUp(keyEnd, 4);
    // (the cache layout's blocks start at multiples of KEY_BLOCK)
    const keyStart = windowed ? max(0, first + g0 * step - before) & (blocked ? ~(KEY_BLOCK - 1) : ~3) : 0;
    // key blocks outside, tiles inside: each block of keys and values is read
    // from memory once per group and reused from cache by its tiles
    for (let j0 = keyStart; j0 < keyEndPad; j0 += KEY_BLOCK) {
      const keys = min(KEY_BLOCK, keyEndPad - j0);
      // the block's key tiles and values, in either layout
      const keysAt = blocked ? kp + <usize>(j0 >> 6) * blockBytes : kp + (<usize>(j0 * D) << 2);
      const valuesAt = blocked ? cacheBlockValues(keysAt, D) : vp + (<usize>(j0 * dvPad) << 2);
      // what a narrow tile reads ahead while it scores and while it adds values: the bytes it
      // needs next (cache layout: the next block's keys, then its values; packed: this
      // block's values, then the next block's keys); 0 where there is none
      const nextKeys = max(0, min(KEY_BLOCK, keyEndPad - j0 - KEY_BLOCK));
      const nextAt = nextKeys > 0 ? keysAt + (blocked ? blockBytes : <usize>(keys * D) << 2) : 0;
      const scoreAhead = blocked ? nextAt : valuesAt;
      const scoreAheadBytes = <usize>(blocked ? nextKeys * D : keys * dvPad) << 2;
      const addAhead = blocked && nextAt != 0 ? cacheBlockValues(nextAt, D) : nextAt;
      const addAheadBytes = <usize>(nextKeys * (blocked ? dvPad : D)) << 2;
      for (let t = 0; t < count; t++) {
        const i0 = g0 + t * ROWS;
        const p0 = first + i0 * step; // position of the tile's first row
        const pLast = first + min(i0 + ROWS, rowEnd) * step - step; // and of its last
        if (causal && j0 > pLast) continue; // the tile sees no key of the block
        if (windowed && j0 + keys <= p0 - before) continue;
        // tiles of 8 consecutive rows and blocks from key 0 may share their covers across heads
        const cover = terms == 0 ? 0 : step == 1 && !windowed ? tileCover(terms, keys, i0, rowEnd, j0, Nk) : termsCover(terms, keys, i0, 1, rowEnd, j0, 1, 0, Nk);
        if (terms != 0 && cover == BLOCK_HIDDEN) continue;
        const tile = tiles + <usize>t * stride;
        const st = tileScores(tile, D);
        const state = tileState(tile, D);
        // a tile of at most 4 rows (a decoding step's query heads) takes the narrow path, reading ahead
        const narrow = rowEnd - i0 <= 4;
        if (narrow) scoreBlock4(keysAt, 0, keys >> 2, tile, D, st, scoreAhead, scoreAheadBytes);
        else scoreBlock(keysAt, 0, keys >> 2, tile, D, st);
        if (terms != 0) applyTerms(terms, st, keys, i0, 1, rowEnd, j0, 1, 0, Nk, cover);
        if (keyBias != 0) addKeyBias(st, keys, keyBias + (<usize>j0 << 2));
        if (causal && j0 + keys - 1 > p0) {
          // row r sees the prefix of keys 0 ..= p0 + r step
          const lim0 = i32x4.add(i32x4.splat(p0 + 1), steps0);
          maskPrefix(st, keys, j0, lim0, i32x4.add(i32x4.splat(p0 + 1), steps1));
        }
        if (windowed && j0 < pLast - before) maskBelow(st, keys, j0, i32x4.add(i32x4.splat(p0 - before), steps0), i32x4.add(i32x4.splat(p0 - before), steps1));
        if (narrow) softmaxBlock4(st, keys, state);
        else softmaxBlock(st, keys, state);
        accumulateRows(st, keys, valuesAt, blocked ? STRIP_BYTES : 32, blocked ? 32 : <usize>dvPad << 2, dvPad, tileOutput(tile, D), state, narrow, addAhead, addAheadBytes);
      }
    }
    for (let t = 0; t < count; t++) {
      const tile = tiles + <usize>t * stride;
      finishRows(tileOutput(tile, D), tileState(tile, D), dvPad, out, g0 + t * ROWS, rowEnd, Dv, oLd);
      if (lse != 0) rowLogSumExp(tileState(tile, D), g0 + t * ROWS, rowEnd, lse);
    }
  }
}

