// `linear`: out_i = phi(q_i)^T S / (phi(q_i)^T z + eps), S = sum_j phi(k_j) v_j^T,
// z = sum_j phi(k_j) (SPEC "Changing the order of operations"), in O(N).
// Mirrors src/variants/linear.ts; the float64 math is src/reference/linear.ts.
//
// Keys and queries go by chunks (KC = 128 keys, C = 16 causal rows):
//   - a chunk of keys is featurised into phiK [rows][F] and folded into the
//     state by one GEMM, T = phiK^T V, then S64 += T, z64 += colsum(phiK).
//     The state is float64 (with a float32 copy for the GEMMs), so the
//     running sums of 65536 positive features lose nothing; each GEMM sums
//     only a chunk's terms in float32.
//   - not causal: one pass over the keys, then num = phiQ S32 (a GEMM, S32 the
//     float32 copy of the state) and den = phiQ . z32 + eps per row.
//   - causal (prefix sums): a query chunk reads the state of the keys before
//     its window (GEMM), adds the keys of its own window by a small masked
//     product A = phiQ phiK^T (GEMM, then the mask), A V (GEMM), and only then
//     folds the window into the state. O(N F Dv) time, O(F Dv) state.
//
// FAVOR+ features are exponentials: each row is kept as exp(offset) * phi with
// phi in (0, 1]. The state sits at the scale exp(-offset) of the running
// maximum of the key offsets (rescaled when a larger one arrives). In a causal
// window, row r uses K_r = max(state offset, offsets of the window keys it may
// see), so nothing that it may not see changes a single bit of it. eps enters
// at the unstabilised scale: eps * exp(-qOffset - K).
//
// Every buffer lives in one context block (linearBytes) that the caller hands
// in; kernels never allocate. The recurrent state (one token at a time) is in
// linear-state.ts.
import { gemm, transpose } from '../core/gemm';
import { BLOCK_HEADER, dot, EFFICIENT, expK, FAVOR, Features, featurise, floats, mapOf, writeMap } from '../core/features';
import { at, at64, scaleRow } from '../core/memory';

/**
 * Rows per chunk. Per row, the state costs 2 F Dv multiply-adds (read and
 * update) and the causal window's masked product C (F + Dv): smaller chunks
 * do less work but refresh the float64 state more often.
 */
const C: i32 = 16;

/**
 * Keys per chunk outside causal windows (the not-causal pass, the cache
 * ahead of the first query): the state GEMM sums KC keys in float32, and the
 * float64 state is touched once per KC keys. A multiple of C.
 */
const KC: i32 = 128;

/** Rows per chunk unit: calls must start at multiples of it (so results do not depend on how rows are split). */
export function linearChunk(): i32 {
  return KC;
}

const NEG_INF: f32 = -Infinity;

// ---------------------------------------------------------------------------
// Batch kernel: one context per head (linearHead), then linearAddKeys +
// linearQueryRows (not causal) or linearCausalRows.

/** A head's parameters, state and scratch; the buffers follow it in the same block. */
@unmanaged class Head {
  Dv: i32;
  logEps: f64;
  /** Log scale of S64 and z64: the running maximum of the key offsets; -inf before the first real key. */
  offset: f32;
  /** S32 / z32 are stale. */
  dirty: i32;
  /** Keys folded into the state so far (causal). */
  added: i32;
  s64: usize; // [F][Dv] f64
  z64: usize; // [F] f64
  s32: usize; // [F][Dv]
  z32: usize; // [F] (also the column sums of a key chunk)
  t: usize; // [F][Dv] phiK^T V of a chunk
  zt: usize; // [F] column sums of a chunk
  phiQ: usize; // [C][F]
  phiK: usize; // [KC][F]
  phiKT: usize; // [F][C]
  a: usize; // [C][C]
  den: usize; // [C]
  qOff: usize; // [C]
  kOff: usize; // [KC]
  cmax: usize; // [C] prefix maxima of kOff
  colMax: usize; // [F] efficient: running column maxima of k
}

/**
 * Lays out a head's buffers after the header (when ctx != 0) and returns the
 * block's size in bytes: one function for both, so they cannot disagree.
 */
