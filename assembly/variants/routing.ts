// `routing`: the Routing Transformer (Roy et al. 2021). Per batch and head:
// cosine similarities of the normalised queries and keys to the normalised
// centroids (GEMM), per cluster the top-w queries and the top-w keys (partial
// selection behind a SIMD threshold test: no full sort, ties to the lower
// index), attention of the member queries over the member keys through the
// online-softmax engine over gathered rows, and the mean over the clusters a
// query joined (and saw a key in). Mirrors src/variants/routing.ts; the math
// is src/reference/routing.ts.
//
// Per head, the caller runs: routingPrepareCentroids; for the queries, then
// the keys: inverseNorms, routingRouteStart, routingRouteRows (row
// ranges), routingRouteFinish (cluster ranges); then routingStart,
// routingAttend (cluster ranges), routingFinish.
import { accumulateValues, scoreBlock, softmaxBlock, startRows } from '../core/flash';
import { KEY_BLOCK, ROWS, keyCountPadded, tileBytes, tileBytesExact, tileOutput, tileScores, tileState, valueWidthPadded } from '../core/flash-layout';
import { gemm } from '../core/gemm';
import { gatherKeyTiles, gatherQueryTile, gatherValues } from '../core/gather';
import { madd } from '../core/simd';

const NEG_INF: f32 = -Infinity;
/** Rows per similarity GEMM block: the block's cosines [64][C] are scanned while in cache. */
const SIM_ROWS: i32 = 64;
/** Position of a query row past the tile's end: sees nothing. */
const NO_QUERY: i32 = -0x40000000;

// ---------------------------------------------------------------- routing

/** muT[d][c] = mu_c[d] / max(|mu_c|, 1e-12): normalised centroids, transposed as the GEMM's B. */
export function routingPrepareCentroids(mu: usize, C: i32, D: i32, muT: usize): void {
  for (let c = 0; c < C; c++) {
    const row = mu + (<usize>(c * D) << 2);
    let sq: f32 = 0;
    for (let d = 0; d < D; d++) {
      const v = load<f32>(row + (<usize>d << 2));
      sq += v * v;
    }
    const inv: f32 = 1 / max(Mathf.sqrt(sq), <f32>1e-12);
    for (let d = 0; d < D; d++) store<f32>(muT + (<usize>(d * C + c) << 2), load<f32>(row + (<usize>d << 2)) * inv);
  }
}

// @ts-ignore: decorator
@inline function better(sa: f32, ia: i32, sb: f32, ib: i32): bool {
  return sa > sb || (sa == sb && ia < ib);
}

/**
 * Reorders the pairs (score, index) of sc[0..count), ix[0..count) so that
 * position k holds the (k+1)-th best (larger score first, ties to the lower
 * index) and the positions before it better ones: Wirth's selection,
 * O(count) expected.
 */
function nthBest(sc: usize, ix: usize, count: i32, k: i32): void {
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const ps = load<f32>(sc + (<usize>k << 2));
    const pi = load<i32>(ix + (<usize>k << 2));
    let i = lo;
    let j = hi;
    do {
      while (better(load<f32>(sc + (<usize>i << 2)), load<i32>(ix + (<usize>i << 2)), ps, pi)) i++;
      while (better(ps, pi, load<f32>(sc + (<usize>j << 2)), load<i32>(ix + (<usize>j << 2)))) j--;
      if (i <= j) {
        const si = load<f32>(sc + (<usize>i << 2));
        const ii = load<i32>(ix + (<usize>i << 2));
        store<f32>(sc + (<usize>i << 2), load<f32>(sc + (<usize>j << 2)));
        store<i32>(ix + (<usize>i << 2), load<i32>(ix + (<usize>j << 2)));
        store<f32>(sc + (<usize>j << 2), si);
        store<i32>(ix + (<usize>j << 2), ii);
        i++;
        j--;
      }
    } while (i <= j);
    if (j < k) lo = i;
    if (k < i) hi = j;
  }
}

/** Candidates a cluster keeps before it cuts them back to its best w. */
const CANDIDATES_PER_MEMBER: i32 = 4;

