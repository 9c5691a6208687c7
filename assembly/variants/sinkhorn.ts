// `sinkhorn`: Sparse Sinkhorn attention (Tay et al. 2020). Mirrors
// src/variants/sinkhorn.ts (math: src/reference/sinkhorn.ts). Per head:
//   1. sinkhornSortMatrix: block summaries, sort logits R (one GEMM, or the
//      user's), then S by Sinkhorn balancing in log space (or, causal, a
//      softmax over past blocks), and each row's main source block.
//   2. sinkhornSortColumns: sorted keys and values, S . blocks, one GEMM each
//      (k and v seen as [nb][b * width] matrices).
//   3. sinkhornAttendBlocks: each query block attends [sorted block ; own
//      block] (2b keys) with the online-softmax engine of `full`.
//
// Scratch of one head (floats, every part a multiple of 4 so 16-byte aligned):
//   S[nb][nbPad] | main[nbPad] (i32) | colMax[nbPad] | colShift[nbPad]
//   | qbar[nb][D] | kbar[nb][D] | kbarT[D][nbPad]
// Work memory of one sinkhornSortColumns call (one per thread): strip[nb][STRIP].
// S holds the logits, then log S, then S. Padding columns of S stay -inf / 0.
import { gemm, transpose } from '../core/gemm';
import { KEY_TILE, keyCountPadded, packedBias, packedKeys, packedValues, valueWidthPadded } from '../core/flash-layout';
import { expNonPositive, roundUp } from '../core/simd';
import { fullAttentionRows } from './full';

const NEG_INF: f32 = -Infinity;

/**
 * Columns of k or v per strip of the sorted-row GEMM: a strip [nb][STRIP]
 * (128 KiB at nb = 256) stays in L2 while all the rows of S walk over it
 * (measured at N = 16384, b = 64: 128 a little faster than 16, 32, 64, 256).
 */
const STRIP: i32 = 128;

// @ts-ignore: decorator
@inline export function sinkhornRowFloats(nb: i32): i32 {
  return roundUp(nb, 4);
}

// @ts-ignore: decorator
@inline export function sinkhornMainOf(scratch: usize, nb: i32): usize {
  return scratch + (<usize>(nb * sinkhornRowFloats(nb)) << 2);
}

// @ts-ignore: decorator
@inline function colMaxOf(scratch: usize, nb: i32): usize {
  return sinkhornMainOf(scratch, nb) + (<usize>sinkhornRowFloats(nb) << 2);
}

// @ts-ignore: decorator
@inline function colShiftOf(scratch: usize, nb: i32): usize {
  return colMaxOf(scratch, nb) + (<usize>sinkhornRowFloats(nb) << 2);
}

// @ts-ignore: decorator
@inline export function sinkhornQbarOf(scratch: usize, nb: i32): usize {
  return colShiftOf(scratch, nb) + (<usize>sinkhornRowFloats(nb) << 2);
}

// @ts-ignore: decorator
@inline export function sinkhornKbarOf(scratch: usize, nb: i32, D: i32): usize {
  return sinkhornQbarOf(scratch, nb) + (<usize>roundUp(nb * D, 4) << 2);
}

// @ts-ignore: decorator
@inline function kbarTOf(scratch: usize, nb: i32, D: i32): usize {
  return sinkhornKbarOf(scratch, nb, D) + (<usize>roundUp(nb * D, 4) << 2);
}

/** Bytes of one head's scratch (sort matrix, summaries): O(nb^2 + nb D). */
export function sinkhornScratchBytes(N: i32, b: i32, D: i32): f64 {
  const nb = <f64>(N / b);
  const nbPad = <f64>sinkhornRowFloats(N / b);
  return (nb * nbPad + 3 * nbPad + 2 * <f64>roundUp((N / b) * D, 4) + <f64>D * nbPad) * 4;
}

/** Bytes of one sinkhornSortColumns call's work memory (a strip of k or v). */
export function sinkhornStripBytes(N: i32, b: i32): f64 {
  return <f64>(N / b) * <f64>STRIP * 4;
}

