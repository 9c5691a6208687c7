// The stride pass of the pattern kernel (see patterns.ts): rows and keys
// grouped by position modulo the stride s, so that the dilated window of the
// rows of one residue is a contiguous run of that residue's packed keys.
import { accumulateFourRows, scoreBlock4, softmaxBlock } from '../core/flash';
import { KEY_BLOCK, ROWS, keyCountPadded, tileOutput, tileScores, tileState, valueWidthPadded } from '../core/flash-layout';
import { copyRow } from '../core/memory';
import { packKeysStrided } from '../core/gather';
import { roundUp } from '../core/simd';
import { BLOCK_HIDDEN, termsCover } from '../core/terms';
import { LANES_0123, addTerms, beginRows, endRows, globalRows, hideUnseen, packQueryRows, skipRows } from './pattern-tiles';

const NEG_INF: f32 = -Infinity;

/** Keys of residue r (positions r, r + s, ...) among Nk. */
// @ts-ignore: decorator
@inline function residueCount(Nk: i32, s: i32, r: i32): i32 {
  return r < Nk ? (Nk - r + s - 1) / s : 0;
}

/** First packed key of residue r (r <= min(s, Nk)): the residues before it, each padded to a key tile. */
// @ts-ignore: decorator
@inline function residueBase(Nk: i32, s: i32, r: i32): i32 {
  // residues below Nk mod s (all of them when s > Nk) hold one key more than the others
  const longer = Nk / s + 1;
  const longCount = min(r, Nk % s);
  return longCount * keyCountPadded(longer) + (r - longCount) * keyCountPadded(longer - 1);
}

/**
 * Whether the stride pass reads value rows where they are (rows that need no
 * padding to the engine's dvPad columns), or packed by residue like the keys.
 */
// @ts-ignore: decorator
@inline function valuesInPlace(Dv: i32): bool {
  return valueWidthPadded(Dv) == Dv;
}

/** Floats per packed key: its key tile column, its value row unless values are read in place, its bias. */
// @ts-ignore: decorator
@inline function residueKeyFloats(D: i32, Dv: i32): i32 {
  return D + (valuesInPlace(Dv) ? 0 : valueWidthPadded(Dv)) + 1;
}

/** Bytes of a head's keys (and values) packed by residue modulo s (each residue padded to a key tile). */
export function residuePackBytes(Nk: i32, D: i32, Dv: i32, s: i32): f64 {
  return 16 + <f64>residueBase(Nk, s, min(s, Nk)) * residueKeyFloats(D, Dv) * 4;
}

/**
 * Packs one head's keys (rows kLd floats apart) grouped by position modulo
 * s: residue 0's keys in order, then residue 1's, ..., each padded to a
 * multiple of 4, with the key bias (-inf for padding); its values (rows vLd
 * apart) the same way unless valuesInPlace. Layout: header (i32 "has hidden
 * keys", i32 packed keys) | key tiles | value rows (unless in place) | bias.
 * Rows are read in address order: rows a stride apart are not prefetched.
 */
export function packResidues(k: usize, v: usize, Nk: i32, D: i32, Dv: i32, kLd: i32, vLd: i32, s: i32, keyPadding: usize, pack: usize): void {
  const dvPad = valueWidthPadded(Dv);
  const residues = min(s, Nk);
  const total = residueBase(Nk, s, residues);
  const kp = pack + 16;
  const vp = kp + (<usize>(total * D) << 2);
  const bias = pack + 16 + (<usize>(total * (residueKeyFloats(D, Dv) - 1)) << 2);
  const rowBytes = <usize>dvPad << 2;
  const packValues = !valuesInPlace(Dv);
  // residue r holds `longer` keys when r < Nk mod s, one fewer otherwise
  const longer = Nk / s + 1;
  const shortFrom = Nk % s;
  let hidden = false;
  // row j = t s + r goes to x = residueBase(r) + t; at t = 0 mod 4 it starts residue r's key tile
  for (let j0 = 0, t = 0; j0 < Nk; j0 += s, t++) {
    let x = t;
    for (let j = j0; j < min(Nk, j0 + s); j++) {
      const r = j - j0;
      const n = r < shortFrom ? longer : longer - 1;
      if ((t & 3) == 0) packKeysStrided(k, j, s, min(4, n - t), D, kLd, kp + (<usize>(x * D) << 2));
      const real = keyPadding == 0 || load<u8>(keyPadding + j) != 0;
      if (!real) hidden = true;
      store<f32>(bias + (<usize>x << 2), real ? 0 : NEG_INF);
      if (packValues) {
        const dst = vp + <usize>x * rowBytes;
        copyRow(dst, v + <usize>j * (<usize>vLd << 2), Dv);
        memory.fill(dst + (<usize>Dv << 2), 0, <usize>(dvPad - Dv) << 2);
      }
      x += keyCountPadded(n);
    }
  }
  // the keys that fill each residue's last tile: hidden (their values are never read)
  for (let r = 0; r < residues; r++) {
    const end = residueBase(Nk, s, r + 1);
    for (let x = residueBase(Nk, s, r) + residueCount(Nk, s, r); x < end; x++) {
      hidden = true;
      store<f32>(bias + (<usize>x << 2), NEG_INF);
    }
  }
  store<i32>(pack, hidden ? 1 : 0);
  store<i32>(pack, total, 4);
}

