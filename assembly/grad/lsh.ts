// Backward pass of `lsh` (SPEC "Gradients"), buckets and chunks fixed. The
// forward's own calls (assembly/variants/lsh.ts) run first and leave each
// position's merge state: the largest logit M_i and the sum L_i of
// exp(s - M_i) over every entry query i looked at in all rounds, and
// delta_i = g_i . out_i (lshGradStats): the rounds combined are one softmax,
// entry t of row i weighing p_t = exp(s_t - M_i) / L_i. (M_i is kept apart
// from log L_i: the self logit -5e4 would lose the digits of a sum.) Then per chunk of the cyclic list,
// its queries against the keys of it and of the chunk before it, by blocks
// of rows (GEMMs): dl_t = p_t (g_i . v_j - delta_i), and with
// s_t = scale x_i . x^_j (x^_j = x_j / max(|x_j|, 1e-12); the self entry's
// fixed logit has no gradient)
//   dx_i += scale dl_t x^_j,  dx^_j += scale dl_t x_i,  dv_j += p_t g_i;
// lshGradKeys then takes dx^ back through the normalisation into dx (x is
// both the queries and the keys). Mirrors src/grad/lsh-plan.ts; the math
// is src/reference/grad/lsh.ts.
//
// Per head, after the forward's calls up to lshChunks: lshGradStats,
// lshGradStart, lshGradChunks (chunk ranges, in order: the sums), lshGradKeys.
import { valueWidthPadded } from '../core/flash-layout';
import { dot } from '../core/features';
import { scatterAddRows } from '../core/gather';
import { gemm, transpose } from '../core/gemm';
import { expNonPositive } from '../core/simd';
import { at } from '../core/memory';

/** The logit a query gives itself: as the forward's (assembly/variants/lsh.ts). */
const SELF_LOGIT: f32 = -5e4;
/** Query rows per block of products: the block's scores are ROW_BLOCK x 2c. */
const ROW_BLOCK: i32 = 64;

/**
 * stats[i] = (M_i, 1 / L_i) and delta_i = g_i . acc_i / L_i of one head,
 * from the forward's merge state acc (lshStart, lshChunks): acc[N][dvPad],
 * then (M, L) per position. g [N][Dv].
 */
export function lshGradStats(acc: usize, N: i32, Dv: i32, g: usize, rowStats: usize, delta: usize): void {
  const dvPad = valueWidthPadded(Dv);
  const stats = at(acc, N * dvPad);
  for (let i = 0; i < N; i++) {
    const m = load<f32>(at(stats, 2 * i));
    const l = load<f32>(at(stats, 2 * i + 1));
    const o = at(acc, i * dvPad);
    const gi = at(g, i * Dv);
    store<f32>(at(rowStats, 2 * i), m);
    store<f32>(at(rowStats, 2 * i + 1), 1 / l);
    store<f32>(at(delta, i), dot(gi, o, Dv) / l);
  }
}

/** Starts a head's sums: dx [N][D], the normalised keys' gradient dUnit [N][D] and dv [N][Dv] zeroed. */
export function lshGradStart(N: i32, D: i32, Dv: i32, dx: usize, dUnit: usize, dv: usize): void {
  memory.fill(dx, 0, <usize>(N * D) << 2);
  memory.fill(dUnit, 0, <usize>(N * D) << 2);
  memory.fill(dv, 0, <usize>(N * Dv) << 2);
}

// work, for up to K = 2 min(c, N) keys (kPad = K rounded up to 4) and rows of ROW_BLOCK:
//   pos[kPad] i32 | seen[kPad] i32 (all ones: a real key) | kU[K][D] | kT[D][kPad] | vT[Dv][kPad]
//   | dK[K][D] | dV[K][Dv] | Q[64][D] | G[64][Dv] | dQ[64][D] | P[64][kPad] | dS[64][kPad]

// @ts-ignore: decorator
@inline function keysPadded(c: i32, N: i32): i32 {
  return (2 * min(c, N) + 3) & ~3;
}

/** Bytes of lshGradChunks' work buffer. */
export function lshGradWorkBytes(c: i32, N: i32, D: i32, Dv: i32): f64 {
  const kPad = <f64>keysPadded(c, N);
  return (kPad * (2 + 3 * <f64>D + 2 * <f64>Dv) + <f64>ROW_BLOCK * (2 * <f64>D + <f64>Dv + 2 * kPad)) * 4;
}

