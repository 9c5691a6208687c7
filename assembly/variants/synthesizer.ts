// `synthesizer`: out = softmax(B) v with the logits B given (random), a low-rank
// product a b^T (factorized) or computed from each token alone (dense). The
// rows walk the flash engine (online softmax over blocks of 64 keys, P V by
// accumulateValues), so neither the Nq x Nk logits nor the probabilities are
// ever held: a block of logits is made for a tile of 8 rows, softmaxed into
// the running state and multiplied with its 64 value rows.
//   random:     the block is copied (transposed) from the logits
//   factorized: B = a b^T: b is packed as the engine's key tiles (transposed),
//               a's rows as query tiles, and scoreBlock is the GEMM
//   dense:      h_i = relu(x_i w1 + b1) for all rows first (core GEMM, [Nq][Dh]),
//               then B = h w2 + b2 as for factorized, with w2's first Nk
//               columns packed as key tiles and b2 added as the key bias
// Mirrors src/variants/synthesizer.ts.
import { accumulateValues, addKeyBias, finishRows, maskCausal, scoreBlock, softmaxBlock, startRows } from '../core/flash';
import {
  KEY_BLOCK, ROWS, TILE_GROUP, keyCountPadded, packKeys, packQueryTile, packValues, packedBias, packedKeys, packedValues, tileBytes, tileOutput, tileScores, tileState, valueWidthPadded,
} from '../core/flash-layout';
import { gemm } from '../core/gemm';
import { roundUp } from '../core/simd';

/** The logits are given: logits [Nq][Nk] per head. */
const SYNTH_RANDOM: i32 = 0;
/** B = a b^T: a [Nq][R] per head, b [Nk][R] per head. */
const SYNTH_FACTORIZED: i32 = 1;
/** B = h w2 + b2 with h = relu(x w1 + b1) [Nq][Dh] and w2 [Dh][Nmax] per head. */
const SYNTH_DENSE: i32 = 2;

const NEG_INF: f32 = -Infinity;

/**
 * Packs one head for synthesizerRows in the flash pack layout (packBytes(Nk, Dk, Dv)):
 * - keys: factorized b ([Nk][Dk], row stride ldKeys = Dk) or dense w2 ([Dk][ldKeys],
 *   ldKeys = Nmax: key j is column j) as key tiles; nothing for random (Dk = 0);
 * - values: v ([Nk][Dv]);
 * - key bias: keyBias[j] (dense b2, or 0 for none) for real keys, -inf for padded
 *   ones and for the tail of the last tile.
 * keyPadding: this batch's u8 [Nk] row (1 = real), or 0.
 */
export function synthesizerPackHead(
  form: i32, keys: usize, ldKeys: i32, keyBias: usize, v: usize, Nk: i32, Dk: i32, Dv: i32, keyPadding: usize, pack: usize,
): void {
  const nPad = keyCountPadded(Nk);
  const kp = packedKeys(pack);
  if (form == SYNTH_FACTORIZED) packKeys(keys, Nk, Dk, Dk, kp);
  else if (form == SYNTH_DENSE) {
    // tile t, feature u: w2[u][4t .. 4t+4), four adjacent floats of one row
    for (let t = 0; t < nPad >> 2; t++) {
      const j = t << 2;
      for (let u = 0; u < Dk; u++) {
        const dst = kp + (<usize>(t * Dk + u) << 4);
        const src = keys + (<usize>(u * ldKeys + j) << 2);
        if (j + 4 <= Nk) v128.store(dst, v128.load(src));
        else for (let r = 0; r < 4; r++) store<f32>(dst + (<usize>r << 2), j + r < Nk ? load<f32>(src + (<usize>r << 2)) : 0);
      }
    }
  }
  packValues(v, Nk, Dv, Dv, packedValues(pack, Nk, Dk));
  const bias = packedBias(pack, Nk, Dk, Dv);
  let any = keyBias != 0;
  for (let j = 0; j < nPad; j++) {
    const real = j < Nk && (keyPadding == 0 || load<u8>(keyPadding + j) != 0);
    if (!real) any = true;
    store<f32>(bias + (<usize>j << 2), real ? (keyBias != 0 ? load<f32>(keyBias + (<usize>j << 2)) : 0) : NEG_INF);
  }
  store<i32>(pack, any ? 1 : 0);
}

/**
 * Dense Synthesizer's hidden layer, rows [rowStart, rowEnd) of one head:
 * hidden[i] = relu(x[i] w1 + b1). x [Nq][Dm] (this batch), w1 [Dm][Dh], b1 [Dh],
 * hidden [Nq][Dh].
 */
export function synthesizerHidden(x: usize, w1: usize, b1: usize, Dm: i32, Dh: i32, hidden: usize, rowStart: i32, rowEnd: i32): void {
  const rows = rowEnd - rowStart;
  if (rows <= 0) return;
  const rowBytes = <usize>Dh << 2;
  const c = hidden + <usize>rowStart * rowBytes;
  for (let r = 0; r < rows; r++) memory.copy(c + <usize>r * rowBytes, b1, rowBytes);
  gemm(rows, Dh, Dm, x + (<usize>(rowStart * Dm) << 2), Dm, 1, w1, Dh, c, Dh, true);
  const zero = f32x4.splat(0);
  const n = rows * Dh;
  let d = 0;
  for (; d + 4 <= n; d += 4) {
    const at = c + (<usize>d << 2);
    v128.store(at, f32x4.max(v128.load(at), zero));
  }
  for (; d < n; d++) {
    const at = c + (<usize>d << 2);
    store<f32>(at, max(load<f32>(at), 0));
  }
}

