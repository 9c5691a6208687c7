// The key/value cache of decoding (src/kvcache.ts): each kv head keeps its
// keys and values in the cache layout of the engine (flash-layout.ts: blocks of 64
// positions, each its key tiles then its values' column strips), with room
// for `capacity` positions, so that appending packs only the new positions in
// place and attending runs attentionRows (full.ts) straight over the buffer,
// reading it once, in address order.
// A head: ceil(capacity / 64) blocks of kvBlockBytes.
// Slots from the cache's count up to the end of its last key tile are kept
// zero, so that the padding keys the engine reads score 0 and their values
// add 0 (the caller's key bias hides them).
import { copyRow } from '../core/memory';
import { KEY_BLOCK, KEY_TILE, STRIP_BYTES, cacheBlock, cacheBlockValues, keyCountPadded, valueWidthPadded } from '../core/flash-layout';

/** Bytes of one block of 64 positions (cacheBlockBytes), as an f64: a size too large for memory reaches the caller as such. */
export function kvBlockBytes(D: i32, Dv: i32): f64 {
  return <f64>KEY_BLOCK * (<f64>D + <f64>valueWidthPadded(Dv)) * 4;
}

// @ts-ignore: decorator
@inline function keyAt(head: usize, s: i32, D: i32, Dv: i32): usize {
  return cacheBlock(head, s, D, Dv) + (<usize>(((s & (KEY_BLOCK - 1)) >> 2) * D * KEY_TILE + (s & 3)) << 2);
}

// @ts-ignore: decorator
@inline function valueAt(head: usize, s: i32, D: i32, Dv: i32): usize {
  return cacheBlockValues(cacheBlock(head, s, D, Dv), D) + (<usize>(s & (KEY_BLOCK - 1)) << 5);
}

/** Copies Dv floats (a value row) into slot s, strip by strip. */
// @ts-ignore: decorator
@inline function writeValue(head: usize, s: i32, D: i32, from: usize, Dv: i32): void {
  let at = valueAt(head, s, D, Dv);
  for (let c = 0; c < Dv; c += 8) {
    copyRow(at, from + (<usize>c << 2), min(8, Dv - c));
    at += STRIP_BYTES;
  }
}

/** Zeroes slots [from, to) of a head's keys and values. */
function clearSlots(head: usize, from: i32, to: i32, D: i32, Dv: i32): void {
  const dvPad = valueWidthPadded(Dv);
  for (let s = from; s < to; s++) {
    const key = keyAt(head, s, D, Dv);
    for (let d = 0; d < D; d++) store<f32>(key + (<usize>d << 4), 0);
    let at = valueAt(head, s, D, Dv);
    for (let c = 0; c < dvPad; c += 8) {
      memory.fill(at, 0, 32);
      at += STRIP_BYTES;
    }
  }
}

/**
 * Writes T positions of one kv head (k rows kLd floats apart, v rows vLd
 * apart) into slots slot0 .. slot0 + T, and zeroes the rest of the last key tile.
 */
export function kvAppend(head: usize, k: usize, v: usize, T: i32, D: i32, Dv: i32, kLd: i32, vLd: i32, slot0: i32): void {
  for (let j = 0; j < T; j++) {
    const s = slot0 + j;
    const key = keyAt(head, s, D, Dv);
    const src = k + ((<usize>j * <usize>kLd) << 2);
    for (let d = 0; d < D; d++) store<f32>(key + (<usize>d << 4), load<f32>(src + (<usize>d << 2)));
    writeValue(head, s, D, v + ((<usize>j * <usize>vLd) << 2), Dv);
  }
  const end = slot0 + T;
  clearSlots(head, end, keyCountPadded(end), D, Dv);
}

/** Moves slots [from, from + count) of one kv head to [0, count) (the rolling window) and zeroes the rest of the last key tile. */
export function kvShift(head: usize, from: i32, count: i32, D: i32, Dv: i32): void {
  const dvPad = valueWidthPadded(Dv);
  // ascending slots: a destination is always below every source still to be read
  for (let s = 0; s < count; s++) {
    const a = keyAt(head, s + from, D, Dv);
    const b = keyAt(head, s, D, Dv);
    for (let d = 0; d < D; d++) store<f32>(b + (<usize>d << 4), load<f32>(a + (<usize>d << 4)));
    let src = valueAt(head, s + from, D, Dv);
    let dst = valueAt(head, s, D, Dv);
    for (let c = 0; c < dvPad; c += 8) {
      copyRow(dst, src, 8);
      src += STRIP_BYTES;
      dst += STRIP_BYTES;
    }
  }
  clearSlots(head, count, keyCountPadded(count), D, Dv);
}