/** dst[d] = weight * sum of rows [0, rows) of x ([rows][D]) at column d; four columns per vector. */
function blockSum(x: usize, rows: i32, D: i32, weight: f32, dst: usize): void {
  const rowBytes = <usize>D << 2;
  const end = x + <usize>rows * rowBytes;
  const D4 = D & ~3;
  for (let d = 0; d < D4; d += 4) {
    let acc = f32x4.splat(0);
    for (let p = x + (<usize>d << 2); p < end; p += rowBytes) acc = f32x4.add(acc, v128.load(p));
    v128.store(dst + (<usize>d << 2), f32x4.mul(acc, f32x4.splat(weight)));
  }
  for (let d = D4; d < D; d++) {
    let acc: f32 = 0;
    for (let p = x + (<usize>d << 2); p < end; p += rowBytes) acc += load<f32>(p);
    store<f32>(dst + (<usize>d << 2), acc * weight);
  }
}

/** Horizontal max of four lanes. */
// @ts-ignore: decorator
@inline function maxLanes(x: v128): f32 {
  return max(max(f32x4.extract_lane(x, 0), f32x4.extract_lane(x, 1)), max(f32x4.extract_lane(x, 2), f32x4.extract_lane(x, 3)));
}

// @ts-ignore: decorator
@inline function sumLanes(x: v128): f32 {
  return (f32x4.extract_lane(x, 0) + f32x4.extract_lane(x, 1)) + (f32x4.extract_lane(x, 2) + f32x4.extract_lane(x, 3));
}

/**
 * row[t] -= log sum_t exp(row[t]) over nbPad entries (the padding ones are
 * -inf and stay so); returns what it subtracted. A row of only -inf is left
 * as it is (S row empty), 0 subtracted.
 */
function normaliseRow(row: usize, nbPad: i32): f32 {
  const end = row + (<usize>nbPad << 2);
  let m = f32x4.splat(NEG_INF);
  for (let p = row; p < end; p += 16) m = f32x4.max(m, v128.load(p));
  const top = maxLanes(m);
  if (top == NEG_INF) return 0;
  const shift = f32x4.splat(top);
  let s = f32x4.splat(0);
  for (let p = row; p < end; p += 16) s = f32x4.add(s, expNonPositive(f32x4.sub(v128.load(p), shift)));
  const lse = top + <f32>Math.log(<f64>sumLanes(s));
  const vLse = f32x4.splat(lse);
  for (let p = row; p < end; p += 16) v128.store(p, f32x4.sub(v128.load(p), vLse));
  return lse;
}

/**
 * L[u][t] -= log sum_u exp(L[u][t]) for every column t, four columns per
 * vector. Columns of only -inf (padding) subtract 0 and stay -inf.
 */
function normaliseColumns(S: usize, nb: i32, nbPad: i32, colMax: usize, colShift: usize): void {
  const rowBytes = <usize>nbPad << 2;
  const minusInf = f32x4.splat(NEG_INF);
  for (let c = 0; c < nbPad; c += 4) v128.store(colMax + (<usize>c << 2), minusInf);
  for (let u = 0; u < nb; u++) {
    const row = S + <usize>u * rowBytes;
    for (let c = 0; c < nbPad; c += 4) {
      const at = colMax + (<usize>c << 2);
      v128.store(at, f32x4.max(v128.load(at), v128.load(row + (<usize>c << 2))));
    }
  }
  // colShift = 0 where a column is all -inf, so that exp(-inf - 0) = 0 and no NaN appears
  for (let c = 0; c < nbPad; c += 4) {
    const at = colMax + (<usize>c << 2);
    const m = v128.load(at);
    v128.store(at, v128.andnot(m, f32x4.eq(m, minusInf)));
    v128.store(colShift + (<usize>c << 2), f32x4.splat(0));
  }
  for (let u = 0; u < nb; u++) {
    const row = S + <usize>u * rowBytes;
    for (let c = 0; c < nbPad; c += 4) {
      const at = colShift + (<usize>c << 2);
      const e = expNonPositive(f32x4.sub(v128.load(row + (<usize>c << 2)), v128.load(colMax + (<usize>c << 2))));
      v128.store(at, f32x4.add(v128.load(at), e));
    }
  }
  for (let c = 0; c < nbPad; c++) {
    const sum = load<f32>(colShift + (<usize>c << 2));
    const m = load<f32>(colMax + (<usize>c << 2));
    store<f32>(colShift + (<usize>c << 2), sum > 0 ? m + <f32>Math.log(<f64>sum) : 0);
  }
  for (let u = 0; u < nb; u++) {
    const row = S + <usize>u * rowBytes;
    for (let c = 0; c < nbPad; c += 4) {
      const at = row + (<usize>c << 2);
      v128.store(at, f32x4.sub(v128.load(at), v128.load(colShift + (<usize>c << 2))));
    }
  }
}

