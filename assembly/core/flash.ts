// The tiled online-softmax attention engine (FlashAttention), shared by every
// softmax-based variant. A query tile of 8 rows walks over key blocks; each
// block computes scores S^T [keys][8 rows] (lanes = query rows, so row maxima
// and sums are plain vector ops), masks them, updates the running max m and
// sum l, rescales the output accumulator and adds P V. No Nq x Nk buffer.
// The layouts it reads and writes are in flash-layout.ts.
import { KEY_BLOCK, KEY_TILE, ROWS, tileBytes, valueWidthPadded } from './flash-layout';
import { scaleRow } from './memory';
import { panelTile } from './gemm';
import { expNonPositive, madd } from './simd';

const NEG_INF: f32 = -Infinity;

/** Starts a query tile: m = -inf, l = 0, o = 0. */
export function startRows(state: usize, o: usize, dvPad: i32): void {
  const minusInf = f32x4.splat(NEG_INF);
  v128.store(state, minusInf);
  v128.store(state, minusInf, 16);
  v128.store(state, f32x4.splat(0), 32);
  v128.store(state, f32x4.splat(0), 48);
  memory.fill(o, 0, <usize>(ROWS * dvPad) << 2);
}

/**
 * Scores of key tiles [tile0, tile0 + tiles) against the query tile:
 * st[j][r] = qt[.][r] . k_j (q is already scaled). 4 keys x 8 rows per step:
 * 8 accumulators, 2 query vectors and 4 key splats fit the 16 vector registers.
 */
export function scoreBlock(kp: usize, tile0: i32, tiles: i32, qt: usize, D: i32, st: usize): void {
  const tileBytes = <usize>(D * KEY_TILE) << 2;
  const kt = kp + <usize>tile0 * tileBytes;
  // st rows t .. t + 3 = key tile t (4 rows of panel A) times qt [D][8]
  for (let t = 0; t < tiles; t++) panelTile(D, kt + <usize>t * tileBytes, 16, qt, ROWS, st + (<usize>t << 7), ROWS, 4, false);
}

/**
 * scoreBlock for a tile of at most 4 rows: st[j][r] for rows 0-3 (lanes 4-7
 * are not written), two key tiles per step with the keys as vectors and the
 * rows splatted, so that no lane is wasted. Every score is the same sum in
 * the same order as scoreBlock's: the same bits.
 *
 * A few rows do little arithmetic per byte of keys and values, so such a
 * tile runs at the speed memory delivers them: its steps also read words
 * spread over [ahead, ahead + aheadBytes), which the caller points at what
 * it reads next, so that it arrives while the keys are multiplied
 * (WebAssembly has no prefetch instruction); ahead 0: nothing to read.
 */
export function scoreBlock4(kp: usize, tile0: i32, tiles: i32, qt: usize, D: i32, st: usize, ahead: usize, aheadBytes: usize): void {
  const tileBytes = <usize>(D * KEY_TILE) << 2;
  let kt = kp + <usize>tile0 * tileBytes;
  const aheadStep = aheadStepFor(ahead, aheadBytes, <usize>((tiles + 1) >> 1) * D);
  if (ahead == 0) ahead = st;
  let t = 0;
  for (; t + 1 < tiles; t += 2) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
    let kd = kt;
    let qd = qt;
    const end = kt + tileBytes;
    while (kd < end) {
      const ka = v128.load(kd);
      const kb = v128.load(kd + tileBytes);
      let q = v128.load32_splat(qd);
      a0 = madd(q, ka, a0);
      b0 = madd(q, kb, b0);
      q = v128.load32_splat(qd, 4);
      a1 = madd(q, ka, a1);
      b1 = madd(q, kb, b1);
      q = v128.load32_splat(qd, 8);
      a2 = madd(q, ka, a2);
      b2 = madd(q, kb, b2);
      q = v128.load32_splat(qd, 12);
      a3 = madd(q, ka, a3);
      b3 = madd(q, kb, b3);
      readAhead(ahead);
      ahead += aheadStep;
      kd += 16;
      qd += 32;
    }
    storeColumns(a0, a1, a2, a3, st + (<usize>t << 7));
    storeColumns(b0, b1, b2, b3, st + (<usize>(t + 1) << 7));
    kt = end + tileBytes;
  }
  if (t < tiles) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let kd = kt;
    let qd = qt;
    const end = kt + tileBytes;
    while (kd < end) {
      const ka = v128.load(kd);
      a0 = madd(v128.load32_splat(qd), ka, a0);
      a1 = madd(v128.load32_splat(qd, 4), ka, a1);
      a2 = madd(v128.load32_splat(qd, 8), ka, a2);
      a3 = madd(v128.load32_splat(qd, 12), ka, a3);
      readAhead(ahead);
      ahead += aheadStep;
      kd += 16;
      qd += 32;
    }
    storeColumns(a0, a1, a2, a3, st + (<usize>t << 7));
  }
}