function headLayout(ctx: usize, F: i32, Dv: i32): f64 {
  const h = changetype<Head>(ctx);
  const fdv = <f64>F * <f64>Dv;
  const cf = <f64>C * <f64>F;
  // float counts of: s64 (f64), z64 (f64), s32, z32, t, zt, phiQ, phiK, phiKT, a, den, qOff, kOff, cmax, colMax
  let ptr: f64 = <f64>(ctx + BLOCK_HEADER);
  if (ctx != 0) h.s64 = <usize>ptr;
  ptr += floats(fdv * 2);
  if (ctx != 0) h.z64 = <usize>ptr;
  ptr += floats(<f64>F * 2);
  if (ctx != 0) h.s32 = <usize>ptr;
  ptr += floats(fdv);
  if (ctx != 0) h.z32 = <usize>ptr;
  ptr += floats(<f64>F);
  if (ctx != 0) h.t = <usize>ptr;
  ptr += floats(fdv);
  if (ctx != 0) h.zt = <usize>ptr;
  ptr += floats(F);
  if (ctx != 0) h.phiQ = <usize>ptr;
  ptr += floats(cf);
  if (ctx != 0) h.phiK = <usize>ptr;
  ptr += floats(<f64>KC * F);
  if (ctx != 0) h.phiKT = <usize>ptr;
  ptr += floats(cf);
  if (ctx != 0) h.a = <usize>ptr;
  ptr += floats(<f64>C * C);
  if (ctx != 0) h.den = <usize>ptr;
  ptr += floats(C);
  if (ctx != 0) h.qOff = <usize>ptr;
  ptr += floats(C);
  if (ctx != 0) h.kOff = <usize>ptr;
  ptr += floats(KC);
  if (ctx != 0) h.cmax = <usize>ptr;
  ptr += floats(C);
  if (ctx != 0) h.colMax = <usize>ptr;
  ptr += floats(F);
  return ptr - <f64>ctx;
}

/** Bytes of one head's context for F features, value width Dv. */
export function linearBytes(F: i32, Dv: i32): f64 {
  return headLayout(0, F, Dv);
}

/** Lays out a context block and starts a head: empty state. */
export function linearHead(ctx: usize, kind: i32, D: i32, Dv: i32, F: i32, M: i32, wt: usize, scale: f32, logEps: f64): void {
  const h = changetype<Head>(ctx);
  writeMap(ctx, kind, D, F, M, wt, scale);
  h.Dv = Dv;
  h.logEps = logEps;
  headLayout(ctx, F, Dv);
  memory.fill(h.s64, 0, <usize>F * <usize>Dv * 8);
  memory.fill(h.z64, 0, <usize>F << 3);
  memory.fill(h.s32, 0, <usize>F * <usize>Dv * 4);
  memory.fill(h.z32, 0, <usize>F << 2);
  for (let f = 0; f < F; f++) store<f32>(at(h.colMax, f), NEG_INF);
  h.offset = kind == FAVOR ? NEG_INF : 0;
  h.dirty = 1;
  h.added = 0;
}

/**
 * Features of keys j0 .. j0 + rows of one head (k: the head's [Nk][D]) into
 * phiK / kOff; padded keys (pad: this batch's u8 [Nk] row, or 0) get zero rows
 * and offset -inf. efficient: exp(k - running column max), the state rescaled
 * when a column maximum grows (its softmax normaliser is z64).
 */
function keyFeatures(ctx: usize, k: usize, pad: usize, j0: i32, rows: i32): void {
  const h = changetype<Head>(ctx);
  const p = mapOf(ctx);
  const F = p.F;
  const x = at(k, j0 * p.D);
  if (p.kind == EFFICIENT) {
    efficientKeys(h, p, x, pad, j0, rows);
    return;
  }
  featurise(p, x, rows, h.phiK, h.kOff);
  if (pad == 0) return;
  for (let r = 0; r < rows; r++) {
    if (load<u8>(pad + <usize>(j0 + r)) != 0) continue;
    memory.fill(at(h.phiK, r * F), 0, <usize>F << 2);
    store<f32>(at(h.kOff, r), NEG_INF);
  }
}