// A stride tile's rows 0-3 and rows 4-7 see bands of keys that overlap only in
// part: each half is scored and accumulated over its own band (its lanes of
// the other keys are left as they are, and the mask hides them).

/** Scores of packed keys [xa, xb) (within the block at x0 of count keys) for half h of the tile (rows 4 h .. 4 h + 3). */
function scoreHalf(kp: usize, x0: i32, count: i32, xa: i32, xb: i32, tile: usize, D: i32, h: i32): void {
  const lo = max(xa, x0);
  const hi = min(xb, x0 + count);
  const lanes = <usize>h << 4;
  if (lo < hi) scoreBlock4(kp, lo >> 2, (hi - lo) >> 2, tile + lanes, D, tileScores(tile, D) + (<usize>(lo - x0) << 5) + lanes, 0, 0);
}

/**
 * accumulateValues of half h of the tile over its packed keys [xa, xb) within
 * the block at x0 (none: the rescale only); packed key x's value row at
 * values + (x - base) keyBytes.
 */
function accumulateHalf(values: usize, keyBytes: usize, base: i32, x0: i32, count: i32, xa: i32, xb: i32, tile: usize, D: i32, dvPad: i32, h: i32): void {
  const lo = max(xa, x0);
  const hi = max(lo, min(xb, x0 + count));
  const st = tileScores(tile, D) + (<usize>(lo - x0) << 5);
  accumulateFourRows(st, hi - lo, values + <usize>(lo - base) * keyBytes, keyBytes, dvPad, tileOutput(tile, D), tileState(tile, D), h * 4);
}

/** The first index t of the residue-r keys j = r + t s that a row at position p may see (j >= p - reach; reach < 0: unbounded). */
// @ts-ignore: decorator
@inline function bandFirst(r: i32, s: i32, p: i32, reach: i32): i32 {
  const jLo = reach < 0 ? 0 : max(0, p - reach);
  return jLo <= r ? 0 : (jLo - r + s - 1) / s;
}

/** The last index t of the n residue-r keys that a row at position p may see (j <= p + reach, and j <= p when causal), or -1. */
// @ts-ignore: decorator
@inline function bandLast(r: i32, s: i32, n: i32, p: i32, reach: i32, causal: bool, Nk: i32): i32 {
  const end = causal ? min(Nk, p + 1) : Nk;
  const jHi = min(end - 1, reach < 0 || p > i32.MAX_VALUE - reach ? i32.MAX_VALUE : p + reach);
  return jHi < r ? -1 : min(n - 1, (jHi - r) / s);
}

/**
 * Stride pass over the rows of one head (keys packed by packResidues; values
 * too, or read in place from v, rows vLd floats apart): a row
 * at position p sees keys j = p mod s with |p - j| <= reach (reach < 0:
 * unbounded), j <= p when causal, except those the window pass took (the
 * window [p - A, p + B] and global rows). A tile takes 8 rows f, f + s, ...
 * of one offset f; band by band of 8 s rows, the tiles of offsets 0, 1, ...
 * come one after the other, so that q, v and the rows' state or output are
 * walked in address order. out != 0: the only pass, writing the output rows
 * (oLd floats apart) itself.
 */
