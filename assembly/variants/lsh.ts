// `lsh`: Reformer's LSH attention (Kitaev et al. 2020) with shared query-key
// vectors x. Per batch and head: hash every row in R rounds (one GEMM of x
// with all rounds' rotations, then an argmax), sort positions by (bucket,
// position) with a stable counting sort, and let each chunk of c sorted
// positions attend itself and the chunk before it in the cyclic list of all
// rounds' chunks, through the online-softmax engine over gathered rows.
// Rounds merge by their log-sum-exp. Mirrors src/variants/lsh.ts; the math
// is src/reference/lsh.ts.
//
// Per head, the caller runs: lshPackRotations, lshHashRows (row ranges),
// lshSortRound (each round), inverseNorms, lshStart, lshChunks (chunk
// ranges of the cyclic list, in order), lshFinish.
import { accumulateValues, scoreBlock, softmaxBlock, startRows } from '../core/flash';
import { KEY_BLOCK, ROWS, keyCountPadded, tileBytes, tileBytesExact, tileOutput, tileScores, tileState, valueWidthPadded } from '../core/flash-layout';
import { gemm } from '../core/gemm';
import { gatherKeyTiles, gatherQueryTile, gatherValues } from '../core/gather';
import { madd } from '../core/simd';

/** The logit a query gives itself (reformer-pytorch's TOKEN_SELF_ATTN_VALUE): weight only when nothing else is visible. */
const SELF_LOGIT: f32 = -5e4;
const NEG_INF: f32 = -Infinity;
/** Rows hashed per GEMM block: the block's projections [64][R nb/2] stay in cache for the argmax. */
const HASH_ROWS: i32 = 64;
/** Position of a key slot past the chunk's end (hidden by its bias) and of a query row past it: never equal. */
const NO_KEY: i32 = -1;
const NO_QUERY: i32 = -2;
/** No index chosen yet. */
const NONE: i32 = 0x7fffffff;

// ---------------------------------------------------------------- hashing

/** Bytes of the hashing scratch: rotations as [D][R nb/2], and one block of projections. */
export function lshHashBytes(D: i32, R: i32, half: i32): f64 {
  return (<f64>D * R * half + <f64>HASH_ROWS * R * half) * 4;
}

/** rotT[d][r nb/2 + m] = rot[r][d][m]: every round's rotations side by side, so one GEMM hashes all rounds. */
export function lshPackRotations(rot: usize, D: i32, R: i32, half: i32, hash: usize): void {
  const width = R * half;
  const rotT = hash;
  for (let r = 0; r < R; r++) {
    for (let d = 0; d < D; d++) {
      memory.copy(rotT + (<usize>(d * width + r * half) << 2), rot + (<usize>((r * D + d) * half) << 2), <usize>half << 2);
    }
  }
}

/**
 * The bucket argmax([p, -p]) of one round's projections p[0..half), ties to
 * the lower bucket: the first maximum of p (buckets m) against the first
 * minimum of p (buckets half + m, scored -p), the former winning a tie.
 */