function efficientKeys(h: Head, p: Features, x: usize, pad: usize, j0: i32, rows: i32): void {
  const D = p.D;
  const Dv = h.Dv;
  // new column maxima over this chunk's real keys; rescale the state rows whose maximum grows
  for (let d = 0; d < D; d++) {
    const old = load<f32>(at(h.colMax, d));
    let m = old;
    for (let r = 0; r < rows; r++) {
      if (pad != 0 && load<u8>(pad + <usize>(j0 + r)) == 0) continue;
      m = max(m, load<f32>(at(x, r * D + d)));
    }
    if (m > old) {
      if (old != NEG_INF) {
        const f = Math.exp(<f64>old - <f64>m);
        store<f64>(at64(h.z64, d), load<f64>(at64(h.z64, d)) * f);
        const row = at64(h.s64, d * Dv);
        for (let e = 0; e < Dv; e++) store<f64>(at64(row, e), load<f64>(at64(row, e)) * f);
      }
      store<f32>(at(h.colMax, d), m);
    }
  }
  for (let r = 0; r < rows; r++) {
    const dst = at(h.phiK, r * D);
    if (pad != 0 && load<u8>(pad + <usize>(j0 + r)) == 0) {
      memory.fill(dst, 0, <usize>D << 2);
      continue;
    }
    const src = at(x, r * D);
    let d = 0;
    for (; d + 4 <= D; d += 4) v128.store(at(dst, d), expK(f32x4.sub(v128.load(at(src, d)), v128.load(at(h.colMax, d)))));
    for (; d < D; d++) store<f32>(at(dst, d), Mathf.exp(load<f32>(at(src, d)) - load<f32>(at(h.colMax, d))));
  }
}

/**
 * Folds the `rows` keys whose features are in phiK / kOff (values at v,
 * [rows][Dv]) into the state: S64 += phiK^T V, z64 += colsum(phiK), at the
 * state's scale (favor: the running maximum of the offsets, rescaling the
 * state when it grows).
 */
function absorb(ctx: usize, v: usize, rows: i32): void {
  const h = changetype<Head>(ctx);
  const p = mapOf(ctx);
  const F = p.F;
  const Dv = h.Dv;
  if (p.kind == FAVOR) {
    let top = h.offset;
    for (let r = 0; r < rows; r++) top = max(top, load<f32>(at(h.kOff, r)));
    if (top == NEG_INF) return; // only padding: nothing to add
    if (top > h.offset && h.offset != NEG_INF) {
      const f = Math.exp(<f64>h.offset - <f64>top);
      const n = F * Dv;
      for (let i = 0; i < n; i++) store<f64>(at64(h.s64, i), load<f64>(at64(h.s64, i)) * f);
      for (let i = 0; i < F; i++) store<f64>(at64(h.z64, i), load<f64>(at64(h.z64, i)) * f);
    }
    h.offset = top;
    for (let r = 0; r < rows; r++) {
      const o = load<f32>(at(h.kOff, r));
      if (o != top) scaleRow(at(h.phiK, r * F), at(h.phiK, r * F), o == NEG_INF ? 0 : Mathf.exp(o - top), F);
    }
  }
  // T = phiK^T V (A(f, t) = phiK[t][f]: row stride 1, column stride F)
  gemm(F, Dv, rows, h.phiK, 1, F, v, Dv, h.t, Dv, false);
  // column sums, in float32 over the chunk
  const zs = h.zt;
  memory.fill(zs, 0, <usize>F << 2);
  for (let r = 0; r < rows; r++) {
    const row = at(h.phiK, r * F);
    let f = 0;
    for (; f + 4 <= F; f += 4) v128.store(at(zs, f), f32x4.add(v128.load(at(zs, f)), v128.load(at(row, f))));
    for (; f < F; f++) store<f32>(at(zs, f), load<f32>(at(zs, f)) + load<f32>(at(row, f)));
  }
  // the float64 state and its float32 copy in one pass (efficient: divided later, in refresh)
  addTo64(h.s64, h.t, h.s32, F * Dv);
  addTo64(h.z64, zs, h.z32, F);
  h.dirty = 1;
}