// Routing scratch, for C clusters and one side of N rows:
//   block[SIM_ROWS][C] | threshold[C] f32 | count[C] i32 | scores[C][4w] f32 | index[C][4w] i32 | bitmap[N/32] u32

/** Bytes of the routing scratch (routingRouteStart, routingRouteRows, routingRouteFinish). */
export function routingRouteBytes(N: i32, C: i32, w: i32): f64 {
  const capacity = <f64>CANDIDATES_PER_MEMBER * min(w, N);
  return (<f64>SIM_ROWS * C + 2 * <f64>C + 2 * C * capacity + <f64>((N + 31) >> 5)) * 4;
}

// @ts-ignore: decorator
@inline function thresholds(scratch: usize, C: i32): usize {
  return scratch + (<usize>(SIM_ROWS * C) << 2);
}

/** Starts one side's selection: every cluster's threshold -inf, no candidates, the bitmap clear. */
export function routingRouteStart(N: i32, C: i32, w: i32, scratch: usize): void {
  const th = thresholds(scratch, C);
  for (let c = 0; c < C; c++) {
    store<f32>(th + (<usize>c << 2), -Infinity);
    store<i32>(th + (<usize>(C + c) << 2), 0);
  }
  const capacity = CANDIDATES_PER_MEMBER * min(w, N);
  memory.fill(th + (<usize>(2 * C + 2 * C * capacity) << 2), 0, <usize>((N + 31) >> 5) << 2);
}

/**
 * Rows [rowStart, rowEnd) of one side (the queries or the keys x [N][D],
 * inverse norms inv): cosines x^_n . mu^_c to every centroid by GEMM, in
 * blocks of rows, and the streaming top-w selection of every cluster: a
 * score above the cluster's threshold joins its candidates (4 clusters per
 * vector compare: most blocks of 4 pass none); when the candidates fill up,
 * selection cuts them back to the best w and the threshold becomes the w-th
 * best. Rows arrive in increasing order, so a later equal score (a higher
 * index) can never beat the threshold: ties go to the lower index. Ranges
 * must run in increasing order; the result does not depend on the split.
 */
export function routingRouteRows(
  x: usize, N: i32, D: i32, inv: usize, muT: usize, C: i32, w: i32, scratch: usize, rowStart: i32, rowEnd: i32,
): void {
  const block = scratch;
  const th = thresholds(scratch, C);
  const counts = th + (<usize>C << 2);
  const capacity = CANDIDATES_PER_MEMBER * min(w, N);
  const scores = counts + (<usize>C << 2);
  const index = scores + (<usize>(C * capacity) << 2);
  const c4 = C & ~3;
  if (N <= w) return; // every row is a member of every cluster
  for (let i0 = rowStart; i0 < rowEnd; i0 += SIM_ROWS) {
    const rows = min(SIM_ROWS, rowEnd - i0);
    gemm(rows, C, D, x + (<usize>(i0 * D) << 2), D, 1, muT, C, block, C, false);
    // the first `capacity` rows join every cluster's candidates (the thresholds are still -inf): no test needed
    const filled = max(0, min(rows, capacity - i0));
    if (filled > 0) {
      for (let c = 0; c < C; c++) {
        const at = <usize>(c * capacity + i0) << 2;
        for (let t = 0; t < filled; t++) {
          store<f32>(scores + at + (<usize>t << 2), load<f32>(block + (<usize>(t * C + c) << 2)) * load<f32>(inv + (<usize>(i0 + t) << 2)));
          store<i32>(index + at + (<usize>t << 2), i0 + t);
        }
        if (i0 + filled < capacity) {
          store<i32>(counts + (<usize>c << 2), i0 + filled);
        } else {
          // full: cut back to the best w, whose last is the threshold
          const sc = scores + (<usize>(c * capacity) << 2);
          nthBest(sc, index + (<usize>(c * capacity) << 2), capacity, w - 1);
          store<i32>(counts + (<usize>c << 2), w);
          store<f32>(th + (<usize>c << 2), load<f32>(sc + (<usize>(w - 1) << 2)));
        }
      }
    }
    for (let t = filled; t < rows; t++) {
      const row = block + (<usize>(t * C) << 2);
      const scale = load<f32>(inv + (<usize>(i0 + t) << 2));
      let c = 0;
      for (; c < C; c += 4) {
        // the cosines of row i0 + t to clusters c .. c+3 against their thresholds
        if (c < c4) {
          const v = f32x4.mul(v128.load(row + (<usize>c << 2)), f32x4.splat(scale));
          if (!v128.any_true(f32x4.gt(v, v128.load(th + (<usize>c << 2))))) continue;
        }
        for (let e = c; e < min(c + 4, C); e++) {
          const v = load<f32>(row + (<usize>e << 2)) * scale;
          if (!(v > load<f32>(th + (<usize>e << 2)))) continue;
          const n = load<i32>(counts + (<usize>e << 2));
          const at = <usize>(e * capacity + n) << 2;
          store<f32>(scores + at, v);
          store<i32>(index + at, i0 + t);
          if (n + 1 < capacity) {
            store<i32>(counts + (<usize>e << 2), n + 1);
          } else {
            const sc = scores + (<usize>(e * capacity) << 2);
            nthBest(sc, index + (<usize>(e * capacity) << 2), capacity, w - 1);
            store<i32>(counts + (<usize>e << 2), w);
            store<f32>(th + (<usize>e << 2), load<f32>(sc + (<usize>(w - 1) << 2)));
          }
        }
      }
    }
  }
}