/** Reads the word at `at` and drops it: a load may trap, so no compiler removes it, and its cache line comes in. */
// @ts-ignore: decorator
@inline function readAhead(at: usize): void {
  load<u32>(at);
}

/**
 * The step that spreads `steps` reads over [ahead, ahead + bytes) without
 * passing its end (at most 64: a read per cache line); 0 (one word read
 * again and again) when there is nothing to read.
 */
// @ts-ignore: decorator
@inline function aheadStepFor(ahead: usize, bytes: usize, steps: usize): usize {
  return ahead == 0 || steps == 0 ? 0 : min<usize>(64, bytes / steps);
}

/** Stores lane c of rows r0 .. r3 (the scores of key c for rows 0-3) at st[c][0..3], c < 4. */
// @ts-ignore: decorator
@inline function storeColumns(r0: v128, r1: v128, r2: v128, r3: v128, st: usize): void {
  const ab01 = f32x4.shuffle(r0, r1, 0, 4, 1, 5);
  const cd01 = f32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const ab23 = f32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const cd23 = f32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(st, f32x4.shuffle(ab01, cd01, 0, 1, 4, 5));
  v128.store(st, f32x4.shuffle(ab01, cd01, 2, 3, 6, 7), 32);
  v128.store(st, f32x4.shuffle(ab23, cd23, 0, 1, 4, 5), 64);
  v128.store(st, f32x4.shuffle(ab23, cd23, 2, 3, 6, 7), 96);
}

/**
 * Hides key j0 + t (t < count) from the rows whose visible keys end before
 * it (j >= limit): a prefix mask, with limits lim0 for rows 0-3 and lim1 for
 * rows 4-7 of the tile.
 */
// @ts-ignore: decorator
@inline export function maskPrefix(st: usize, count: i32, j0: i32, lim0: v128, lim1: v128): void {
  const minusInf = f32x4.splat(NEG_INF);
  for (let t = 0; t < count; t++) {
    const j = i32x4.splat(j0 + t);
    const row = st + (<usize>t << 5);
    v128.store(row, v128.bitselect(minusInf, v128.load(row), i32x4.ge_s(j, lim0)));
    v128.store(row, v128.bitselect(minusInf, v128.load(row, 16), i32x4.ge_s(j, lim1)), 16);
  }
}

/** Causal: hides key j from the tile's row at position p0 + r when j > p. */
export function maskCausal(st: usize, count: i32, j0: i32, p0: i32): void {
  // row r sees the prefix of keys 0 ..= p0 + r
  const lim0 = i32x4.add(i32x4.splat(p0 + 1), v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0));
  maskPrefix(st, count, j0, lim0, i32x4.add(lim0, i32x4.splat(4)));
}