function bucketOf(p: usize, half: i32): i32 {
  let maxV = f32x4.splat(NEG_INF);
  let minV = f32x4.splat(Infinity);
  let maxI = i32x4.splat(0);
  let minI = i32x4.splat(0);
  let index = i32x4(0, 1, 2, 3);
  const four = i32x4.splat(4);
  const h4 = half & ~3;
  let m = 0;
  // per lane, a strict comparison keeps the first index of the extreme
  for (; m < h4; m += 4) {
    const v = v128.load(p + (<usize>m << 2));
    const up = f32x4.gt(v, maxV);
    const down = f32x4.lt(v, minV);
    maxV = v128.bitselect(v, maxV, up);
    maxI = v128.bitselect(index, maxI, up);
    minV = v128.bitselect(v, minV, down);
    minI = v128.bitselect(index, minI, down);
    index = i32x4.add(index, four);
  }
  // across lanes, in two halving steps: the extreme value, then the lowest index holding it
  let bestMax: f32 = NEG_INF;
  let bestMaxI: i32 = NONE;
  let bestMin: f32 = Infinity;
  let bestMinI: i32 = NONE;
  if (h4 > 0) {
    let v = f32x4.shuffle(maxV, maxV, 2, 3, 0, 1);
    let i = i32x4.shuffle(maxI, maxI, 2, 3, 0, 1);
    let take = v128.or(f32x4.gt(v, maxV), v128.and(f32x4.eq(v, maxV), i32x4.lt_s(i, maxI)));
    maxV = v128.bitselect(v, maxV, take);
    maxI = v128.bitselect(i, maxI, take);
    v = f32x4.shuffle(maxV, maxV, 1, 0, 3, 2);
    i = i32x4.shuffle(maxI, maxI, 1, 0, 3, 2);
    take = v128.or(f32x4.gt(v, maxV), v128.and(f32x4.eq(v, maxV), i32x4.lt_s(i, maxI)));
    bestMax = f32x4.extract_lane(v128.bitselect(v, maxV, take), 0);
    bestMaxI = i32x4.extract_lane(v128.bitselect(i, maxI, take), 0);
    v = f32x4.shuffle(minV, minV, 2, 3, 0, 1);
    i = i32x4.shuffle(minI, minI, 2, 3, 0, 1);
    take = v128.or(f32x4.lt(v, minV), v128.and(f32x4.eq(v, minV), i32x4.lt_s(i, minI)));
    minV = v128.bitselect(v, minV, take);
    minI = v128.bitselect(i, minI, take);
    v = f32x4.shuffle(minV, minV, 1, 0, 3, 2);
    i = i32x4.shuffle(minI, minI, 1, 0, 3, 2);
    take = v128.or(f32x4.lt(v, minV), v128.and(f32x4.eq(v, minV), i32x4.lt_s(i, minI)));
    bestMin = f32x4.extract_lane(v128.bitselect(v, minV, take), 0);
    bestMinI = i32x4.extract_lane(v128.bitselect(i, minI, take), 0);
  }
  // the tail: indices above every vector one, so strict comparisons keep ties low
  for (; m < half; m++) {
    const v = load<f32>(p + (<usize>m << 2));
    if (v > bestMax || bestMaxI == NONE) {
      bestMax = v;
      bestMaxI = m;
    }
    if (v < bestMin || bestMinI == NONE) {
      bestMin = v;
      bestMinI = m;
    }
  }
  return bestMax >= -bestMin ? bestMaxI : half + bestMinI;
}

/**
 * Buckets of rows [rowStart, rowEnd) of one head x [N][D] in every round:
 * buckets[r N + i]. hash: lshHashBytes, rotations packed by lshPackRotations.
 */
export function lshHashRows(x: usize, N: i32, D: i32, R: i32, half: i32, hash: usize, buckets: usize, rowStart: i32, rowEnd: i32): void {
  const width = R * half;
  const rotT = hash;
  const proj = rotT + (<usize>(D * width) << 2);
  for (let i0 = rowStart; i0 < rowEnd; i0 += HASH_ROWS) {
    const rows = min(HASH_ROWS, rowEnd - i0);
    gemm(rows, width, D, x + (<usize>(i0 * D) << 2), D, 1, rotT, width, proj, width, false);
    for (let t = 0; t < rows; t++) {
      const row = proj + (<usize>(t * width) << 2);
      for (let r = 0; r < R; r++) {
        store<i32>(buckets + (<usize>(r * N + i0 + t) << 2), bucketOf(row + (<usize>(r * half) << 2), half));
      }
    }
  }
}

/**
 * Round r's positions sorted by (bucket, position): a counting sort, stable
 * because positions are placed in increasing order. O(N + nb).
 * counts: nb + 1 ints; sorted: [R][N], this round's row written.
 */
export function lshSortRound(buckets: usize, N: i32, nb: i32, r: i32, counts: usize, sorted: usize): void {
  const own = buckets + (<usize>(r * N) << 2);
  const out = sorted + (<usize>(r * N) << 2);
  memory.fill(counts, 0, <usize>(nb + 1) << 2);
  for (let i = 0; i < N; i++) {
    const at = counts + (<usize>(load<i32>(own + (<usize>i << 2)) + 1) << 2);
    store<i32>(at, load<i32>(at) + 1);
  }
  for (let m = 0; m < nb; m++) {
    const at = counts + (<usize>(m + 1) << 2);
    store<i32>(at, load<i32>(at) + load<i32>(at - 4));
  }
  for (let i = 0; i < N; i++) {
    const at = counts + (<usize>load<i32>(own + (<usize>i << 2)) << 2);
    const slot = load<i32>(at);
    store<i32>(out + (<usize>slot << 2), i);
    store<i32>(at, slot + 1);
  }
}

// ---------------------------------------------------------------- attention over chunk pairs