/**
 * Clusters [cStart, cEnd) of one side, after all its rows: each cluster's
 * best min(w, N) candidates, in increasing index order (marked in a bitmap
 * of the N rows, read back in order), into members[c].
 */
export function routingRouteFinish(N: i32, C: i32, w: i32, scratch: usize, members: usize, cStart: i32, cEnd: i32): void {
  const width = min(w, N);
  const th = thresholds(scratch, C);
  const counts = th + (<usize>C << 2);
  const capacity = CANDIDATES_PER_MEMBER * width;
  const scores = counts + (<usize>C << 2);
  const index = scores + (<usize>(C * capacity) << 2);
  const bitmap = index + (<usize>(C * capacity) << 2);
  const words = (N + 31) >> 5;
  for (let c = cStart; c < cEnd; c++) {
    const out = members + (<usize>(c * width) << 2);
    if (N <= w) {
      for (let n = 0; n < N; n++) store<i32>(out + (<usize>n << 2), n);
      continue;
    }
    const sc = scores + (<usize>(c * capacity) << 2);
    const ix = index + (<usize>(c * capacity) << 2);
    const count = load<i32>(counts + (<usize>c << 2));
    const kept = min(count, w);
    if (count > w) nthBest(sc, ix, count, w - 1);
    for (let t = 0; t < kept; t++) {
      const n = load<i32>(ix + (<usize>t << 2));
      const word = bitmap + (<usize>(n >> 5) << 2);
      store<u32>(word, load<u32>(word) | (<u32>1 << (n & 31)));
    }
    // fewer candidates than w only when scores are NaN: fill up with the first unmarked rows
    for (let n = 0, missing = w - kept; missing > 0; n++) {
      const word = bitmap + (<usize>(n >> 5) << 2);
      const bit = <u32>1 << (n & 31);
      if ((load<u32>(word) & bit) == 0) {
        store<u32>(word, load<u32>(word) | bit);
        missing--;
      }
    }
    // read the marks back in increasing order, clearing them
    let found = 0;
    for (let k = 0; k < words; k++) {
      const word = bitmap + (<usize>k << 2);
      let bits = load<u32>(word);
      if (bits == 0) continue;
      store<u32>(word, 0);
      while (bits != 0) {
        store<i32>(out + (<usize>(found++) << 2), (k << 5) + <i32>ctz(bits));
        bits &= bits - 1;
      }
    }
  }
}

// ---------------------------------------------------------------- attention of members over members