export function patternStrideRows(
  q: usize, v: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, qLd: i32, vLd: i32, scale: f32, causal: bool, terms: usize,
  s: i32, reach: i32, A: i32, B: i32, isToken: usize, pack: usize, tile: usize, rows: usize, out: usize, oLd: i32,
): void {
  const dvPad = valueWidthPadded(Dv);
  const total = load<i32>(pack, 4);
  const kp = pack + 16;
  const vp = kp + (<usize>(total * D) << 2);
  const bias = pack + 16 + (<usize>(total * (residueKeyFloats(D, Dv) - 1)) << 2);
  const inPlace = valuesInPlace(Dv);
  const vRowBytes = <usize>vLd << 2;
  const keyBytes = inPlace ? <usize>s * vRowBytes : <usize>dvPad << 2;
  const hidden = load<i32>(pack) != 0;
  const shift = Nk - Nq;
  const st = tileScores(tile, D);
  const minusInf = f32x4.splat(NEG_INF);
  const far = reach < 0 ? i32.MAX_VALUE : reach;
  const offsets = min(s, Nq);
  const longest = offsets > 0 ? (Nq - 1) / s + 1 : 0;
  for (let t0 = 0; t0 < longest; t0 += ROWS) {
    for (let first = 0; first < offsets; first++) {
      // rows first, first + s, ... (rowCount of them), walked by their index t
      // so that no row number past Nq is ever formed; their keys: residue r
      const rowCount = (Nq - 1 - first) / s + 1;
      if (t0 >= rowCount) break; // later offsets have no more rows
      const r = (((first + shift) % s) + s) % s;
      const n = residueCount(Nk, s, r);
      const i0 = first + t0 * s;
      const p0 = i0 + shift;
      // the keys each half of the tile may see, as indices t of j = r + t s (none: lo > hi)
      const tileRows = min(ROWS, rowCount - t0);
      const lo0 = bandFirst(r, s, p0, reach);
      const hi0 = bandLast(r, s, n, p0 + min(3, tileRows - 1) * s, reach, causal, Nk);
      const lo1 = tileRows > 4 ? bandFirst(r, s, p0 + 4 * s, reach) : 0;
      const hi1 = tileRows > 4 ? bandLast(r, s, n, p0 + (tileRows - 1) * s, reach, causal, Nk) : -1;
      if (lo0 > hi0 && lo1 > hi1) {
        skipRows(Nq, Dv, tile, D, i0, s, Nq, out, oLd);
        continue;
      }
      packQueryRows(q, Nq, D, qLd, scale, i0, s, tile);
      beginRows(rows, Nq, Dv, tile, D, i0, s, Nq, out);
      // as packed keys, each half's band rounded out to key tiles
      const base = residueBase(Nk, s, r); // first packed key of residue r
      const values = inPlace ? v + <usize>r * vRowBytes : vp + (<usize>(base * dvPad) << 2);
      const xa0 = base + (lo0 & ~3);
      const xb0 = lo0 > hi0 ? xa0 : base + roundUp(hi0 + 1, 4);
      const xa1 = base + (lo1 & ~3);
      const xb1 = lo1 > hi1 ? xa1 : base + roundUp(hi1 + 1, 4);
      const stepPos = i32x4.splat(s);
      const pos0 = i32x4.add(i32x4.splat(p0), i32x4.mul(LANES_0123, stepPos));
      const pos1 = i32x4.add(pos0, i32x4.mul(i32x4.splat(4), stepPos));
      const g0 = globalRows(isToken, Nk, p0, s, 0);
      const g1 = globalRows(isToken, Nk, p0, s, 1);
      const xEnd = lo1 > hi1 ? xb0 : xb1;
      for (let x0 = lo0 > hi0 ? xa1 : xa0; x0 < xEnd; x0 += KEY_BLOCK) {
        const count = min(KEY_BLOCK, xEnd - x0);
        const jFirst = r + (x0 - base) * s;
        const cover = terms != 0 ? termsCover(terms, count, i0, s, Nq, jFirst, s, 0, Nk) : 0;
        if (terms != 0 && cover == BLOCK_HIDDEN) continue;
        scoreHalf(kp, x0, count, xa0, xb0, tile, D, 0);
        scoreHalf(kp, x0, count, xa1, xb1, tile, D, 1);
        addTerms(st, bias, hidden, x0, count, terms, i0, s, Nq, jFirst, s, 0, count, Nk, cover);
        for (let t = 0; t < count; t++) {
          const jPos = r + (x0 - base + t) * s;
          const j = i32x4.splat(jPos);
          const d0 = i32x4.abs(i32x4.sub(pos0, j));
          const d1 = i32x4.abs(i32x4.sub(pos1, j));
          // inside the reach, and not taken by the window pass
          const see0 = v128.andnot(i32x4.le_s(d0, i32x4.splat(far)), v128.or(g0, v128.and(i32x4.ge_s(j, i32x4.sub(pos0, i32x4.splat(A))), i32x4.le_s(j, i32x4.add(pos0, i32x4.splat(B))))));
          const see1 = v128.andnot(i32x4.le_s(d1, i32x4.splat(far)), v128.or(g1, v128.and(i32x4.ge_s(j, i32x4.sub(pos1, i32x4.splat(A))), i32x4.le_s(j, i32x4.add(pos1, i32x4.splat(B))))));
          hideUnseen(st, t, j, see0, see1, causal, pos0, pos1, minusInf);
        }
        softmaxBlock(st, count, tileState(tile, D));
        // (the keys that fill the residue's last tile have no value row)
        accumulateHalf(values, keyBytes, base, x0, count, xa0, min(xb0, base + n), tile, D, dvPad, 0);
        accumulateHalf(values, keyBytes, base, x0, count, xa1, min(xb1, base + n), tile, D, dvPad, 1);
      }
      endRows(rows, Nq, Dv, tile, D, i0, s, Nq, out, oLd);
    }
  }
}
