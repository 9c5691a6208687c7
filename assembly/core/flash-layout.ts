// The layouts of the attention engine (flash.ts): its sizes, how keys,
// values and queries are packed, a head's packed buffers, the key/value
// cache's blocks, and one query tile's working buffers.
//
// Packed layouts (all float32, 16-byte aligned; D * 4 and dvPad * 4 keep 16-byte alignment):
//   query tile  qt[d][8]          scaled by `scale`, rows past the end are 0
//   keys        kp[j/4][d][4]     key tiles of 4, zero padded to a multiple of 4
//   values      vp[j][dvPad]      dvPad = Dv rounded up to 8, zero padded
//   scores      st[j][8]          one key block, then its probabilities
//   state       m[8], l[8], alpha[8]
//   output acc  o[8][dvPad]
import { copyRow } from './memory';
import { packKeysStrided, packQueryStrided } from './gather';
import { roundUp } from './simd';

export const ROWS: i32 = 8;
export const KEY_TILE: i32 = 4;
/** Keys per block: 64 keys x 8 rows of scores stay in L1 next to the value rows they meet. */
export const KEY_BLOCK: i32 = 64;

const NEG_INF: f32 = -Infinity;

// @ts-ignore: decorator
@inline export function keyCountPadded(Nk: i32): i32 {
  return roundUp(Nk, KEY_TILE);
}

// @ts-ignore: decorator
@inline export function valueWidthPadded(Dv: i32): i32 {
  return roundUp(Dv, 8);
}

// Rows of q, k, v and the output are ld floats apart: D (or Dv) for [N][D]
// heads, H D for the [B, N, H, D] layout read in place.

/** Packs rows [0, N) of one head of k (D features, rows ld apart) into key tiles of 4. */
export function packKeys(k: usize, N: i32, D: i32, ld: i32, kp: usize): void {
  if (N > 0) packKeysStrided(k, 0, 1, N, D, ld, kp);
}

/** Copies one head of v (Dv features, rows ld apart) into rows of dvPad floats, zero padded to a multiple of 4 rows. */
export function packValues(v: usize, N: i32, Dv: i32, ld: i32, vp: usize): void {
  const dvPad = valueWidthPadded(Dv);
  const rowBytes = <usize>dvPad << 2;
  memory.fill(vp, 0, <usize>keyCountPadded(N) * rowBytes);
  for (let j = 0; j < N; j++) copyRow(vp + <usize>j * rowBytes, v + <usize>j * (<usize>ld << 2), Dv);
}

/** Packs query rows i0 .. i0+8 (those below N) of one head of q (rows ld apart), times scale, as qt[d][8]. */
export function packQueryTile(q: usize, i0: i32, N: i32, D: i32, ld: i32, scale: f32, qt: usize): void {
  packQueryStrided(q, i0, 1, min(ROWS, N - i0), D, ld, scale, qt);
}


// The key/value cache's layout: blocks of KEY_BLOCK positions, each block its
// keys as key tiles [KEY_BLOCK/4][D][4] followed by its values as column
// strips [dvPad/8][KEY_BLOCK][8], so that a decoding step reads the cache as
// one stream, block after block, in address order.

/** Bytes of one column strip of a block's values: KEY_BLOCK keys of 8 floats. */
export const STRIP_BYTES: usize = <usize>KEY_BLOCK << 5;

/** Bytes of one block of the cache layout. */
// @ts-ignore: decorator
@inline export function cacheBlockBytes(D: i32, Dv: i32): usize {
  return <usize>(KEY_BLOCK * (D + valueWidthPadded(Dv))) << 2;
}

/** Where the block of position j starts (its keys) in the cache layout. */
// @ts-ignore: decorator
@inline export function cacheBlock(head: usize, j: i32, D: i32, Dv: i32): usize {
  return head + <usize>(j >> 6) * cacheBlockBytes(D, Dv);
}