/**
 * The sort matrix S of one head, and each row's main source block
 * (argmax_t S_ut, the first one on ties; -1 when the row is empty).
 * q, k: this head's [N][D]; logits: this head's given [nb][nb] sort logits,
 * or 0 to take R_ut = scale qbar_u . kbar_t (causal: qbar_u = the block's
 * first query). Not causal: L = R / temperature, `iterations` times rows
 * then columns minus their log-sum-exp, S = exp(L). Causal: row u is the
 * softmax of R_u / temperature over t < u.
 */
export function sinkhornSortMatrix(
  q: usize, k: usize, N: i32, b: i32, D: i32, scale: f32, temperature: f32,
  iterations: i32, causal: bool, logits: usize, scratch: usize,
): void {
  sinkhornLogits(q, k, N, b, D, scale, temperature, causal, logits, scratch);
  sinkhornBalance(N / b, iterations, causal, scratch, 0);
  sinkhornExp(N / b, causal || iterations > 0, scratch);
}

/**
 * S's first step: L = R / temperature into S (the scratch's first part),
 * -inf where causal hides a block and in the padding columns. Without given
 * logits, qbar and kbar stay in the scratch (qbar times scale / temperature
 * / its rows, kbar times 1 / b), the factors of L = qbar kbar^T.
 */
export function sinkhornLogits(
  q: usize, k: usize, N: i32, b: i32, D: i32, scale: f32, temperature: f32, causal: bool, logits: usize, scratch: usize,
): void {
  const nb = N / b;
  const nbPad = sinkhornRowFloats(nb);
  const rowBytes = <usize>nbPad << 2;
  const S = scratch;
  if (logits != 0) {
    for (let u = 0; u < nb; u++) {
      for (let t = 0; t < nb; t++) {
        store<f32>(S + <usize>u * rowBytes + (<usize>t << 2), load<f32>(logits + (<usize>(u * nb + t) << 2)) / temperature);
      }
    }
  } else {
    const qbar = sinkhornQbarOf(scratch, nb);
    const kbar = sinkhornKbarOf(scratch, nb, D);
    const kbarT = kbarTOf(scratch, nb, D);
    // qbar carries scale / temperature, so that the GEMM gives L directly
    const qRows = causal ? 1 : b;
    const qWeight: f32 = scale / temperature / <f32>qRows;
    const kWeight: f32 = 1 / <f32>b;
    for (let u = 0; u < nb; u++) {
      blockSum(q + (<usize>(u * b * D) << 2), qRows, D, qWeight, qbar + (<usize>(u * D) << 2));
      blockSum(k + (<usize>(u * b * D) << 2), b, D, kWeight, kbar + (<usize>(u * D) << 2));
    }
    transpose(nb, D, kbar, D, kbarT, nbPad);
    gemm(nb, nb, D, qbar, D, 1, kbarT, nbPad, S, nbPad, false);
  }
  for (let u = 0; u < nb; u++) {
    const row = S + <usize>u * rowBytes;
    // causal: only past blocks t < u; padding columns never take part
    for (let t = causal ? u : nb; t < nbPad; t++) store<f32>(row + (<usize>t << 2), NEG_INF);
  }
}

/**
 * S's second step, in log space: causal, each row minus its log-sum-exp;
 * else `iterations` times the rows then the columns. With `record` != 0,
 * step s's row and column log-sum-exps go to record + 2 s nbPad floats and
 * the nbPad after (what the backward needs to walk the steps back).
 */
