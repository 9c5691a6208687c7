// Pattern attention (local, strided, global, sparse): softmax over the keys a
// pattern makes visible, at a cost proportional to the visible pairs, never
// to Nq x Nk. Mirrors src/patterns.ts.
//
// A query's visible keys are covered by up to three disjoint passes, each
// contiguous in some packing of the keys; the online softmax merges them
// (its state m, l, o is exact whatever the order the keys come in):
//   window pass  rows in order, keys in order: the local window [p - A, p + B]
//                (the union of the local rules) and, for a global query
//                position, the whole row;
//   stride pass  rows and keys grouped by position modulo the stride, so the
//                dilated window of 8 rows of one residue is a contiguous run
//                of that residue's keys; keys the window pass took are hidden;
//   extra pass   the few remaining keys (global tokens, random picks, further
//                strided rules), listed per query tile by the caller with a
//                bit per row, gathered, and attended.
// Between passes each row's m, l and o live in per-row arrays; a pass that
// is the only one starts its tiles empty and writes the output rows itself.
// The stride pass is pattern-stride.ts; the row state and the steps every
// pass takes on a query tile, pattern-tiles.ts.
import { KEY_BLOCK, ROWS, packedBias, packedKeys, packedValues, tileScores, valueWidthPadded } from '../core/flash-layout';
import { copyRow } from '../core/memory';
import { roundUp } from '../core/simd';
import { BLOCK_HIDDEN, termsCover } from '../core/terms';
import { LANES_0123, beginRows, endRows, finishBlock, globalRows, hideUnseen, moveRows, packQueryRows, scoreKeys, skipRows } from './pattern-tiles';

export { patternFinish, patternStart, patternStateBytes } from './pattern-tiles';
export { packResidues, patternStrideRows, residuePackBytes } from './pattern-stride';

const NEG_INF: f32 = -Infinity;

// ------------------------------------------------------------- the passes

/**
 * Window pass over query rows [rowStart, rowEnd) of one head (keys packed in
 * order by packHead): a row at position p sees keys p - A ..= p + B (A = B = -1:
 * no local rule), all keys when p is a global token, and never j > p when causal.
 * out != 0: the only pass, writing the output rows (oLd floats apart) itself.
 */
export function patternWindowRows(
  q: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, qLd: i32, scale: f32, causal: bool, terms: usize,
  A: i32, B: i32, isToken: usize, pack: usize, tile: usize, rows: usize, rowStart: i32, rowEnd: i32, out: usize, oLd: i32,
): void {
  const dvPad = valueWidthPadded(Dv);
  const kp = packedKeys(pack);
  const vp = packedValues(pack, Nk, D);
  const bias = packedBias(pack, Nk, D, Dv);
  const hidden = load<i32>(pack) != 0;
  const shift = Nk - Nq;
  const st = tileScores(tile, D);
  const minusInf = f32x4.splat(NEG_INF);
  for (let i0 = rowStart; i0 < rowEnd; i0 += ROWS) {
    const p0 = i0 + shift;
    const pLast = min(i0 + ROWS, rowEnd) - 1 + shift;
    const end = causal ? min(Nk, pLast + 1) : Nk;
    const g0 = globalRows(isToken, Nk, p0, 1, 0);
    const g1 = globalRows(isToken, Nk, p0, 1, 1);
    const anyGlobal = v128.any_true(v128.or(g0, g1));
    const lo = anyGlobal ? 0 : max(0, p0 - A);
    const hi = anyGlobal ? end : min(end, pLast + B + 1);
    // no window and no global row, or no key in reach: nothing for this pass
    if ((!anyGlobal && A < 0) || lo >= hi) {
      skipRows(Nq, Dv, tile, D, i0, 1, rowEnd, out, oLd);
      continue;
    }
    packQueryRows(q, rowEnd, D, qLd, scale, i0, 1, tile);
    beginRows(rows, Nq, Dv, tile, D, i0, 1, rowEnd, out);
    const pos0 = i32x4.add(i32x4.splat(p0), LANES_0123);
    const pos1 = i32x4.add(pos0, i32x4.splat(4));
    const lo0 = i32x4.sub(pos0, i32x4.splat(A));
    const lo1 = i32x4.sub(pos1, i32x4.splat(A));
    const hi0 = i32x4.add(pos0, i32x4.splat(B));
    const hi1 = i32x4.add(pos1, i32x4.splat(B));
    const xEnd = roundUp(hi, 4);
    for (let x0 = lo & ~3; x0 < xEnd; x0 += KEY_BLOCK) {
      const count = min(KEY_BLOCK, xEnd - x0);
      const cover = terms != 0 ? termsCover(terms, count, i0, 1, rowEnd, x0, 1, 0, Nk) : 0;
      if (terms != 0 && cover == BLOCK_HIDDEN) continue;
      scoreKeys(kp, bias, hidden, x0, count, tile, D, terms, i0, 1, rowEnd, x0, 1, 0, count, Nk, cover);
      for (let t = 0; t < count; t++) {
        const j = i32x4.splat(x0 + t);
        const see0 = v128.or(g0, v128.and(i32x4.ge_s(j, lo0), i32x4.le_s(j, hi0)));
        const see1 = v128.or(g1, v128.and(i32x4.ge_s(j, lo1), i32x4.le_s(j, hi1)));
        hideUnseen(st, t, j, see0, see1, causal, pos0, pos1, minusInf);
      }
      finishBlock(vp, x0, count, tile, D, dvPad);
    }
    endRows(rows, Nq, Dv, tile, D, i0, 1, rowEnd, out, oLd);
  }
}

