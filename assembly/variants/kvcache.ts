// The key/value cache of decoding (src/kvcache.ts): each kv head keeps its
// keys and values in the engine's own packed layouts, with room for
// `capacity` positions, so that appending packs only the new positions in
// place and attending runs attentionRows (full.ts) straight over the buffer.
//
// A head: kp[capPad/4][D][4] | vb[capBlocks][dvPad/8][64][8]   (capPad =
// capacity rounded up to 4, capBlocks = capacity / 64 rounded up; the caller
// sizes the buffer). Values are blocked (blockedValueRow) so that a step
// reads each block's column strips in address order.
// Slots from the cache's count up to the end of its last key tile are kept
// zero, so that the padding keys the engine reads score 0 and their values
// add 0 (the caller's key bias hides them).
import { copyRow } from '../core/memory';
import { KEY_TILE, blockedValueRow, keyCountPadded, valueWidthPadded } from '../core/flash';

/** Where a head's values start. */
export function kvValues(head: usize, capacity: i32, D: i32): usize {
  return head + (<usize>(keyCountPadded(capacity) * D) << 2);
}

// @ts-ignore: decorator
@inline function keyAt(head: usize, s: i32, D: i32): usize {
  return head + (<usize>((s >> 2) * D * KEY_TILE + (s & 3)) << 2);
}

/** Copies Dv floats (a value row) into slot s of blocked values, strip by strip. */
// @ts-ignore: decorator
@inline function writeValue(vb: usize, s: i32, dvPad: i32, from: usize, Dv: i32): void {
  let at = blockedValueRow(vb, s, dvPad);
  for (let c = 0; c < Dv; c += 8) {
    copyRow(at, from + (<usize>c << 2), min(8, Dv - c));
    at += 64 << 5;
  }
}

/** Zeroes slots [from, to) of a head's keys and values. */
function clearSlots(head: usize, from: i32, to: i32, D: i32, Dv: i32, capacity: i32): void {
  const vb = kvValues(head, capacity, D);
  const dvPad = valueWidthPadded(Dv);
  for (let s = from; s < to; s++) {
    const key = keyAt(head, s, D);
    for (let d = 0; d < D; d++) store<f32>(key + (<usize>d << 4), 0);
    let at = blockedValueRow(vb, s, dvPad);
    for (let c = 0; c < dvPad; c += 8) {
      memory.fill(at, 0, 32);
      at += 64 << 5;
    }
  }
}

/**
 * Writes T positions of one kv head (k rows kLd floats apart, v rows vLd
 * apart) into slots slot0 .. slot0 + T, and zeroes the rest of the last key tile.
 */
export function kvAppend(head: usize, k: usize, v: usize, T: i32, D: i32, Dv: i32, kLd: i32, vLd: i32, slot0: i32, capacity: i32): void {
  const vb = kvValues(head, capacity, D);
  const dvPad = valueWidthPadded(Dv);
  for (let j = 0; j < T; j++) {
    const s = slot0 + j;
    const key = keyAt(head, s, D);
    const src = k + ((<usize>j * <usize>kLd) << 2);
    for (let d = 0; d < D; d++) store<f32>(key + (<usize>d << 4), load<f32>(src + (<usize>d << 2)));
    writeValue(vb, s, dvPad, v + ((<usize>j * <usize>vLd) << 2), Dv);
  }
  const end = slot0 + T;
  clearSlots(head, end, keyCountPadded(end), D, Dv, capacity);
}

/** Moves slots [from, from + count) of one kv head to [0, count) (the rolling window) and zeroes the rest of the last key tile. */
export function kvShift(head: usize, from: i32, count: i32, D: i32, Dv: i32, capacity: i32): void {
  const vb = kvValues(head, capacity, D);
  const dvPad = valueWidthPadded(Dv);
  // ascending slots: a destination is always below every source still to be read
  for (let s = 0; s < count; s++) {
    const a = keyAt(head, s + from, D);
    const b = keyAt(head, s, D);
    for (let d = 0; d < D; d++) store<f32>(b + (<usize>d << 4), load<f32>(a + (<usize>d << 4)));
    let src = blockedValueRow(vb, s + from, dvPad);
    let dst = blockedValueRow(vb, s, dvPad);
    for (let c = 0; c < dvPad; c += 8) {
      copyRow(dst, src, 8);
      src += 64 << 5;
      dst += 64 << 5;
    }
  }
  clearSlots(head, count, keyCountPadded(count), D, Dv, capacity);
}