export function sinkhornBalance(nb: i32, iterations: i32, causal: bool, scratch: usize, record: usize): void {
  const nbPad = sinkhornRowFloats(nb);
  const rowBytes = <usize>nbPad << 2;
  const S = scratch;
  if (causal) {
    for (let u = 0; u < nb; u++) normaliseRow(S + <usize>u * rowBytes, nbPad);
    return;
  }
  const colShift = colShiftOf(scratch, nb);
  for (let step = 0; step < iterations; step++) {
    const rowLse = record + <usize>(2 * step) * rowBytes;
    for (let u = 0; u < nb; u++) {
      const lse = normaliseRow(S + <usize>u * rowBytes, nbPad);
      if (record != 0) store<f32>(rowLse + (<usize>u << 2), lse);
    }
    normaliseColumns(S, nb, nbPad, colMaxOf(scratch, nb), colShift);
    if (record != 0) memory.copy(rowLse + rowBytes, colShift, rowBytes);
  }
}

/**
 * S's last step: S = exp(L) in place, and each row's main source block.
 * Without balancing (`balanced` false) L may be positive, beyond the
 * vector exp's range.
 */
export function sinkhornExp(nb: i32, balanced: bool, scratch: usize): void {
  const nbPad = sinkhornRowFloats(nb);
  const rowBytes = <usize>nbPad << 2;
  const S = scratch;
  const main = sinkhornMainOf(scratch, nb);
  for (let u = 0; u < nb; u++) {
    const row = S + <usize>u * rowBytes;
    if (balanced) {
      for (let t = 0; t < nbPad; t += 4) v128.store(row + (<usize>t << 2), expNonPositive(v128.load(row + (<usize>t << 2))));
    } else {
      for (let t = 0; t < nbPad; t++) store<f32>(row + (<usize>t << 2), <f32>Math.exp(<f64>load<f32>(row + (<usize>t << 2))));
    }
    let best = 0;
    let top = load<f32>(row);
    for (let t = 1; t < nb; t++) {
      const s = load<f32>(row + (<usize>t << 2));
      if (s > top) {
        top = s;
        best = t;
      }
    }
    store<i32>(main + (<usize>u << 2), top > 0 ? best : -1);
  }
}

/** Columns per strip: callers of sinkhornSortColumns split at multiples of it. */
export function sinkhornStripWidth(): i32 {
  return STRIP;
}

/**
 * Columns [colStart, colEnd) of the sorted blocks xs = S . x, x of one head
 * seen as [nb][b * width] (block t's rows one after the other): row u of xs
 * is block u's sorted block [b][width]. Each strip of STRIP columns of x is
 * first copied into contiguous work memory (strip: sinkhornStripBytes), then
 * multiplied by all the rows of S: x's rows are b * width floats apart, often
 * a large power of two, which walking down its columns would meet badly in
 * cache. Causal rows only read their past blocks (S is 0 beyond), 8 rows at
 * a time. Splitting columns at multiples of STRIP leaves every strip, and so
 * every result bit, as in one call.
 */
export function sinkhornSortColumns(
  x: usize, width: i32, N: i32, b: i32, causal: bool, scratch: usize, strip: usize, xs: usize, colStart: i32, colEnd: i32,
): void {
  const nb = N / b;
  const nbPad = sinkhornRowFloats(nb);
  const cols = b * width;
  // causal: no row reads the last block
  const K = causal ? nb - 1 : nb;
  for (let j0 = colStart; j0 < colEnd; j0 += STRIP) {
    const w = min(STRIP, colEnd - j0);
    for (let t = 0; t < K; t++) memory.copy(strip + (<usize>(t * STRIP) << 2), x + (<usize>(t * cols + j0) << 2), <usize>w << 2);
    const out = xs + (<usize>j0 << 2);
    if (!causal) {
      gemm(nb, w, nb, scratch, nbPad, 1, strip, STRIP, out, cols, false);
    } else {
      for (let u0 = 0; u0 < nb; u0 += 8) {
        const u1 = min(nb, u0 + 8);
        // rows u < u1 weigh blocks t < u1 - 1 only
        gemm(u1 - u0, w, u1 - 1, scratch + (<usize>(u0 * nbPad) << 2), nbPad, 1, strip, STRIP, out + (<usize>(u0 * cols) << 2), cols, false);
      }
    }
  }
}