/** dst[i] += src[i] for i < n, float32 into float64; copy[i] = float32(dst[i]). */
function addTo64(dst: usize, src: usize, copy: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const s = v128.load(at(src, i));
    const lo = f64x2.promote_low_f32x4(s);
    const hi = f64x2.promote_low_f32x4(i8x16.shuffle(s, s, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    const d = at64(dst, i);
    const a = f64x2.add(v128.load(d), lo);
    const b = f64x2.add(v128.load(d, 16), hi);
    v128.store(d, a);
    v128.store(d, b, 16);
    const pair = i8x16.shuffle(f32x4.demote_f64x2_zero(a), f32x4.demote_f64x2_zero(b), 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    v128.store(at(copy, i), pair);
  }
  for (; i < n; i++) {
    const x = load<f64>(at64(dst, i)) + <f64>load<f32>(at(src, i));
    store<f64>(at64(dst, i), x);
    store<f32>(at(copy, i), <f32>x);
  }
}

/**
 * The float32 state of efficient: each row of S divided by its column
 * normaliser z (the other maps keep S32 = S64 as they go, in absorb).
 */
function refresh(ctx: usize): void {
  const h = changetype<Head>(ctx);
  const p = mapOf(ctx);
  if (!h.dirty || p.kind != EFFICIENT) return;
  const F = p.F;
  const Dv = h.Dv;
  for (let f = 0; f < F; f++) {
    const z = load<f64>(at64(h.z64, f));
    store<f32>(at(h.z32, f), <f32>z);
    const norm: f64 = p.kind == EFFICIENT ? (z > 0 ? 1 / z : 0) : 1;
    const src = at64(h.s64, f * Dv);
    const dst = at(h.s32, f * Dv);
    for (let e = 0; e < Dv; e++) store<f32>(at(dst, e), <f32>(load<f64>(at64(src, e)) * norm));
  }
  h.dirty = 0;
}

/** eps at the scale of a row whose features are exp(qOff) phi against a state at exp(K). */
// @ts-ignore: decorator
@inline function scaledEps(h: Head, kind: i32, qOff: f32, K: f32): f32 {
  return <f32>Math.exp(kind == FAVOR ? h.logEps - <f64>qOff - <f64>K : h.logEps);
}

/**
 * out row (Dv floats) /= den, or 0 when den is 0 (no key seen, eps = 0). By
 * the reciprocal when it is finite; a den so small (a subnormal eps) that it
 * is not divides each value, so that a 0 stays 0 instead of 0 * inf = NaN.
 */
// @ts-ignore: decorator
@inline function finishRow(out: usize, Dv: i32, den: f32): void {
  const inverse: f32 = den != 0 ? 1 / den : 0;
  if (Mathf.abs(inverse) != Infinity) {
    scaleRow(out, out, inverse, Dv);
    return;
  }
  for (let e = 0; e < Dv; e++) store<f32>(at(out, e), load<f32>(at(out, e)) / den);
}

/**
 * Not causal, keys [j0, j1) of one head (k: [Nk][D], v: [Nk][Dv], pad: this
 * batch's u8 [Nk] row or 0) into the state, in chunks of KC keys from j0.
 */
export function linearAddKeys(ctx: usize, k: usize, v: usize, pad: usize, j0: i32, j1: i32): void {
  const Dv = changetype<Head>(ctx).Dv;
  for (let c0 = j0; c0 < j1; c0 += KC) {
    const rows = min(KC, j1 - c0);
    keyFeatures(ctx, k, pad, c0, rows);
    absorb(ctx, at(v, c0 * Dv), rows);
  }
}

/** Not causal, after every key was added: rows [i0, i1) of out ([Nq][Dv]) from q ([Nq][D]). */
export function linearQueryRows(ctx: usize, q: usize, out: usize, i0: i32, i1: i32): void {
  const h = changetype<Head>(ctx);
  const p = mapOf(ctx);
  const F = p.F;
  const D = p.D;
  const Dv = h.Dv;
  refresh(ctx);
  for (let c0 = i0; c0 < i1; c0 += C) {
    const rows = min(C, i1 - c0);
    const o = at(out, c0 * Dv);
    featurise(p, at(q, c0 * D), rows, h.phiQ, h.qOff);
    gemm(rows, Dv, F, h.phiQ, F, 1, h.s32, Dv, o, Dv, false);
    if (p.kind == EFFICIENT) continue; // rho_q rows sum to 1: no normaliser
    for (let r = 0; r < rows; r++) {
      let den: f32 = 0;
      if (h.offset != NEG_INF) den = dot(at(h.phiQ, r * F), h.z32, F) + scaledEps(h, p.kind, load<f32>(at(h.qOff, r)), h.offset);
      finishRow(at(o, r * Dv), Dv, den);
    }
  }
}

/**
 * Causal rows [i0, i1) of one head: query i sees keys j <= i + Nk - Nq.
 * Calls must come in row order from 0, each starting at a multiple of
 * linearChunk() (the state carries the keys before the call's first window).
 */
export function linearCausalRows(ctx: usize, q: usize, k: usize, v: usize, pad: usize, out: usize, Nq: i32, Nk: i32, i0: i32, i1: i32): void {
  const h = changetype<Head>(ctx);
  const p = mapOf(ctx);
  const F = p.F;
  const D = p.D;
  const Dv = h.Dv;
  const kind = p.kind;
  const favor = kind == FAVOR;
  const shift = Nk - Nq;
  for (let c0 = i0; c0 < i1; c0 += C) {
    const rows = min(C, i1 - c0);
    const kStart = min(Nk, max(0, c0 + shift));
    const kEnd = min(Nk, max(0, c0 + rows + shift));
    // keys before the window (Nk > Nq: the cache ahead of the first query)
    while (h.added < kStart) {
      const n = min(KC, kStart - h.added);
      keyFeatures(ctx, k, pad, h.added, n);
      absorb(ctx, at(v, h.added * Dv), n);
      h.added += n;
    }
    const nk = kEnd - kStart;
    const o = at(out, c0 * Dv);
    featurise(p, at(q, c0 * D), rows, h.phiQ, h.qOff);
    refresh(ctx);
    // the state: num = phiQ S, at the state's scale
    gemm(rows, Dv, F, h.phiQ, F, 1, h.s32, Dv, o, Dv, false);
    if (nk > 0) {
      keyFeatures(ctx, k, pad, kStart, nk);
      transpose(nk, F, h.phiK, F, h.phiKT, C);
      gemm(rows, nk, F, h.phiQ, F, 1, h.phiKT, C, h.a, C, false);
      let top = NEG_INF;
      for (let t = 0; t < nk; t++) {
        top = max(top, load<f32>(at(h.kOff, t)));
        store<f32>(at(h.cmax, t), top);
      }
    }
    const lane = v128(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0);
    for (let r = 0; r < rows; r++) {
      const last = min(c0 + r + shift - kStart, nk - 1); // last window key row r sees (< 0: none)
      const aRow = at(h.a, r * C);
      let K: f32 = 0;
      let s: f32 = 1;
      if (favor) {
        K = last >= 0 ? max(h.offset, load<f32>(at(h.cmax, last))) : h.offset;
        if (K == NEG_INF) {
          // no real key yet: zeros (and a zero row of A for the product below)
          memory.fill(aRow, 0, <usize>C << 2);
          store<f32>(at(h.den, r), 0);
          continue;
        }
        s = h.offset == NEG_INF ? 0 : Mathf.exp(h.offset - K);
      }
      // mask the future (t > last) and bring the window keys to the row's scale
      const lim = i32x4.splat(last);
      const Kv = f32x4.splat(K);
      let acc = f32x4.splat(0);
      for (let t = 0; t < nk; t += 4) {
        const idx = i32x4.add(i32x4.splat(t), lane);
        const seen = i32x4.le_s(idx, lim);
        let a = v128.load(at(aRow, t));
        if (favor) a = f32x4.mul(a, expK(f32x4.min(f32x4.sub(v128.load(at(h.kOff, t)), Kv), f32x4.splat(0))));
        a = v128.and(a, seen);
        v128.store(at(aRow, t), a);
        acc = f32x4.add(acc, a);
      }
      const windowSum = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
      const phiQ = at(h.phiQ, r * F);
      if (s != 1) scaleRow(at(o, r * Dv), at(o, r * Dv), s, Dv);
      store<f32>(at(h.den, r), s * dot(phiQ, h.z32, F) + windowSum + scaledEps(h, kind, load<f32>(at(h.qOff, r)), K));
    }
    if (nk > 0) gemm(rows, Dv, nk, h.a, C, 1, at(v, kStart * Dv), Dv, o, Dv, true);
    for (let r = 0; r < rows; r++) finishRow(at(o, r * Dv), Dv, load<f32>(at(h.den, r)));
    if (nk > 0) {
      absorb(ctx, at(v, kStart * Dv), nk);
      h.added = kEnd;
    }
  }
}