/** Hides key j0 + t from the rows whose window starts after it (j < low), lows lo0 for rows 0-3 and lo1 for rows 4-7. */
// @ts-ignore: decorator
@inline export function maskBelow(st: usize, count: i32, j0: i32, lo0: v128, lo1: v128): void {
  const minusInf = f32x4.splat(-Infinity);
  for (let t = 0; t < count; t++) {
    const j = i32x4.splat(j0 + t);
    const row = st + (<usize>t << 5);
    v128.store(row, v128.bitselect(minusInf, v128.load(row), i32x4.gt_s(lo0, j)));
    v128.store(row, v128.bitselect(minusInf, v128.load(row, 16), i32x4.gt_s(lo1, j)), 16);
  }
}

/** A sliding window: hides key j from the tile's row at position p0 + r when j < p0 + r (p0: the first row's lowest visible key). */
export function maskWindowStart(st: usize, count: i32, j0: i32, p0: i32): void {
  const lo0 = i32x4.add(i32x4.splat(p0), v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0));
  maskBelow(st, count, j0, lo0, i32x4.add(lo0, i32x4.splat(4)));
}

/** Adds a per-key bias (0 for a visible key, -inf for a hidden one) to every row. */
export function addKeyBias(st: usize, count: i32, bias: usize): void {
  for (let t = 0; t < count; t++) {
    const b = v128.load32_splat(bias + (<usize>t << 2));
    const row = st + (<usize>t << 5);
    v128.store(row, f32x4.add(v128.load(row), b));
    v128.store(row, f32x4.add(v128.load(row, 16), b), 16);
  }
}

/**
 * Online softmax over one block of scores: new running max m, rescale factor
 * alpha = exp(m_old - m_new) (stored for accumulateValues), st <- exp(st - m),
 * l <- l * alpha + row sums. A row that has seen only -inf keeps m = -inf and
 * gets p = 0 (it subtracts 0 instead of -inf, so no NaN appears).
 */
export function softmaxBlock(st: usize, count: i32, state: usize): void {
  softmaxRows(st, count, state, false);
}

/** softmaxBlock for rows 0-3 only (a tile of at most 4 rows): the same lanes, the same bits. */
export function softmaxBlock4(st: usize, count: i32, state: usize): void {
  softmaxRows(st, count, state, true);
}

/**
 * The larger of `from` and every st[t][lanes at offset], t < count: pmax
 * (one instruction, where max's NaN and signed-zero rules take seven), in
 * four independent chains so that the loop runs at throughput, not at the
 * latency of one chain. A NaN score still reaches the output through exp.
 */
// @ts-ignore: decorator
@inline function columnMax(st: usize, count: i32, offset: usize, from: v128): v128 {
  let a = from, b = from, c = from, d = from;
  let row = st + offset;
  const end = row + (<usize>(count & ~3) << 5);
  for (; row < end; row += 128) {
    a = f32x4.pmax(a, v128.load(row));
    b = f32x4.pmax(b, v128.load(row, 32));
    c = f32x4.pmax(c, v128.load(row, 64));
    d = f32x4.pmax(d, v128.load(row, 96));
  }
  for (let t = count & ~3; t < count; t++) a = f32x4.pmax(a, v128.load(st + offset + (<usize>t << 5)));
  return f32x4.pmax(f32x4.pmax(a, b), f32x4.pmax(c, d));
}