/** Packs rows [0, count) of x ([count][D]) as keys j0 .. j0 + count of key tiles of 4. */
function packKeyRows(x: usize, count: i32, D: i32, kp: usize, j0: i32): void {
  for (let n = 0; n < count; n++) {
    const j = j0 + n;
    const dst = kp + (<usize>((j >> 2) * D * KEY_TILE + (j & 3)) << 2);
    const src = x + (<usize>(n * D) << 2);
    for (let d = 0; d < D; d++) store<f32>(dst + (<usize>d << 4), load<f32>(src + (<usize>d << 2)));
  }
}

/**
 * Packs query block u's 2b keys (sorted block, then own block), values and
 * key bias in packHead's layout. A sorted key (u, r) is hidden when row S_u
 * is empty or padding hides key main_u * b + r; own keys follow padding.
 */
function packBlock(
  k: usize, v: usize, ks: usize, vs: usize, u: i32, b: i32, D: i32, Dv: i32,
  keyPadding: usize, main: i32, pack: usize,
): void {
  const Nk = 2 * b;
  const nPad = keyCountPadded(Nk);
  const kp = packedKeys(pack);
  const vp = packedValues(pack, Nk, D);
  const bias = packedBias(pack, Nk, D, Dv);
  const dvPad = valueWidthPadded(Dv);
  const rowBytes = <usize>dvPad << 2;
  packKeyRows(ks + (<usize>(u * b * D) << 2), b, D, kp, 0);
  packKeyRows(k + (<usize>(u * b * D) << 2), b, D, kp, b);
  for (let j = Nk; j < nPad; j++) {
    const dst = kp + (<usize>((j >> 2) * D * KEY_TILE + (j & 3)) << 2);
    for (let d = 0; d < D; d++) store<f32>(dst + (<usize>d << 4), 0);
  }
  memory.fill(vp, 0, <usize>nPad * rowBytes);
  const valueBytes = <usize>Dv << 2;
  for (let r = 0; r < b; r++) {
    memory.copy(vp + <usize>r * rowBytes, vs + (<usize>((u * b + r) * Dv) << 2), valueBytes);
    memory.copy(vp + <usize>(b + r) * rowBytes, v + (<usize>((u * b + r) * Dv) << 2), valueBytes);
  }
  let hidden = nPad > Nk;
  for (let r = 0; r < b; r++) {
    const sortedVisible = main >= 0 && (keyPadding == 0 || load<u8>(keyPadding + main * b + r) != 0);
    const ownVisible = keyPadding == 0 || load<u8>(keyPadding + u * b + r) != 0;
    if (!sortedVisible || !ownVisible) hidden = true;
    store<f32>(bias + (<usize>r << 2), sortedVisible ? 0 : NEG_INF);
    store<f32>(bias + (<usize>(b + r) << 2), ownVisible ? 0 : NEG_INF);
  }
  for (let j = Nk; j < nPad; j++) store<f32>(bias + (<usize>j << 2), NEG_INF);
  store<i32>(pack, hidden ? 1 : 0);
}

/**
 * Query blocks [uStart, uEnd) of one head: block u's b queries attend its
 * sorted block (ks, vs rows u b .. u b + b) and its own block, by the online
 * softmax of fullAttentionRows with Nq = b, Nk = 2b: its bottom-right causal
 * alignment (key j visible to row i iff j <= i + b) keeps every sorted key
 * and applies causal inside the own block. q, k: [N][D]; v, out: [N][Dv];
 * keyPadding: this batch's u8 [N] row, or 0. pack: packBytes(2b, D, Dv);
 * tiles: groupBytes(D, Dv).
 */
export function sinkhornAttendBlocks(
  q: usize, k: usize, v: usize, ks: usize, vs: usize, out: usize, N: i32, b: i32, D: i32, Dv: i32,
  scale: f32, causal: bool, keyPadding: usize, scratch: usize, pack: usize, tiles: usize, uStart: i32, uEnd: i32,
): void {
  const nb = N / b;
  const main = sinkhornMainOf(scratch, nb);
  for (let u = uStart; u < uEnd; u++) {
    packBlock(k, v, ks, vs, u, b, D, Dv, keyPadding, load<i32>(main + (<usize>u << 2)), pack);
    const qBlock = q + (<usize>(u * b * D) << 2);
    const outBlock = out + (<usize>(u * b * Dv) << 2);
    fullAttentionRows(qBlock, outBlock, b, 2 * b, D, Dv, D, Dv, scale, causal, 0, pack, tiles, 0, b);
  }
}
