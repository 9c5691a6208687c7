// `full`: exact softmax attention over all keys that causal and key padding
// leave visible, by the tiled online-softmax engine (no Nq x Nk buffer).
// Mirrors src/variants/full.ts.
import {
  KEY_BLOCK, ROWS, TILE_GROUP, tileBytes, accumulateValues, addKeyBias, finishRows, maskCausal, packQueryTile, packedBias, packedKeys,
  packedValues, scoreBlock, softmaxBlock, startRows, tileOutput, tileScores, tileState, valueWidthPadded,
} from '../core/flash';
import { roundUp } from '../core/simd';
import { BLOCK_HIDDEN, applyTerms, termsCover } from '../core/terms';

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
  const dvPad = valueWidthPadded(Dv);
  const kp = packedKeys(pack);
  const vp = packedValues(pack, Nk, D);
  const bias = packedBias(pack, Nk, D, Dv);
  const hidden = load<i32>(pack) != 0;
  const stride = <usize>tileBytes(D, Dv);
  const shift = Nk - Nq;
  for (let g0 = rowStart; g0 < rowEnd; g0 += ROWS * TILE_GROUP) {
    const count = min(TILE_GROUP, (rowEnd - g0 + ROWS - 1) / ROWS);
    for (let t = 0; t < count; t++) {
      const tile = tiles + <usize>t * stride;
      packQueryTile(q, g0 + t * ROWS, rowEnd, D, qLd, scale, tile);
      startRows(tileState(tile, D), tileOutput(tile, D), dvPad);
    }
    // causal: no row of the group sees past its last row's position
    const keyEnd = causal ? min(Nk, max(0, g0 + count * ROWS + shift)) : Nk;
    const keyEndPad = roundUp(keyEnd, 4);
    // key blocks outside, tiles inside: each block of keys and values is read
    // from memory once per group and reused from cache by its tiles
    for (let j0 = 0; j0 < keyEndPad; j0 += KEY_BLOCK) {
      const keys = min(KEY_BLOCK, keyEndPad - j0);
      for (let t = 0; t < count; t++) {
        const i0 = g0 + t * ROWS;
        const p0 = i0 + shift; // position of the tile's first row
        if (causal && j0 > p0 + ROWS - 1) continue; // the tile sees no key of the block
        const cover = terms != 0 ? termsCover(terms, keys, i0, 1, rowEnd, j0, 1, 0, Nk) : 0;
        if (terms != 0 && cover == BLOCK_HIDDEN) continue;
        const tile = tiles + <usize>t * stride;
        const st = tileScores(tile, D);
        const state = tileState(tile, D);
        scoreBlock(kp, j0 >> 2, keys >> 2, tile, D, st);
        if (terms != 0) applyTerms(terms, st, keys, i0, 1, rowEnd, j0, 1, 0, Nk, cover);
        if (hidden) addKeyBias(st, keys, bias + (<usize>j0 << 2));
        if (causal && j0 + keys - 1 > p0) maskCausal(st, keys, j0, p0);
        softmaxBlock(st, keys, state);
        accumulateValues(st, keys, vp + (<usize>(j0 * dvPad) << 2), dvPad, tileOutput(tile, D), state);
      }
    }
    for (let t = 0; t < count; t++) {
      const tile = tiles + <usize>t * stride;
      finishRows(tileOutput(tile, D), tileState(tile, D), dvPad, out, g0 + t * ROWS, rowEnd, Dv, oLd);
    }
  }
}