/** Bytes of the extra pass's gathered keys and values (one block). */
export function extraBytes(D: i32, Dv: i32): f64 {
  return <f64>KEY_BLOCK * (<f64>D + valueWidthPadded(Dv) + 1) * 4 + 16;
}

/**
 * Extra pass over query tiles [tileStart, tileEnd) of one head: tile t
 * (rows 8t ..) sees keys keys[offsets[t] .. offsets[t + 1]) (positions,
 * ascending), row r of the tile seeing a key when bit r of its bits is set
 * (the caller has applied the pattern, causal and what the other passes took);
 * key padding comes from the head's bias in `pack` (packHead).
 */
export function patternExtraRows(
  q: usize, k: usize, v: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, qLd: i32, kLd: i32, vLd: i32, scale: f32, terms: usize,
  offsets: usize, keys: usize, bits: usize, pack: usize, gathered: usize, tile: usize, rows: usize,
  tileStart: i32, tileEnd: i32,
): void {
  const dvPad = valueWidthPadded(Dv);
  const headBias = packedBias(pack, Nk, D, Dv);
  const gk = gathered;
  const gv = gk + (<usize>(KEY_BLOCK * D) << 2);
  const gb = gv + (<usize>(KEY_BLOCK * dvPad) << 2);
  const st = tileScores(tile, D);
  const minusInf = f32x4.splat(NEG_INF);
  const rowBits0 = v128(1, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0);
  const rowBits1 = i32x4.shl(rowBits0, 4);
  for (let t = tileStart; t < tileEnd; t++) {
    const from = load<i32>(offsets + (<usize>t << 2));
    const to = load<i32>(offsets + (<usize>(t + 1) << 2));
    if (from >= to) continue;
    const i0 = t * ROWS;
    packQueryRows(q, Nq, D, qLd, scale, i0, 1, tile);
    moveRows(rows, Nq, Dv, tile, D, i0, 1, Nq, true);
    for (let e0 = from; e0 < to; e0 += KEY_BLOCK) {
      const count = min(KEY_BLOCK, to - e0);
      const padded = roundUp(count, 4);
      const keyList = keys + (<usize>e0 << 2);
      const cover = terms != 0 ? termsCover(terms, count, i0, 1, Nq, 0, 0, keyList, Nk) : 0;
      if (terms != 0 && cover == BLOCK_HIDDEN) continue;
      // gather the block's keys (as key tiles of 4), values and bias
      memory.fill(gv, 0, <usize>(padded * dvPad) << 2);
      for (let x = 0; x < padded; x++) {
        const dst = gk + (<usize>((x >> 2) * D * 4 + (x & 3)) << 2);
        if (x < count) {
          const j = load<i32>(keys + (<usize>(e0 + x) << 2));
          const src = k + <usize>j * (<usize>kLd << 2);
          for (let d = 0; d < D; d++) store<f32>(dst + (<usize>d << 4), load<f32>(src + (<usize>d << 2)));
          copyRow(gv + (<usize>(x * dvPad) << 2), v + <usize>j * (<usize>vLd << 2), Dv);
          store<f32>(gb + (<usize>x << 2), load<f32>(headBias + (<usize>j << 2)));
        } else {
          for (let d = 0; d < D; d++) store<f32>(dst + (<usize>d << 4), 0);
          store<f32>(gb + (<usize>x << 2), NEG_INF);
        }
      }
      scoreKeys(gk, gb, true, 0, padded, tile, D, terms, i0, 1, Nq, 0, 0, keyList, count, Nk, cover);
      for (let x = 0; x < count; x++) {
        const b = i32x4.splat(load<u8>(bits + <usize>(e0 + x)));
        const row = st + (<usize>x << 5);
        v128.store(row, v128.bitselect(v128.load(row), minusInf, i32x4.ne(v128.and(b, rowBits0), i32x4.splat(0))));
        v128.store(row, v128.bitselect(v128.load(row, 16), minusInf, i32x4.ne(v128.and(b, rowBits1), i32x4.splat(0))), 16);
      }
      finishBlock(gv, 0, padded, tile, D, dvPad);
    }
    moveRows(rows, Nq, Dv, tile, D, i0, 1, Nq, false);
  }
}