/** Lanes c of four rows a0..a3 (each four keys of one row) as four vectors of rows: out[c] = (a0[c], a1[c], a2[c], a3[c]), stored at st + c * 32. */
// @ts-ignore: decorator
@inline function transpose4(a0: v128, a1: v128, a2: v128, a3: v128, st: usize): void {
  const t0 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5);
  const t1 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5);
  const t2 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7);
  const t3 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7);
  v128.store(st, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
  v128.store(st, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7), 32);
  v128.store(st, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), 64);
  v128.store(st, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7), 96);
}

/**
 * Random form: st[t][r] = logits[i0 + r][j0 + t] for t < keys (0 past Nk, where
 * the key bias is -inf; 0 for rows past rowEnd, which are never written out).
 * Whole tiles of 8 rows move 4 keys at a time through 4 x 4 transposes.
 */
function copyLogits(logits: usize, Nk: i32, i0: i32, rowEnd: i32, j0: i32, keys: i32, st: usize): void {
  const real = max(0, min(keys, Nk - j0));
  let t = 0;
  if (i0 + ROWS <= rowEnd) {
    const rowBytes = <usize>Nk << 2;
    const src = logits + (<usize>(i0 * Nk + j0) << 2);
    for (; t + 4 <= real; t += 4) {
      const at = src + (<usize>t << 2);
      const dst = st + (<usize>t << 5);
      transpose4(v128.load(at), v128.load(at + rowBytes), v128.load(at + 2 * rowBytes), v128.load(at + 3 * rowBytes), dst);
      const at4 = at + 4 * rowBytes;
      transpose4(v128.load(at4), v128.load(at4 + rowBytes), v128.load(at4 + 2 * rowBytes), v128.load(at4 + 3 * rowBytes), dst + 16);
    }
  }
  for (let r = 0; r < ROWS; r++) {
    const i = i0 + r;
    const dst = st + (<usize>r << 2);
    if (i < rowEnd) {
      const src = logits + (<usize>(i * Nk + j0) << 2);
      for (let u = t; u < real; u++) store<f32>(dst + (<usize>u << 5), load<f32>(src + (<usize>u << 2)));
      for (let u = max(t, real); u < keys; u++) store<f32>(dst + (<usize>u << 5), 0);
    } else {
      for (let u = t; u < keys; u++) store<f32>(dst + (<usize>u << 5), 0);
    }
  }
}

/**
 * Rows [rowStart, rowEnd) of one head: out = softmax(B + mask) v, with the
 * head packed by synthesizerPackHead. src: random: logits [Nq][Nk];
 * factorized: a [Nq][Dk]; dense: hidden [Nq][Dk]. out [Nq][Dv]. causal is
 * bottom-right aligned (key j visible to row i iff j <= i + Nk - Nq).
 * tiles: TILE_GROUP query tiles' working buffers (groupBytes(Dk, Dv)).
 */
export function synthesizerRows(
  form: i32, src: usize, out: usize, Nq: i32, Nk: i32, Dk: i32, Dv: i32,
  causal: bool, pack: usize, tiles: usize, rowStart: i32, rowEnd: i32,
): void {
  const dvPad = valueWidthPadded(Dv);
  const kp = packedKeys(pack);
  const vp = packedValues(pack, Nk, Dk);
  const bias = packedBias(pack, Nk, Dk, Dv);
  const hidden = load<i32>(pack) != 0;
  const random = form == SYNTH_RANDOM;
  const stride = <usize>tileBytes(Dk, Dv);
  const shift = Nk - Nq;
  for (let g0 = rowStart; g0 < rowEnd; g0 += ROWS * TILE_GROUP) {
    const count = min(TILE_GROUP, (rowEnd - g0 + ROWS - 1) / ROWS);
    for (let t = 0; t < count; t++) {
      const tile = tiles + <usize>t * stride;
      // a's (or h's) rows transposed, as the engine's query tile
      if (!random) packQueryTile(src, g0 + t * ROWS, rowEnd, Dk, Dk, 1, tile);
      startRows(tileState(tile, Dk), tileOutput(tile, Dk), dvPad);
    }
    const keyEnd = causal ? min(Nk, max(0, g0 + count * ROWS + shift)) : Nk;
    const keyEndPad = roundUp(keyEnd, 4);
    for (let j0 = 0; j0 < keyEndPad; j0 += KEY_BLOCK) {
      const keys = min(KEY_BLOCK, keyEndPad - j0);
      for (let t = 0; t < count; t++) {
        const i0 = g0 + t * ROWS;
        const p0 = i0 + shift;
        if (causal && j0 > p0 + ROWS - 1) continue;
        const tile = tiles + <usize>t * stride;
        const st = tileScores(tile, Dk);
        const state = tileState(tile, Dk);
        if (random) copyLogits(src, Nk, i0, rowEnd, j0, keys, st);
        else scoreBlock(kp, j0 >> 2, keys >> 2, tile, Dk, st);
        if (hidden) addKeyBias(st, keys, bias + (<usize>j0 << 2));
        if (causal && j0 + keys - 1 > p0) maskCausal(st, keys, j0, p0);
        softmaxBlock(st, keys, state);
        accumulateValues(st, keys, vp + (<usize>(j0 * dvPad) << 2), dvPad, tileOutput(tile, Dk), state);
      }
    }
    for (let t = 0; t < count; t++) {
      const tile = tiles + <usize>t * stride;
      finishRows(tileOutput(tile, Dk), tileState(tile, Dk), dvPad, out, g0 + t * ROWS, rowEnd, Dv, Dv);
    }
  }
}