/** softmaxBlock of rows 0-3, and of rows 4-7 unless `narrow` (in the same loops: two exp chains interleave). */
// @ts-ignore: decorator
@inline function softmaxRows(st: usize, count: i32, state: usize, narrow: bool): void {
  const old0 = v128.load(state);
  const old1 = narrow ? old0 : v128.load(state, 16);
  const max0 = columnMax(st, count, 0, old0);
  const max1 = narrow ? old0 : columnMax(st, count, 16, old1);
  const minusInf = f32x4.splat(NEG_INF);
  // subtract 0 where nothing is visible yet: exp(-inf - 0) = 0 instead of NaN
  const safe0 = v128.andnot(max0, f32x4.eq(max0, minusInf));
  const safe1 = v128.andnot(max1, f32x4.eq(max1, minusInf));
  let sum0 = f32x4.splat(0);
  let sum1 = f32x4.splat(0);
  for (let t = 0; t < count; t++) {
    const row = st + (<usize>t << 5);
    const p0 = expNonPositive(f32x4.sub(v128.load(row), safe0));
    v128.store(row, p0);
    sum0 = f32x4.add(sum0, p0);
    if (!narrow) {
      const p1 = expNonPositive(f32x4.sub(v128.load(row, 16), safe1));
      v128.store(row, p1, 16);
      sum1 = f32x4.add(sum1, p1);
    }
  }
  v128.store(state, max0);
  const alpha0 = expNonPositive(f32x4.sub(old0, safe0));
  v128.store(state, madd(v128.load(state, 32), alpha0, sum0), 32);
  v128.store(state, alpha0, 64);
  if (!narrow) {
    const alpha1 = expNonPositive(f32x4.sub(old1, safe1));
    v128.store(state, max1, 16);
    v128.store(state, madd(v128.load(state, 48), alpha1, sum1), 48);
    v128.store(state, alpha1, 80);
  }
}

/**
 * o[r][:] = o[r][:] * alpha[r] + sum_t st[t][r] * vp[j0 + t][:], in tiles of
 * 4 rows x 8 value columns: 8 accumulators, 2 value vectors, 4 splats.
 * vp: the block's first value row of the row layout vp[j][dvPad].
 */
export function accumulateValues(st: usize, count: i32, vp: usize, dvPad: i32, o: usize, state: usize): void {
  accumulateFour(st, count, vp, 32, <usize>dvPad << 2, dvPad, o, state, 0, false, 0, 0);
  accumulateFour(st, count, vp, 32, <usize>dvPad << 2, dvPad, o, state, 4, false, 0, 0);
}

/**
 * accumulateValues for rows r0 .. r0 + 3 of the tile only (r0: 0 or 4; the
 * other rows keep their output and state), value rows keyBytes apart.
 */
export function accumulateFourRows(st: usize, count: i32, vp: usize, keyBytes: usize, dvPad: i32, o: usize, state: usize, r0: i32): void {
  accumulateFour(st, count, vp, 32, keyBytes, dvPad, o, state, r0, false, 0, 0);
}

/**
 * accumulateValues over value rows in either layout, for rows 0-3 only when
 * `narrow` (a tile of at most 4 rows: the same sums, the same bits): strip c
 * of key j0 + t at `values + (c / 8) stripBytes + t keyBytes`. A narrow tile
 * also reads ahead over [ahead, ahead + aheadBytes), as scoreBlock4 does.
 */
export function accumulateRows(
  st: usize, count: i32, values: usize, stripBytes: usize, keyBytes: usize, dvPad: i32, o: usize, state: usize, narrow: bool, ahead: usize, aheadBytes: usize,
): void {
  if (narrow) {
    const aheadStep = aheadStepFor(ahead, aheadBytes, <usize>(dvPad >> 3) * count);
    accumulateFour(st, count, values, stripBytes, keyBytes, dvPad, o, state, 0, true, ahead != 0 ? ahead : st, aheadStep);
    return;
  }
  accumulateFour(st, count, values, stripBytes, keyBytes, dvPad, o, state, 0, false, 0, 0);
  accumulateFour(st, count, values, stripBytes, keyBytes, dvPad, o, state, 4, false, 0, 0);
}