// A chunk slot holds up to cPad = roundUp(min(c, N), 4) gathered keys:
//   pos[cPad] i32 (original positions) | bias[cPad] (0, or -inf for padding and empty slots)
//   | kp[cPad/4][D][4] (normalised keys, engine key tiles) | vp[cPad][dvPad]
// Work: the query rows' positions ipos[4][8] i32 | 4 query tiles (flash tileBytes each) | slot A | slot B

// @ts-ignore: decorator
@inline function slotKeys(c: i32, N: i32): i32 {
  return keyCountPadded(min(c, N));
}

function slotBytes(c: i32, N: i32, D: i32, Dv: i32): i32 {
  return slotKeys(c, N) * (2 + D + valueWidthPadded(Dv)) * 4;
}

/** Bytes of lshChunks' work buffer. */
export function lshWorkBytes(c: i32, N: i32, D: i32, Dv: i32): f64 {
  // slotBytes in f64: a size too large for memory must not wrap
  const slot = <f64>slotKeys(c, N) * (2 + <f64>D + valueWidthPadded(Dv)) * 4;
  return <f64>TILE_GROUP * (ROWS * 4 + tileBytesExact(D, Dv)) + 2 * slot;
}

/** Bytes of a head's merge state: acc[N][dvPad] then (M, L) per position. */
export function lshAccBytes(N: i32, Dv: i32): f64 {
  return (<f64>N * valueWidthPadded(Dv) + 2 * <f64>N) * 4;
}

/**
 * Gathers `count` keys (positions pos0[0..count)) into a slot: normalised
 * key rows x_j inv_j in key tiles, value rows, key bias from keyPadding (u8
 * [N] or 0), the rest of the last tile empty.
 */
function packSlot(x: usize, v: usize, D: i32, Dv: i32, inv: usize, keyPadding: usize, pos0: usize, count: i32, slot: usize, cPad: i32): void {
  const nPad = keyCountPadded(count);
  const bias = slot + (<usize>cPad << 2);
  const kp = bias + (<usize>cPad << 2);
  const vp = kp + (<usize>(cPad * D) << 2);
  memory.copy(slot, pos0, <usize>count << 2);
  for (let t = 0; t < count; t++) {
    const real = keyPadding == 0 || load<u8>(keyPadding + load<i32>(pos0 + (<usize>t << 2))) != 0;
    store<f32>(bias + (<usize>t << 2), real ? 0 : NEG_INF);
  }
  for (let t = count; t < nPad; t++) {
    store<i32>(slot + (<usize>t << 2), NO_KEY);
    store<f32>(bias + (<usize>t << 2), NEG_INF);
  }
  gatherKeyTiles(x, pos0, count, D, inv, kp);
  gatherValues(v, pos0, count, Dv, vp);
}

/**
 * Masks one block of scores st[t][8] of keys at positions pos[t] for query
 * rows at positions (ip0, ip1): adds the padding bias, hides j > i when
 * causal, and, with selfByPosition, gives every key at the query's own
 * position the fixed logit (whatever padding or causal say: it always takes
 * part).
 */
function maskBlock(st: usize, count: i32, pos: usize, bias: usize, ip0: v128, ip1: v128, padded: bool, causal: bool, selfByPosition: bool): void {
  const minusInf = f32x4.splat(NEG_INF);
  const self = f32x4.splat(SELF_LOGIT);
  for (let t = 0; t < count; t++) {
    const row = st + (<usize>t << 5);
    const j = v128.load32_splat(pos + (<usize>t << 2));
    let s0 = v128.load(row);
    let s1 = v128.load(row, 16);
    if (padded) {
      const b = v128.load32_splat(bias + (<usize>t << 2));
      s0 = f32x4.add(s0, b);
      s1 = f32x4.add(s1, b);
    }
    if (causal) {
      s0 = v128.bitselect(minusInf, s0, i32x4.gt_s(j, ip0));
      s1 = v128.bitselect(minusInf, s1, i32x4.gt_s(j, ip1));
    }
    if (selfByPosition) {
      s0 = v128.bitselect(self, s0, i32x4.eq(j, ip0));
      s1 = v128.bitselect(self, s1, i32x4.eq(j, ip1));
    }
    v128.store(row, s0);
    v128.store(row, s1, 16);
  }
}

/** Query tiles that walk a slot's key blocks together, so each block of keys and values is read once for all of them. */
const TILE_GROUP: i32 = 4;

/**
 * Runs the engine's blocks over the first `count` keys of a slot for a group
 * of query tiles (ipos: the tiles' row positions, 8 per tile). A slot whose
 * last tile is partly empty always needs the bias (-inf there). With
 * selfRow >= 0 the slot is the queries' own chunk: row r of tile t is key
 * selfRow + 8t + r of the slot, so the self logit goes on that diagonal;
 * otherwise the query itself is found by position (selfByPosition).
 */
