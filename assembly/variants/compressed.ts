// `compressed`: memory-compressed attention. Every s keys (and values) are
// pooled into one slot row, by a mean of the real rows or by a strided Conv1d
// computed as s GEMMs (one per tap), an optional null slot goes first, and
// the queries attend the slots with the flash engine; causal hides the slots
// that are not complete yet with a per-row count of visible slots.
// Mirrors src/variants/compressed.ts.
//
// Slot rows: slots[first + m][Dx], first = 1 with the null slot (row 0), else 0.
import { accumulateValues, addKeyBias, finishRows, maskPrefix, scoreBlock, softmaxBlock, startRows } from '../core/flash';
import {
  KEY_BLOCK, ROWS, TILE_GROUP, packQueryTile, packedBias, packedKeys, packedValues, tileBytes, tileOutput, tileScores, tileState, valueWidthPadded,
} from '../core/flash-layout';
import { gemm } from '../core/gemm';
import { scaleRow } from '../core/memory';
import { roundUp } from '../core/simd';
import { linformerZeroPadded } from './linformer';


/** Number of slots N positions are cut into (the last may be shorter). */
// @ts-ignore: decorator
@inline function slotCount(N: i32, s: i32): i32 {
  return (N + s - 1) / s;
}

/** dst[0 .. n) += src[0 .. n) (floats). */
function addRow(dst: usize, src: usize, n: i32): void {
  let d = 0;
  for (; d + 4 <= n; d += 4) {
    const at = <usize>d << 2;
    v128.store(dst + at, f32x4.add(v128.load(dst + at), v128.load(src + at)));
  }
  for (; d < n; d++) {
    const at = <usize>d << 2;
    store<f32>(dst + at, load<f32>(dst + at) + load<f32>(src + at));
  }
}

/**
 * The slot rows of one head of x ([N][Dx]) into `slots`:
 * - nullRow != 0: row 0 is the null slot's row ([Dx]), the pooled slots follow;
 * - wt == 0: slot m is the mean of the real rows of positions [m s, min((m+1) s, N))
 *   (zeros when it has none: such a slot is hidden);
 * - wt != 0: slot m = bias + sum_t wt[t]^T x[m s + t] (a Conv1d with kernel size and
 *   stride s; wt [s][Dx in][Dx out] per tap (laid out in TypeScript), bias [Dx] or 0), as one GEMM per
 *   tap over the rows m s + t (A read with row stride s Dx): taps past N are the
 *   zero right padding, padded rows are zeroed first (in `masked`, [N][Dx]).
 * keyPadding: this batch's u8 [N] row (1 = real), or 0.
 */
export function compressedSlots(
  x: usize, N: i32, Dx: i32, s: i32, keyPadding: usize,
  wt: usize, bias: usize, nullRow: usize, masked: usize, slots: usize,
): void {
  const rowBytes = <usize>Dx << 2;
  let first = 0;
  if (nullRow != 0) {
    memory.copy(slots, nullRow, rowBytes);
    first = 1;
  }
  const count = slotCount(N, s);
  const out = slots + <usize>first * rowBytes;
  if (wt == 0) {
    for (let m = 0; m < count; m++) {
      const dst = out + <usize>m * rowBytes;
      memory.fill(dst, 0, rowBytes);
      let real = 0;
      const end = min((m + 1) * s, N);
      for (let j = m * s; j < end; j++) {
        if (keyPadding != 0 && load<u8>(keyPadding + j) == 0) continue;
        addRow(dst, x + <usize>j * rowBytes, Dx);
        real++;
      }
      if (real > 1) scaleRow(dst, dst, <f32>1 / <f32>real, Dx);
    }
    return;
  }
  let src = x;
  if (keyPadding != 0) {
    linformerZeroPadded(x, N, Dx, keyPadding, masked);
    src = masked;
  }
  for (let m = 0; m < count; m++) {
    const dst = out + <usize>m * rowBytes;
    if (bias != 0) memory.copy(dst, bias, rowBytes);
    else memory.fill(dst, 0, rowBytes);
  }
  for (let t = 0; t < s; t++) {
    // slots whose tap t lies inside the sequence: m s + t < N
    const rows = t < N ? (N - t + s - 1) / s : 0;
    if (rows == 0) continue;
    gemm(rows, Dx, Dx, src + <usize>t * rowBytes, s * Dx, 1, wt + <usize>(t * Dx) * rowBytes, Dx, out, Dx, true);
  }
}

/**
 * Which slots are real, as a u8 key-padding row for packHead: the null slot
 * always, slot m when one of its positions is a real key. keyPadding: this
 * batch's u8 [N] row. real: u8 [first + ceil(N / s)].
 */
export function compressedSlotPadding(keyPadding: usize, N: i32, s: i32, first: i32, real: usize): void {
  const count = slotCount(N, s);
  if (first != 0) store<u8>(real, 1);
  for (let m = 0; m < count; m++) {
    let any: u8 = 0;
    const end = min((m + 1) * s, N);
    for (let j = m * s; j < end; j++) any |= load<u8>(keyPadding + j);
    store<u8>(real + first + m, any != 0 ? 1 : 0);
  }
}