// Work: ipos[8] i32 | one query tile (flash tileBytes) | the cluster's keys:
//   pos[kPad] i32 | bias[kPad] (0, or -inf for padding and the empty end of the last tile)
//   | kp[kPad/4][D][4] (engine key tiles) | vp[kPad][dvPad]

/** Bytes of routingAttend's work buffer for clusters of wk = min(w, Nk) keys. */
export function routingWorkBytes(wk: i32, D: i32, Dv: i32): f64 {
  return 32 + tileBytesExact(D, Dv) + <f64>keyCountPadded(wk) * (2 + <f64>D + valueWidthPadded(Dv)) * 4;
}

/** Bytes of the per-query sums [Nq][dvPad] and join counts [Nq]. */
export function routingSumBytes(Nq: i32, Dv: i32): f64 {
  return (<f64>Nq * valueWidthPadded(Dv) + <f64>Nq) * 4;
}

/** Starts a head: sums = 0, joined = 0. */
export function routingStart(sums: usize, Nq: i32, Dv: i32): void {
  memory.fill(sums, 0, <usize>(Nq * (valueWidthPadded(Dv) + 1)) << 2);
}

/** Gathers the member keys (positions pos[0..count)) and their values into the engine's layout, with the padding bias. */
function packMembers(k: usize, v: usize, D: i32, Dv: i32, keyPadding: usize, pos: usize, count: i32, keys: usize, kPad: i32): void {
  const nPad = keyCountPadded(count);
  const bias = keys + (<usize>kPad << 2);
  const kp = bias + (<usize>kPad << 2);
  const vp = kp + (<usize>(kPad * D) << 2);
  memory.copy(keys, pos, <usize>count << 2);
  for (let t = 0; t < count; t++) {
    const real = keyPadding == 0 || load<u8>(keyPadding + load<i32>(pos + (<usize>t << 2))) != 0;
    store<f32>(bias + (<usize>t << 2), real ? 0 : NEG_INF);
  }
  for (let t = count; t < nPad; t++) {
    store<i32>(keys + (<usize>t << 2), 0x7fffffff);
    store<f32>(bias + (<usize>t << 2), NEG_INF);
  }
  gatherKeyTiles(k, pos, count, D, 0, kp);
  gatherValues(v, pos, count, Dv, vp);
}

/** Adds the padding bias to a block of scores st[t][8] and, when causal, hides keys j > p (the rows' positions). */
function maskBlock(st: usize, count: i32, pos: usize, bias: usize, p0: v128, p1: v128, causal: bool): void {
  const minusInf = f32x4.splat(NEG_INF);
  for (let t = 0; t < count; t++) {
    const row = st + (<usize>t << 5);
    const b = v128.load32_splat(bias + (<usize>t << 2));
    let s0 = f32x4.add(v128.load(row), b);
    let s1 = f32x4.add(v128.load(row, 16), b);
    if (causal) {
      const j = v128.load32_splat(pos + (<usize>t << 2));
      s0 = v128.bitselect(minusInf, s0, i32x4.gt_s(j, p0));
      s1 = v128.bitselect(minusInf, s1, i32x4.gt_s(j, p1));
    }
    v128.store(row, s0);
    v128.store(row, s1, 16);
  }
}

/**
 * Clusters [cStart, cEnd) of one head: member queries (qMembers[c][0..wq))
 * attend member keys (kMembers[c][0..wk)) that causal (key j visible to
 * query i iff j <= i + Nk - Nq) and keyPadding (u8 [Nk] or 0) leave
 * visible; each row that saw a key adds its softmax output to sums[i] and
 * counts one join. q [Nq][D], k [Nk][D], v [Nk][Dv].
 */