/** Appends `count` keys at positions pos0[0..count) to the chunk pair's keys from index `from`: positions, padding, x^_j rows, v^T columns. */
function gatherKeys(
  x: usize, v: usize, D: i32, Dv: i32, inv: usize, keyPadding: usize, pos0: usize, count: i32, from: i32,
  pos: usize, seen: usize, kU: usize, vT: usize, kPad: i32,
): void {
  for (let t = 0; t < count; t++) {
    const j = load<i32>(at(pos0, t));
    const k = from + t;
    store<i32>(at(pos, k), j);
    store<i32>(at(seen, k), keyPadding == 0 || load<u8>(keyPadding + <usize>j) != 0 ? -1 : 0);
    const s = load<f32>(at(inv, j));
    const src = at(x, j * D);
    const dst = at(kU, k * D);
    for (let d = 0; d < D; d++) store<f32>(at(dst, d), load<f32>(at(src, d)) * s);
    const vj = at(v, j * Dv);
    for (let e = 0; e < Dv; e++) store<f32>(at(vT, e * kPad + k), load<f32>(at(vj, e)));
  }
}

/**
 * One row's probabilities and score gradients over the chunk pair's kPad
 * keys, in place: pr holds x_i . x^_j, dr holds g_i . v_j; on return pr = p
 * and dr = scale p (dr - delta), 0 for hidden keys (padding, causal j > i,
 * the empty end) and dr = 0 on the self entry (its logit is fixed).
 */
function rowGradients(pr: usize, dr: usize, pos: usize, seen: usize, kPad: i32, i: i32, causal: bool, scale: f32, top: f32, invSum: f32, delta: f32): void {
  const vi = i32x4.splat(i);
  const vScale = f32x4.splat(scale);
  const vTop = f32x4.splat(top);
  const vInv = f32x4.splat(invSum);
  const vDelta = f32x4.splat(delta);
  const minusInf = f32x4.splat(-Infinity);
  const self = f32x4.splat(SELF_LOGIT);
  const zero = f32x4.splat(0);
  for (let t = 0; t < kPad; t += 4) {
    const j = v128.load(at(pos, t));
    let visible = v128.load(at(seen, t));
    if (causal) visible = v128.andnot(visible, i32x4.gt_s(j, vi));
    const isSelf = i32x4.eq(j, vi);
    let s = v128.bitselect(f32x4.mul(v128.load(at(pr, t)), vScale), minusInf, visible);
    s = v128.bitselect(self, s, isSelf);
    const p = f32x4.mul(expNonPositive(f32x4.min(f32x4.sub(s, vTop), zero)), vInv);
    const ds = f32x4.mul(vScale, f32x4.mul(p, f32x4.sub(v128.load(at(dr, t)), vDelta)));
    v128.store(at(pr, t), p);
    v128.store(at(dr, t), v128.bitselect(zero, ds, isSelf));
  }
}

/**
 * Chunks [chunkStart, chunkEnd) of one head's cyclic list (as lshChunks):
 * each chunk's queries against the keys of the chunk and of the one before
 * it, adding into dx (the query role), dUnit (the normalised keys) and dv.
 * x [N][D], v [N][Dv], g [N][Dv]; inv, sorted as the forward left them;
 * rowStats, delta from lshGradStats.
 */