/**
 * Causal: the slots query row i sees form a prefix of the slot rows; its
 * length. The query sits at position p = i + shift and sees slot m when the
 * slot is complete, min((m+1) s, Nk) - 1 <= p: every slot once p >= Nk - 1,
 * else the floor((p + 1) / s) full slots before it. The null slot (first = 1)
 * is always visible.
 */
// @ts-ignore: decorator
@inline export function visibleSlots(i: i32, shift: i32, Nk: i32, s: i32, first: i32): i32 {
  const p = i + shift;
  if (p >= Nk - 1) return first + slotCount(Nk, s);
  if (p < 0) return first;
  return first + (p + 1) / s;
}

/**
 * Rows [rowStart, rowEnd) of one head: out = softmax(scale q S_k^T + mask) S_v
 * over the S = first + ceil(Nk / s) slot rows packed by packHead (hidden slots
 * carry -inf in the key bias). q: [Nq][D], out: [Nq][Dv]. causal: row i sees
 * the prefix of visibleSlots(i) slots. The loop is the flash engine's
 * (fullAttentionRows) with the slot prefix in place of the causal one.
 * tiles: TILE_GROUP query tiles' working buffers (groupBytes).
 */
export function compressedRows(
  q: usize, out: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, s: i32, first: i32,
  scale: f32, causal: bool, pack: usize, tiles: usize, rowStart: i32, rowEnd: i32,
): void {
  const S = first + slotCount(Nk, s);
  const dvPad = valueWidthPadded(Dv);
  const kp = packedKeys(pack);
  const vp = packedValues(pack, S, D);
  const bias = packedBias(pack, S, D, Dv);
  const hidden = load<i32>(pack) != 0;
  const stride = <usize>tileBytes(D, Dv);
  const shift = Nk - Nq;
  for (let g0 = rowStart; g0 < rowEnd; g0 += ROWS * TILE_GROUP) {
    const count = min(TILE_GROUP, (rowEnd - g0 + ROWS - 1) / ROWS);
    for (let t = 0; t < count; t++) {
      const tile = tiles + <usize>t * stride;
      packQueryTile(q, g0 + t * ROWS, rowEnd, D, D, scale, tile);
      startRows(tileState(tile, D), tileOutput(tile, D), dvPad);
    }
    // causal: the group's last row sees the most slots
    const keyEnd = causal ? visibleSlots(min(rowEnd, g0 + count * ROWS) - 1, shift, Nk, s, first) : S;
    const keyEndPad = roundUp(keyEnd, 4);
    for (let j0 = 0; j0 < keyEndPad; j0 += KEY_BLOCK) {
      const keys = min(KEY_BLOCK, keyEndPad - j0);
      for (let t = 0; t < count; t++) {
        const i0 = g0 + t * ROWS;
        let lim0 = i32x4.splat(S);
        let lim1 = lim0;
        let fewest = S;
        if (causal) {
          if (j0 >= visibleSlots(i0 + ROWS - 1, shift, Nk, s, first)) continue; // no row of the tile sees the block
          fewest = visibleSlots(i0, shift, Nk, s, first);
          lim0 = i32x4.replace_lane(lim0, 0, fewest);
          lim0 = i32x4.replace_lane(lim0, 1, visibleSlots(i0 + 1, shift, Nk, s, first));
          lim0 = i32x4.replace_lane(lim0, 2, visibleSlots(i0 + 2, shift, Nk, s, first));
          lim0 = i32x4.replace_lane(lim0, 3, visibleSlots(i0 + 3, shift, Nk, s, first));
          lim1 = i32x4.replace_lane(lim1, 0, visibleSlots(i0 + 4, shift, Nk, s, first));
          lim1 = i32x4.replace_lane(lim1, 1, visibleSlots(i0 + 5, shift, Nk, s, first));
          lim1 = i32x4.replace_lane(lim1, 2, visibleSlots(i0 + 6, shift, Nk, s, first));
          lim1 = i32x4.replace_lane(lim1, 3, visibleSlots(i0 + 7, shift, Nk, s, first));
        }
        const tile = tiles + <usize>t * stride;
        const st = tileScores(tile, D);
        const state = tileState(tile, D);
        scoreBlock(kp, j0 >> 2, keys >> 2, tile, D, st);
        if (hidden) addKeyBias(st, keys, bias + (<usize>j0 << 2));
        if (causal && j0 + keys > fewest) maskPrefix(st, keys, j0, lim0, lim1);
        softmaxBlock(st, keys, state);
        accumulateValues(st, keys, vp + (<usize>(j0 * dvPad) << 2), dvPad, tileOutput(tile, D), state);
      }
    }
    for (let t = 0; t < count; t++) {
      const tile = tiles + <usize>t * stride;
      finishRows(tileOutput(tile, D), tileState(tile, D), dvPad, out, g0 + t * ROWS, rowEnd, Dv, Dv);
    }
  }
}