export function routingAttend(
  q: usize, k: usize, v: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, scale: f32, causal: bool, keyPadding: usize,
  qMembers: usize, wq: i32, kMembers: usize, wk: i32, work: usize, sums: usize, cStart: i32, cEnd: i32,
): void {
  const dvPad = valueWidthPadded(Dv);
  const joined = sums + (<usize>(Nq * dvPad) << 2);
  const shift = Nk - Nq;
  const ipos = work;
  const tile = work + 32;
  const keys = tile + <usize>tileBytes(D, Dv);
  const kPad = keyCountPadded(wk);
  const bias = keys + (<usize>kPad << 2);
  const kp = bias + (<usize>kPad << 2);
  const vp = kp + (<usize>(kPad * D) << 2);
  const st = tileScores(tile, D);
  const state = tileState(tile, D);
  const o = tileOutput(tile, D);
  for (let c = cStart; c < cEnd; c++) {
    packMembers(k, v, D, Dv, keyPadding, kMembers + (<usize>(c * wk) << 2), wk, keys, kPad);
    const members = qMembers + (<usize>(c * wq) << 2);
    for (let r0 = 0; r0 < wq; r0 += ROWS) {
      const rows = min(ROWS, wq - r0);
      const rowIndex = members + (<usize>r0 << 2);
      gatherQueryTile(q, rowIndex, rows, D, scale, tile);
      for (let r = 0; r < ROWS; r++) {
        store<i32>(ipos + (<usize>r << 2), r < rows ? load<i32>(rowIndex + (<usize>r << 2)) + shift : NO_QUERY);
      }
      const p0 = v128.load(ipos);
      const p1 = v128.load(ipos, 16);
      // causal: members are in increasing order, so keys past the tile's last row are seen by none of it
      let keyEnd = wk;
      if (causal) {
        const last = load<i32>(ipos + (<usize>(rows - 1) << 2));
        while (keyEnd > 0 && load<i32>(keys + (<usize>(keyEnd - 1) << 2)) > last) keyEnd--;
      }
      startRows(state, o, dvPad);
      const nPad = keyCountPadded(keyEnd);
      for (let j0 = 0; j0 < nPad; j0 += KEY_BLOCK) {
        const count = min(KEY_BLOCK, nPad - j0);
        scoreBlock(kp, j0 >> 2, count >> 2, tile, D, st);
        maskBlock(st, count, keys + (<usize>j0 << 2), bias + (<usize>j0 << 2), p0, p1, causal);
        softmaxBlock(st, count, state);
        accumulateValues(st, count, vp + (<usize>(j0 * dvPad) << 2), dvPad, o, state);
      }
      // a row that saw a key (l > 0) joins: sums[i] += o / l
      for (let r = 0; r < rows; r++) {
        const l = load<f32>(state + 32 + (<usize>r << 2));
        if (!(l > 0)) continue;
        const i = load<i32>(rowIndex + (<usize>r << 2));
        const inv = f32x4.splat(1 / l);
        const dst = sums + (<usize>(i * dvPad) << 2);
        const src = o + (<usize>(r * dvPad) << 2);
        for (let d = 0; d < dvPad; d += 4) {
          const at = dst + (<usize>d << 2);
          v128.store(at, madd(v128.load(src + (<usize>d << 2)), inv, v128.load(at)));
        }
        const count = joined + (<usize>i << 2);
        store<i32>(count, load<i32>(count) + 1);
      }
    }
  }
}

/** out[i] = sums[i] / joined[i], or 0 for a query that joined no cluster with a visible key. */
export function routingFinish(sums: usize, Nq: i32, Dv: i32, out: usize): void {
  const dvPad = valueWidthPadded(Dv);
  const joined = sums + (<usize>(Nq * dvPad) << 2);
  for (let i = 0; i < Nq; i++) {
    const n = load<i32>(joined + (<usize>i << 2));
    const inv: f32 = n > 0 ? 1 / <f32>n : 0;
    const src = sums + (<usize>(i * dvPad) << 2);
    const dst = out + (<usize>(i * Dv) << 2);
    for (let d = 0; d < Dv; d++) store<f32>(dst + (<usize>d << 2), load<f32>(src + (<usize>d << 2)) * inv);
  }
}

// ---------------------------------------------------------------- k-means assignment (fitting the centroids)

/** Bytes of routingAssign's GEMM block for C clusters. */
export function routingAssignBytes(C: i32): f64 {
  return <f64>SIM_ROWS * C * 4;
}