function attendSlot(
  slot: usize, count: i32, cPad: i32, D: i32, Dv: i32, tiles: usize, tileCount: i32, ipos: usize,
  padded: bool, causal: bool, selfByPosition: bool, selfRow: i32,
): void {
  const dvPad = valueWidthPadded(Dv);
  const bias = slot + (<usize>cPad << 2);
  const kp = bias + (<usize>cPad << 2);
  const vp = kp + (<usize>(cPad * D) << 2);
  const stride = <usize>tileBytes(D, Dv);
  const nPad = keyCountPadded(count);
  const biased = padded || nPad > count;
  const masked = biased || causal || selfByPosition;
  const self = f32x4.splat(SELF_LOGIT);
  for (let j0 = 0; j0 < nPad; j0 += KEY_BLOCK) {
    const keys = min(KEY_BLOCK, nPad - j0);
    for (let t = 0; t < tileCount; t++) {
      const tile = tiles + <usize>t * stride;
      const st = tileScores(tile, D);
      const state = tileState(tile, D);
      scoreBlock(kp, j0 >> 2, keys >> 2, tile, D, st);
      if (masked) {
        const ip = ipos + (<usize>t << 5);
        maskBlock(st, keys, slot + (<usize>j0 << 2), bias + (<usize>j0 << 2), v128.load(ip), v128.load(ip, 16), biased, causal, selfByPosition);
      }
      if (selfRow >= 0) {
        // the own chunk: row r's own key sits at slot index selfRow + 8t + r
        const first = selfRow + t * ROWS;
        for (let r = 0; r < ROWS; r++) {
          const key = first + r - j0;
          if (key >= 0 && key < keys) store<f32>(st + (<usize>(key * ROWS + r) << 2), SELF_LOGIT);
        }
      }
      softmaxBlock(st, keys, state);
      accumulateValues(st, keys, vp + (<usize>(j0 * dvPad) << 2), dvPad, tileOutput(tile, D), state);
    }
  }
}

/** Starts a head's merge state: acc = 0, M = -inf, L = 0. */
export function lshStart(acc: usize, N: i32, Dv: i32): void {
  const dvPad = valueWidthPadded(Dv);
  memory.fill(acc, 0, <usize>(N * dvPad) << 2);
  const stats = acc + (<usize>(N * dvPad) << 2);
  for (let i = 0; i < N; i++) {
    store<f32>(stats + (<usize>i << 3), NEG_INF);
    store<f32>(stats + (<usize>i << 3), 0, 4);
  }
}

/**
 * Merges a finished query tile into the per-position state. The tile holds,
 * per row, o = sum exp(s - m) v and (m, l) with lse = m + log l; merging
 * (m, l) pairs like the online softmax does is merging by log-sum-exp:
 * the final acc / L is sum_r o_r exp(lse_r - logsumexp_r lse_r).
 */
function mergeTile(tile: usize, D: i32, dvPad: i32, pos: usize, rows: i32, acc: usize, stats: usize): void {
  const state = tileState(tile, D);
  const o = tileOutput(tile, D);
  for (let r = 0; r < rows; r++) {
    const i = load<i32>(pos + (<usize>r << 2));
    const m = load<f32>(state + (<usize>r << 2));
    const l = load<f32>(state + 32 + (<usize>r << 2));
    const at = stats + (<usize>i << 3);
    const oldM = load<f32>(at);
    const newM = max(oldM, m);
    const a = Mathf.exp(oldM - newM);
    const b = Mathf.exp(m - newM);
    store<f32>(at, newM);
    store<f32>(at, load<f32>(at, 4) * a + l * b, 4);
    const va = f32x4.splat(a);
    const vb = f32x4.splat(b);
    const dst = acc + (<usize>(i * dvPad) << 2);
    const src = o + (<usize>(r * dvPad) << 2);
    for (let c = 0; c < dvPad; c += 4) {
      const to = dst + (<usize>c << 2);
      v128.store(to, madd(v128.load(src + (<usize>c << 2)), vb, f32x4.mul(v128.load(to), va)));
    }
  }
}

/**
 * Chunks [chunkStart, chunkEnd) of one head's cyclic list (chunk g is chunk
 * g mod perRound of round g / perRound): each chunk's queries attend the
 * keys of the chunk and of the chunk before it, merged into acc (lshStart).
 * x [N][D] queries and keys (unnormalised), v [N][Dv], inv from
 * inverseNorms, sorted [R][N] from lshSortRound, keyPadding u8 [N] or 0.
 * Ranges must be run in increasing order (each chunk's pack is reused by
 * the next); results do not depend on how the list is split.
 */