/** Where the values of a block start, from the block's start. */
// @ts-ignore: decorator
@inline export function cacheBlockValues(block: usize, D: i32): usize {
  return block + (<usize>(KEY_BLOCK * D) << 2);
}

// A head's packed keys and values, shared by every query tile of the head:
//   header (16 bytes: i32 "has hidden keys") | kp | vp | bias[nPad]

/** Bytes of a head's packed keys, values and key bias. */
export function packBytes(Nk: i32, D: i32, Dv: i32): f64 {
  const nPad = <f64>keyCountPadded(Nk);
  return 16 + (nPad * D + nPad * <f64>valueWidthPadded(Dv) + nPad) * 4;
}

// @ts-ignore: decorator
@inline export function packedKeys(pack: usize): usize {
  return pack + 16;
}

// @ts-ignore: decorator
@inline export function packedValues(pack: usize, Nk: i32, D: i32): usize {
  return pack + 16 + (<usize>(keyCountPadded(Nk) * D) << 2);
}

// @ts-ignore: decorator
@inline export function packedBias(pack: usize, Nk: i32, D: i32, Dv: i32): usize {
  return packedValues(pack, Nk, D) + (<usize>(keyCountPadded(Nk) * valueWidthPadded(Dv)) << 2);
}

/**
 * Packs one head's keys and values (rows kLd and vLd floats apart), and the
 * key bias (-inf for padding and for the zero keys that fill the last tile).
 * keyPadding: this batch's u8 [Nk] row, or 0.
 */
export function packHead(k: usize, v: usize, Nk: i32, D: i32, Dv: i32, kLd: i32, vLd: i32, keyPadding: usize, pack: usize): void {
  const nPad = keyCountPadded(Nk);
  packKeys(k, Nk, D, kLd, packedKeys(pack));
  packValues(v, Nk, Dv, vLd, packedValues(pack, Nk, D));
  const bias = packedBias(pack, Nk, D, Dv);
  let hidden = false;
  for (let j = 0; j < nPad; j++) {
    const real = j < Nk && (keyPadding == 0 || load<u8>(keyPadding + j) != 0);
    if (!real) hidden = true;
    store<f32>(bias + (<usize>j << 2), real ? 0 : NEG_INF);
  }
  store<i32>(pack, hidden ? 1 : 0);
}

// One query tile's working buffers: qt[D][8] | st[KEY_BLOCK][8] | state[24] | o[8][dvPad]

/** Bytes of one query tile's working buffers (an i32 offset: exact whenever the buffers fit in memory). */
export function tileBytes(D: i32, Dv: i32): i32 {
  return (ROWS * D + KEY_BLOCK * ROWS + 24 + ROWS * valueWidthPadded(Dv)) * 4;
}

/**
 * {@link tileBytes} in f64, for the sizes the arena reserves: one too large
 * for memory must reach it as such, never wrapped to a small i32.
 */
export function tileBytesExact(D: i32, Dv: i32): f64 {
  return (<f64>ROWS * D + <f64>(KEY_BLOCK * ROWS + 24) + <f64>ROWS * valueWidthPadded(Dv)) * 4;
}

/** Query tiles that walk the keys together, so that each key block is fetched once for all of them. */
export const TILE_GROUP: i32 = 4;

/** Bytes of a group of query tiles' working buffers. */
export function groupBytes(D: i32, Dv: i32): f64 {
  return <f64>TILE_GROUP * tileBytesExact(D, Dv);
}

// @ts-ignore: decorator
@inline export function tileScores(tile: usize, D: i32): usize {
  return tile + (<usize>(ROWS * D) << 2);
}

// @ts-ignore: decorator
@inline export function tileState(tile: usize, D: i32): usize {
  return tileScores(tile, D) + (<usize>(KEY_BLOCK * ROWS) << 2);
}

// @ts-ignore: decorator
@inline export function tileOutput(tile: usize, D: i32): usize {
  return tileState(tile, D) + 96;
}