/**
 * One k-means assignment step over rows [rowStart, rowEnd) of the normalised
 * points [M][D]: cosines to the normalised centroids muT [D][C] by GEMM, the
 * first largest (ties to the lower cluster) into best[n], and its margin
 * over the runner-up into gap[n] (+inf with one cluster, 0 on a tie), so
 * that the caller can settle near-ties exactly in float64.
 */
export function routingAssign(
  points: usize, D: i32, muT: usize, C: i32, block: usize, best: usize, gap: usize, rowStart: i32, rowEnd: i32,
): void {
  const c4 = C & ~3;
  for (let i0 = rowStart; i0 < rowEnd; i0 += SIM_ROWS) {
    const rows = min(SIM_ROWS, rowEnd - i0);
    gemm(rows, C, D, points + (<usize>(i0 * D) << 2), D, 1, muT, C, block, C, false);
    for (let t = 0; t < rows; t++) {
      const row = block + (<usize>(t * C) << 2);
      let top: f32 = -Infinity;
      let second: f32 = -Infinity;
      let at = 0;
      if (c4 > 0) {
        // per lane: the first largest, its cluster and the runner-up
        let topV = f32x4.splat(-Infinity);
        let secondV = f32x4.splat(-Infinity);
        let atV = i32x4.splat(0);
        let index = i32x4(0, 1, 2, 3);
        for (let c = 0; c < c4; c += 4) {
          const v = v128.load(row + (<usize>c << 2));
          const up = f32x4.gt(v, topV);
          secondV = v128.bitselect(topV, f32x4.max(secondV, v), up);
          topV = v128.bitselect(v, topV, up);
          atV = v128.bitselect(index, atV, up);
          index = i32x4.add(index, i32x4.splat(4));
        }
        // across lanes: the largest top (lowest cluster on a tie); the runner-up is the best of the rest
        top = f32x4.extract_lane(topV, 0);
        at = i32x4.extract_lane(atV, 0);
        second = f32x4.extract_lane(secondV, 0);
        for (let lane = 1; lane < 4; lane++) {
          const v = lane == 1 ? f32x4.extract_lane(topV, 1) : lane == 2 ? f32x4.extract_lane(topV, 2) : f32x4.extract_lane(topV, 3);
          const i = lane == 1 ? i32x4.extract_lane(atV, 1) : lane == 2 ? i32x4.extract_lane(atV, 2) : i32x4.extract_lane(atV, 3);
          const s = lane == 1 ? f32x4.extract_lane(secondV, 1) : lane == 2 ? f32x4.extract_lane(secondV, 2) : f32x4.extract_lane(secondV, 3);
          if (v > top || (v == top && i < at)) {
            second = max(second, top);
            top = v;
            at = i;
          } else {
            second = max(second, v);
          }
          second = max(second, s);
        }
      }
      for (let c = c4; c < C; c++) {
        const v = load<f32>(row + (<usize>c << 2));
        if (v > top || c == 0) {
          second = max(second, top);
          top = v;
          at = c;
        } else {
          second = max(second, v);
        }
      }
      store<i32>(best + (<usize>(i0 + t) << 2), at);
      store<f32>(gap + (<usize>(i0 + t) << 2), top - second);
    }
  }
}

/**
 * The k-means update's sums in float64, in the reference's order (row by
 * row), so that they are bit for bit the reference's: sums[c][d] = sum of
 * points[n][d] over the rows assigned to c; members[c] counts them.
 */
export function routingAccumulate(points: usize, M: i32, D: i32, assigned: usize, C: i32, sums: usize, members: usize): void {
  memory.fill(sums, 0, <usize>(C * D) << 3);
  memory.fill(members, 0, <usize>C << 2);
  for (let n = 0; n < M; n++) {
    const c = load<i32>(assigned + (<usize>n << 2));
    const count = members + (<usize>c << 2);
    store<i32>(count, load<i32>(count) + 1);
    const src = points + (<usize>(n * D) << 3);
    const dst = sums + (<usize>(c * D) << 3);
    for (let d = 0; d < D; d++) store<f64>(dst + (<usize>d << 3), load<f64>(dst + (<usize>d << 3)) + load<f64>(src + (<usize>d << 3)));
  }
}
