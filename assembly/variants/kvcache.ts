// The key/value cache of decoding (src/kvcache.ts): each kv head keeps its
// keys and values in the engine's own packed layout, with room for
// `capacity` positions, so that appending packs only the new positions in
// place and attending runs attentionRows (full.ts) straight over the buffer.
//
// A head: kp[capPad/4][D][4] | vp[capPad][dvPad]   (capPad = capacity rounded up to 4;
// the caller sizes the buffer)
// Slots from the cache's count up to the end of its last key tile are kept
// zero, so that the padding keys the engine reads score 0 and their values
// add 0 (the caller's key bias hides them).
import { KEY_TILE, keyCountPadded, valueWidthPadded } from '../core/flash';

/** Where a head's values start. */
export function kvValues(head: usize, capacity: i32, D: i32): usize {
  return head + (<usize>(keyCountPadded(capacity) * D) << 2);
}

/** Zeroes slots [from, to) of a head's keys and values. */
function clearSlots(head: usize, from: i32, to: i32, D: i32, Dv: i32, capacity: i32): void {
  const vp = kvValues(head, capacity, D);
  const rowBytes = <usize>valueWidthPadded(Dv) << 2;
  for (let s = from; s < to; s++) {
    const key = head + (<usize>((s >> 2) * D * KEY_TILE + (s & 3)) << 2);
    for (let d = 0; d < D; d++) store<f32>(key + (<usize>d << 4), 0);
    memory.fill(vp + <usize>s * rowBytes, 0, rowBytes);
  }
}

/**
 * Writes T positions of one kv head (k rows kLd floats apart, v rows vLd
 * apart) into slots slot0 .. slot0 + T, and zeroes the rest of the last key tile.
 */
export function kvAppend(head: usize, k: usize, v: usize, T: i32, D: i32, Dv: i32, kLd: i32, vLd: i32, slot0: i32, capacity: i32): void {
  const vp = kvValues(head, capacity, D);
  const rowBytes = <usize>valueWidthPadded(Dv) << 2;
  for (let j = 0; j < T; j++) {
    const s = slot0 + j;
    const key = head + (<usize>((s >> 2) * D * KEY_TILE + (s & 3)) << 2);
    const src = k + ((<usize>j * <usize>kLd) << 2);
    for (let d = 0; d < D; d++) store<f32>(key + (<usize>d << 4), load<f32>(src + (<usize>d << 2)));
    memory.copy(vp + <usize>s * rowBytes, v + ((<usize>j * <usize>vLd) << 2), <usize>Dv << 2);
  }
  const end = slot0 + T;
  clearSlots(head, end, keyCountPadded(end), D, Dv, capacity);
}

/** Moves slots [from, from + count) of one kv head to [0, count) (the rolling window) and zeroes the rest of the last key tile. */
export function kvShift(head: usize, from: i32, count: i32, D: i32, Dv: i32, capacity: i32): void {
  const vp = kvValues(head, capacity, D);
  const rowBytes = <usize>valueWidthPadded(Dv) << 2;
  // ascending slots: a destination is always below every source still to be read
  for (let s = 0; s < count; s++) {
    const src = s + from;
    const a = head + (<usize>((src >> 2) * D * KEY_TILE + (src & 3)) << 2);
    const b = head + (<usize>((s >> 2) * D * KEY_TILE + (s & 3)) << 2);
    for (let d = 0; d < D; d++) store<f32>(b + (<usize>d << 4), load<f32>(a + (<usize>d << 4)));
  }
  memory.copy(vp, vp + <usize>from * rowBytes, <usize>count * rowBytes);
  clearSlots(head, count, keyCountPadded(count), D, Dv, capacity);
}