export function lshGradChunks(
  x: usize, v: usize, g: usize, N: i32, D: i32, Dv: i32, scale: f32, causal: bool, keyPadding: usize,
  inv: usize, sorted: usize, R: i32, c: i32, rowStats: usize, delta: usize, work: usize,
  dx: usize, dUnit: usize, dv: usize, chunkStart: i32, chunkEnd: i32,
): void {
  const perRound = (N + c - 1) / c;
  const chunkCount = R * perRound;
  const kPad = keysPadded(c, N);
  const K = 2 * min(c, N);
  const pos = work;
  const seen = at(pos, kPad);
  const kU = at(seen, kPad);
  const kT = at(kU, K * D);
  const vT = at(kT, D * kPad);
  const dK = at(vT, Dv * kPad);
  const dV = at(dK, K * D);
  const q = at(dV, K * Dv);
  const gq = at(q, ROW_BLOCK * D);
  const dQ = at(gq, ROW_BLOCK * Dv);
  const pm = at(dQ, ROW_BLOCK * D);
  const ds = at(pm, ROW_BLOCK * kPad);
  for (let gi = chunkStart; gi < chunkEnd; gi++) {
    const own = sorted + (<usize>((gi / perRound) * N + (gi % perRound) * c) << 2);
    const ownCount = min(c, N - (gi % perRound) * c);
    const prevIndex = (gi - 1 + chunkCount) % chunkCount;
    // a list of one chunk looks only at itself
    const prevCount = prevIndex != gi ? min(c, N - (prevIndex % perRound) * c) : 0;
    const prev = sorted + (<usize>((prevIndex / perRound) * N + (prevIndex % perRound) * c) << 2);
    const m = ownCount + prevCount;
    const mPad = (m + 3) & ~3;
    gatherKeys(x, v, D, Dv, inv, keyPadding, own, ownCount, 0, pos, seen, kU, vT, kPad);
    gatherKeys(x, v, D, Dv, inv, keyPadding, prev, prevCount, ownCount, pos, seen, kU, vT, kPad);
    // the empty end of the last 4 keys: no position, never seen, zero columns
    for (let k = m; k < mPad; k++) {
      store<i32>(at(pos, k), -1);
      store<i32>(at(seen, k), 0);
      for (let e = 0; e < Dv; e++) store<f32>(at(vT, e * kPad + k), 0);
      for (let d = 0; d < D; d++) store<f32>(at(kT, d * kPad + k), 0);
    }
    transpose(m, D, kU, D, kT, kPad);
    memory.fill(dK, 0, <usize>(m * D) << 2);
    memory.fill(dV, 0, <usize>(m * Dv) << 2);
    for (let r0 = 0; r0 < ownCount; r0 += ROW_BLOCK) {
      const rows = min(ROW_BLOCK, ownCount - r0);
      const rowPos = at(own, r0);
      for (let r = 0; r < rows; r++) {
        const i = load<i32>(at(rowPos, r));
        memory.copy(at(q, r * D), at(x, i * D), <usize>D << 2);
        memory.copy(at(gq, r * Dv), at(g, i * Dv), <usize>Dv << 2);
      }
      gemm(rows, mPad, D, q, D, 1, kT, kPad, pm, kPad, false);
      gemm(rows, mPad, Dv, gq, Dv, 1, vT, kPad, ds, kPad, false);
      for (let r = 0; r < rows; r++) {
        const i = load<i32>(at(rowPos, r));
        const top = load<f32>(at(rowStats, 2 * i));
        rowGradients(at(pm, r * kPad), at(ds, r * kPad), pos, seen, mPad, i, causal, scale, top, load<f32>(at(rowStats, 2 * i + 1)), load<f32>(at(delta, i)));
      }
      gemm(rows, D, m, ds, kPad, 1, kU, D, dQ, D, false);
      scatterAddRows(dQ, rowPos, rows, D, dx);
      gemm(m, D, rows, ds, 1, kPad, q, D, dK, D, true);
      gemm(m, Dv, rows, pm, 1, kPad, gq, Dv, dV, Dv, true);
    }
    scatterAddRows(dK, pos, m, D, dUnit);
    scatterAddRows(dV, pos, m, Dv, dv);
  }
}

/**
 * The key role through the normalisation, for one head: dx_j += inv_j
 * (dUnit_j - x^_j (x^_j . dUnit_j)), with no radial part where |x_j| <= 1e-12
 * (there x^_j = x_j 1e12). inv from inverseNorms.
 */
export function lshGradKeys(x: usize, N: i32, D: i32, inv: usize, dUnit: usize, dx: usize): void {
  for (let j = 0; j < N; j++) {
    const xj = at(x, j * D);
    const uj = at(dUnit, j * D);
    const dj = at(dx, j * D);
    const s = load<f32>(at(inv, j));
    let sq: f32 = 0;
    let dot: f32 = 0;
    for (let d = 0; d < D; d++) {
      const value = load<f32>(at(xj, d));
      sq += value * value;
      dot += load<f32>(at(uj, d)) * value;
    }
    const radial: f32 = Mathf.sqrt(sq) <= <f32>1e-12 ? 0 : dot * s * s;
    for (let d = 0; d < D; d++) {
      store<f32>(at(dj, d), load<f32>(at(dj, d)) + s * (load<f32>(at(uj, d)) - radial * load<f32>(at(xj, d))));
    }
  }
}