/** accumulateValues for rows r0 .. r0 + 3, reading ahead (one word per step) when `reading` (a constant where it is inlined). */
// @ts-ignore: decorator
@inline function accumulateFour(
  st: usize, count: i32, values: usize, stripBytes: usize, keyBytes: usize, dvPad: i32, o: usize, state: usize, r0: i32, reading: bool, ahead: usize, aheadStep: usize,
): void {
  const rowBytes = <usize>dvPad << 2;
  {
    const alphaR = state + 64 + (<usize>r0 << 2);
    const s0 = v128.load32_splat(alphaR);
    const s1 = v128.load32_splat(alphaR, 4);
    const s2 = v128.load32_splat(alphaR, 8);
    const s3 = v128.load32_splat(alphaR, 12);
    let strip = values;
    for (let c = 0; c < dvPad; c += 8) {
      const oc = o + (<usize>(r0 * dvPad + c) << 2);
      let a0 = f32x4.mul(v128.load(oc), s0);
      let a1 = f32x4.mul(v128.load(oc, 16), s0);
      let b0 = f32x4.mul(v128.load(oc + rowBytes), s1);
      let b1 = f32x4.mul(v128.load(oc + rowBytes, 16), s1);
      let c0 = f32x4.mul(v128.load(oc + 2 * rowBytes), s2);
      let c1 = f32x4.mul(v128.load(oc + 2 * rowBytes, 16), s2);
      let e0 = f32x4.mul(v128.load(oc + 3 * rowBytes), s3);
      let e1 = f32x4.mul(v128.load(oc + 3 * rowBytes, 16), s3);
      let p = st + (<usize>r0 << 2);
      let vr = strip;
      const end = p + (<usize>count << 5);
      while (p < end) {
        const v0 = v128.load(vr);
        const v1 = v128.load(vr, 16);
        let w = v128.load32_splat(p);
        a0 = madd(w, v0, a0);
        a1 = madd(w, v1, a1);
        w = v128.load32_splat(p, 4);
        b0 = madd(w, v0, b0);
        b1 = madd(w, v1, b1);
        w = v128.load32_splat(p, 8);
        c0 = madd(w, v0, c0);
        c1 = madd(w, v1, c1);
        w = v128.load32_splat(p, 12);
        e0 = madd(w, v0, e0);
        e1 = madd(w, v1, e1);
        if (reading) {
          readAhead(ahead);
          ahead += aheadStep;
        }
        p += 32;
        vr += keyBytes;
      }
      v128.store(oc, a0);
      v128.store(oc, a1, 16);
      v128.store(oc + rowBytes, b0);
      v128.store(oc + rowBytes, b1, 16);
      v128.store(oc + 2 * rowBytes, c0);
      v128.store(oc + 2 * rowBytes, c1, 16);
      v128.store(oc + 3 * rowBytes, e0);
      v128.store(oc + 3 * rowBytes, e1, 16);
      strip += stripBytes;
    }
  }
}

/** Writes rows i0 .. i0+8 (below N) of the output head (rows ld apart): o / l, or 0 where l = 0 (nothing visible). */
export function finishRows(o: usize, state: usize, dvPad: i32, out: usize, i0: i32, N: i32, Dv: i32, ld: i32): void {
  for (let r = 0; r < ROWS; r++) {
    const i = i0 + r;
    if (i >= N) break;
    const l = load<f32>(state + 32 + (<usize>r << 2));
    scaleRow(out + <usize>i * (<usize>ld << 2), o + (<usize>(r * dvPad) << 2), l > 0 ? 1 / l : 0, Dv);
  }
}

/** lse[i] = m + log l of rows i0 .. i0+8 (below N), or +inf where nothing is visible (l = 0). */
export function rowLogSumExp(state: usize, i0: i32, N: i32, lse: usize): void {
  for (let r = 0; r < ROWS; r++) {
    const i = i0 + r;
    if (i >= N) break;
    const m = load<f32>(state + (<usize>r << 2));
    const l = load<f32>(state + 32 + (<usize>r << 2));
    store<f32>(lse + (<usize>i << 2), l > 0 ? m + Mathf.log(l) : Infinity);
  }
}