export function lshChunks(
  x: usize, v: usize, N: i32, D: i32, Dv: i32, scale: f32, causal: bool, keyPadding: usize,
  inv: usize, sorted: usize, R: i32, c: i32, work: usize, acc: usize, chunkStart: i32, chunkEnd: i32,
): void {
  const dvPad = valueWidthPadded(Dv);
  const stats = acc + (<usize>(N * dvPad) << 2);
  const perRound = (N + c - 1) / c;
  const chunkCount = R * perRound;
  const cPad = slotKeys(c, N);
  const ipos = work;
  const tiles = work + <usize>(TILE_GROUP * ROWS * 4);
  const stride = <usize>tileBytes(D, Dv);
  const slots = tiles + <usize>TILE_GROUP * stride;
  const slotSize = <usize>slotBytes(c, N, D, Dv);
  const padded = keyPadding != 0;
  for (let g = chunkStart; g < chunkEnd; g++) {
    const round = g / perRound;
    const own = slots + <usize>(g & 1) * slotSize;
    const ownFirst = sorted + (<usize>(round * N + (g % perRound) * c) << 2);
    const ownCount = min(c, N - (g % perRound) * c);
    packSlot(x, v, D, Dv, inv, keyPadding, ownFirst, ownCount, own, cPad);
    // the chunk before in the cyclic list; it was packed as the previous own unless this range starts here or wraps
    const prevIndex = (g - 1 + chunkCount) % chunkCount;
    const prev = slots + <usize>((g + 1) & 1) * slotSize;
    const prevCount = min(c, N - (prevIndex % perRound) * c);
    const hasPrev = prevIndex != g;
    if (hasPrev && (g == chunkStart || g == 0)) {
      const prevFirst = sorted + (<usize>((prevIndex / perRound) * N + (prevIndex % perRound) * c) << 2);
      packSlot(x, v, D, Dv, inv, keyPadding, prevFirst, prevCount, prev, cPad);
    }
    // a chunk of the same round holds other positions; one of another round may hold the query itself
    const prevMayHoldSelf = prevIndex / perRound != round;
    // groups of up to 4 tiles of 8 of the chunk's positions
    for (let r0 = 0; r0 < ownCount; r0 += ROWS * TILE_GROUP) {
      const tileCount = min(TILE_GROUP, (ownCount - r0 + ROWS - 1) / ROWS);
      for (let t = 0; t < tileCount; t++) {
        const tile = tiles + <usize>t * stride;
        const first = r0 + t * ROWS;
        const rows = min(ROWS, ownCount - first);
        gatherQueryTile(x, own + (<usize>first << 2), rows, D, scale, tile);
        for (let r = 0; r < ROWS; r++) {
          store<i32>(ipos + (<usize>(t * ROWS + r) << 2), r < rows ? load<i32>(own + (<usize>(first + r) << 2)) : NO_QUERY);
        }
        startRows(tileState(tile, D), tileOutput(tile, D), dvPad);
      }
      attendSlot(own, ownCount, cPad, D, Dv, tiles, tileCount, ipos, padded, causal, false, r0);
      if (hasPrev) attendSlot(prev, prevCount, cPad, D, Dv, tiles, tileCount, ipos, padded, causal, prevMayHoldSelf, -1);
      for (let t = 0; t < tileCount; t++) {
        const first = r0 + t * ROWS;
        mergeTile(tiles + <usize>t * stride, D, dvPad, own + (<usize>first << 2), min(ROWS, ownCount - first), acc, stats);
      }
    }
  }
}

/** out[i] = acc[i] / L[i] for one head (L >= 1: every query takes part with itself). */
export function lshFinish(acc: usize, N: i32, Dv: i32, out: usize): void {
  const dvPad = valueWidthPadded(Dv);
  const stats = acc + (<usize>(N * dvPad) << 2);
  for (let i = 0; i < N; i++) {
    const inv: f32 = 1 / load<f32>(stats + (<usize>i << 3), 4);
    const src = acc + (<usize>(i * dvPad) << 2);
    const dst = out + (<usize>(i * Dv) << 2);
    for (let d = 0; d < Dv; d++) store<f32>(dst + (<usize>d << 2), load<f32>(src + (<usize>d << 2)) * inv);
  }
}
