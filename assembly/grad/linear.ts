// Backward pass of `linear` (SPEC "Gradients"): the gradients of
// sum(out * g) with respect to q, k and v, for every feature map.
// Mirrors src/grad/linear-plan.ts; the forward is assembly/variants/linear.ts.
//
// With the values augmented by a column of ones, V' = [V, 1] (E = Dv + 1
// columns), the state S' = phiK^T V' holds S and z side by side, and row i of
// O' = phiQ S' is [num_i, den_i - eps]. Writing G' = [g_i / den_i, -beta_i]
// (beta_i = g_i . out_i / den_i), the backward pass is linear attention again:
//   dphiQ = G' S'^T,   dphiK = V' R^T,   dV = phiK R,   R = phiQ^T G'
// with, when causal, S' a prefix sum over keys (a forward sweep) and R a
// suffix sum over queries (a reverse sweep): O(N F E) either way. Inside a
// causal chunk of C rows the masked products A = phiQ phiK^T and
// B = G' V'^T take the window's own keys. Not causal is the same sweep with
// every key ahead of the first query (offset Nk), so no window is ever used.
// `efficient` has no denominator: E = Dv and G' = g.
//
// FAVOR+ rows are exp(offset) * phi; queries keep their own offsets and keys
// share the largest (the forward reference's constants): they cancel in
// u = dphi * phi, the only thing the chain rule needs.
//
// Every buffer lives in the workspace block (linearGradBytes); kernels never
// allocate. Calls of one head: linearGradHead, linearGradForward (chunks in
// order), linearGradReverse (chunks in reverse order), linearGradFinish. The
// chain rule through phi is in features.ts.
import { gemm, transpose } from '../core/gemm';
import { at, at64, scaleRow } from '../core/memory';
import { expNonPositive } from '../core/simd';
import { BLOCK_HEADER, EFFICIENT, FAVOR, Features, featurise, floats, mapOf, writeMap } from '../core/features';
import { throughFeatures } from './features';

/** Rows per chunk of the sweeps: the masked window products are C x C. */
const C: i32 = 64;
const NEG_INF: f32 = -Infinity;

/** One head's sizes, inputs and buffers. */
@unmanaged class Grad {
  Dv: i32;
  E: i32;
  Nq: i32;
  Nk: i32;
  /** Key position of query 0 (Nk - Nq when causal; Nk otherwise: every key ahead). */
  off: i32;
  logEps: f64;
  /** The keys' shared log scale (favor). */
  kOffset: f32;
  q: usize;
  k: usize;
  g: usize;
  pad: usize;
  /** The projection [M][D] (times sqrt(scale) for favor), for the chain rule. */
  w: usize;
  phiQ: usize; // [Nq][F]
  qOff: usize; // [Nq]
  phiK: usize; // [Nk][F]
  kOff: usize; // [Nk]
  vA: usize; // [Nk][E]
  gA: usize; // [Nq][E]: O' then G'
  dPhiQ: usize; // [Nq][F]
  dPhiK: usize; // [Nk][F]
  dV: usize; // [Nk][Dv]
  x: usize; // [max(Nq, Nk)][D]
  s64: usize; // [F][E] f64: S', then R
  s32: usize; // [F][E]
  sT: usize; // [E][F]
  t: usize; // [F][E] (efficient: column maxima and sums, 2 D)
  tr: usize; // [max(F, E)][C] a window operand transposed
  a: usize; // [C][C]
  b: usize; // [C][C]
}

/** Lays out the buffers after the header (when ws != 0) and returns the block's size in bytes. */
function layout(ws: usize, Nq: i32, Nk: i32, D: i32, Dv: i32, F: i32): f64 {
  const h = changetype<Grad>(ws);
  const E = <f64>(Dv + 1);
  const nq = <f64>Nq, nk = <f64>Nk, f = <f64>F;
  let ptr: f64 = <f64>(ws + BLOCK_HEADER);
  if (ws != 0) h.phiQ = <usize>ptr;
  ptr += floats(nq * f);
  if (ws != 0) h.qOff = <usize>ptr;
  ptr += floats(nq);
  if (ws != 0) h.phiK = <usize>ptr;
  ptr += floats(nk * f);
  if (ws != 0) h.kOff = <usize>ptr;
  ptr += floats(nk);
  if (ws != 0) h.vA = <usize>ptr;
  ptr += floats(nk * E);
  if (ws != 0) h.gA = <usize>ptr;
  ptr += floats(nq * E);
  if (ws != 0) h.dPhiQ = <usize>ptr;
  ptr += floats(nq * f);
  if (ws != 0) h.dPhiK = <usize>ptr;
  ptr += floats(nk * f);
  if (ws != 0) h.dV = <usize>ptr;
  ptr += floats(nk * <f64>Dv);
  if (ws != 0) h.x = <usize>ptr;
  ptr += floats(Math.max(nq, nk) * <f64>D);
  if (ws != 0) h.s64 = <usize>ptr;
  ptr += floats(f * E * 2);
  if (ws != 0) h.s32 = <usize>ptr;
  ptr += floats(f * E);
  if (ws != 0) h.sT = <usize>ptr;
  ptr += floats(E * f);
  if (ws != 0) h.t = <usize>ptr;
  ptr += floats(Math.max(f * E, 2 * <f64>D));
  if (ws != 0) h.tr = <usize>ptr;
  ptr += floats(Math.max(f, E) * <f64>C);
  if (ws != 0) h.a = <usize>ptr;
  ptr += floats(<f64>(C * C));
  if (ws != 0) h.b = <usize>ptr;
  ptr += floats(<f64>(C * C));
  return ptr - <f64>ws;
}

/** Bytes of the workspace of one head's backward pass. */
export function linearGradBytes(Nq: i32, Nk: i32, D: i32, Dv: i32, F: i32): f64 {
  return layout(0, Nq, Nk, D, Dv, F);
}

/** Rows per chunk: the sweeps' calls start at multiples of it. */
export function linearGradChunk(): i32 {
  return C;
}

/** Whether key j is padding. */
// @ts-ignore: decorator
@inline function padded(pad: usize, j: i32): bool {
  return pad != 0 && load<u8>(pad + <usize>j) == 0;
}

/** efficient keys: the softmax of each column of k [Nk][D] over the real keys, into phiK (padded rows 0). */
function columnSoftmax(h: Grad, D: i32): void {
  const Nk = h.Nk;
  const colMax = h.t;
  const colSum = at(h.t, D);
  for (let d = 0; d < D; d++) store<f32>(at(colMax, d), NEG_INF);
  for (let j = 0; j < Nk; j++) {
    if (padded(h.pad, j)) continue;
    for (let d = 0; d < D; d++) store<f32>(at(colMax, d), max(load<f32>(at(colMax, d)), load<f32>(at(h.k, j * D + d))));
  }
  memory.fill(colSum, 0, <usize>D << 2);
  for (let j = 0; j < Nk; j++) {
    const row = at(h.phiK, j * D);
    if (padded(h.pad, j)) {
      memory.fill(row, 0, <usize>D << 2);
      continue;
    }
    const src = at(h.k, j * D);
    let d = 0;
    // each k_jd <= its column's maximum: exp cannot overflow
    for (; d + 4 <= D; d += 4) {
      const e = expNonPositive(f32x4.sub(v128.load(at(src, d)), v128.load(at(colMax, d))));
      v128.store(at(row, d), e);
      v128.store(at(colSum, d), f32x4.add(v128.load(at(colSum, d)), e));
    }
    for (; d < D; d++) {
      const e = Mathf.exp(load<f32>(at(src, d)) - load<f32>(at(colMax, d)));
      store<f32>(at(row, d), e);
      store<f32>(at(colSum, d), load<f32>(at(colSum, d)) + e);
    }
  }
  for (let d = 0; d < D; d++) store<f32>(at(colSum, d), 1 / load<f32>(at(colSum, d)));
  for (let j = 0; j < Nk; j++) {
    if (padded(h.pad, j)) continue;
    const row = at(h.phiK, j * D);
    for (let d = 0; d < D; d++) store<f32>(at(row, d), load<f32>(at(row, d)) * load<f32>(at(colSum, d)));
  }
}

/** The key features of the head, padded keys zero, all at one shared scale exp(kOffset). */
function keyFeatures(h: Grad, p: Features): void {
  const Nk = h.Nk;
  const F = p.F;
  h.kOffset = 0;
  if (p.kind == EFFICIENT) {
    columnSoftmax(h, p.D);
    return;
  }
  featurise(p, h.k, Nk, h.phiK, h.kOff);
  let top = NEG_INF;
  for (let j = 0; j < Nk; j++) {
    if (padded(h.pad, j)) {
      memory.fill(at(h.phiK, j * F), 0, <usize>F << 2);
      continue;
    }
    top = max(top, load<f32>(at(h.kOff, j)));
  }
  if (p.kind != FAVOR || top == NEG_INF) return;
  // one constant for every key of the head: it cancels exactly (SPEC)
  h.kOffset = top;
  for (let j = 0; j < Nk; j++) {
    if (!padded(h.pad, j)) scaleRow(at(h.phiK, j * F), at(h.phiK, j * F), <f32>Math.exp(<f64>load<f32>(at(h.kOff, j)) - <f64>top), F);
  }
}

/** s64 += A^T B over `rows` rows: A [rows][F] (lda F), B [rows][E] (ldb E); t is the float32 partial sum. */
function addProducts(h: Grad, F: i32, rows: i32, a: usize, b: usize): void {
  if (rows <= 0) return;
  const E = h.E;
  gemm(F, E, rows, a, 1, F, b, E, h.t, E, false);
  const n = F * E;
  for (let i = 0; i < n; i++) store<f64>(at64(h.s64, i), load<f64>(at64(h.s64, i)) + <f64>load<f32>(at(h.t, i)));
}

/** s32 = the float32 copy of s64, sT its transpose [E][F]. */
function refresh(h: Grad, F: i32): void {
  const n = F * h.E;
  for (let i = 0; i < n; i++) store<f32>(at(h.s32, i), <f32>load<f64>(at64(h.s64, i)));
  transpose(F, h.E, h.s32, h.E, h.sT, F);
}

/**
 * Starts a head: sizes, inputs (q [Nq][D], k [Nk][D], v [Nk][Dv], g [Nq][Dv],
 * pad this batch's u8 [Nk] row or 0), the feature map (wt: its projection
 * [D][M] for featurise, w: [M][D] for the chain rule, both times sqrt(scale)
 * for favor), the features of q and k, V' and the state of the keys ahead of
 * query 0.
 */
export function linearGradHead(
  ws: usize, kind: i32, D: i32, Dv: i32, F: i32, M: i32, wt: usize, w: usize, scale: f32, logEps: f64,
  Nq: i32, Nk: i32, causal: bool, q: usize, k: usize, v: usize, pad: usize, g: usize,
): void {
  const h = changetype<Grad>(ws);
  layout(ws, Nq, Nk, D, Dv, F);
  const p = writeMap(ws, kind, D, F, M, wt, scale);
  h.Dv = Dv;
  h.E = kind == EFFICIENT ? Dv : Dv + 1;
  h.Nq = Nq;
  h.Nk = Nk;
  h.off = causal ? Nk - Nq : Nk;
  h.logEps = logEps;
  h.q = q;
  h.k = k;
  h.g = g;
  h.pad = pad;
  h.w = w;
  const E = h.E;
  featurise(p, q, Nq, h.phiQ, h.qOff);
  keyFeatures(h, p);
  for (let j = 0; j < Nk; j++) {
    memory.copy(at(h.vA, j * E), at(v, j * Dv), <usize>Dv << 2);
    if (E > Dv) store<f32>(at(h.vA, j * E + Dv), 1);
  }
  memory.fill(h.s64, 0, <usize>F * <usize>E * 8);
  const ahead = min(max(h.off, 0), Nk);
  for (let j = 0; j < ahead; j += 256) addProducts(h, F, min(256, ahead - j), at(h.phiK, j * F), at(h.vA, j * E));
  refresh(h, F);
}

/** A[r][t] = 0 where key t0 + t of the window is later than query r (t1 - t0 columns, `rows` rows). */
function maskWindow(m: usize, rows: i32, t0: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    for (let t = max(0, r - t0 + 1); t < cols; t++) store<f32>(at(m, r * cols + t), 0);
  }
}

/** Row r of O' (at row, E wide) into G' given g's row. */
function gradRow(h: Grad, row: usize, g: usize, qOff: f32): void {
  const Dv = h.Dv;
  const E = h.E;
  if (E == Dv) {
    memory.copy(row, g, <usize>Dv << 2);
    return;
  }
  // eps at the unstabilised scale: exp(log eps - qOffset - kOffset)
  const den = <f64>load<f32>(at(row, Dv)) + Math.exp(h.logEps - <f64>qOff - <f64>h.kOffset);
  const inv = den == 0 ? 0 : 1 / den;
  let beta: f64 = 0;
  for (let e = 0; e < Dv; e++) beta += <f64>load<f32>(at(g, e)) * <f64>load<f32>(at(row, e));
  beta *= inv * inv;
  const scaled = <f32>inv;
  for (let e = 0; e < Dv; e++) store<f32>(at(row, e), load<f32>(at(g, e)) * scaled);
  store<f32>(at(row, Dv), <f32>-beta);
}

/**
 * The chunk's masked window products, `rows` x `tw` (keys t0 .. t1 of the
 * window at w0): A = phiQ phiK_w^T into a and B = G' V'_w^T into b (G' as gA
 * holds it at the time), each zero where the key is later than the query.
 */
function windowProducts(h: Grad, F: i32, rows: i32, c: i32, w0: i32, t0: i32, tw: i32, withA: bool): void {
  const E = h.E;
  if (withA) {
    transpose(tw, F, at(h.phiK, (w0 + t0) * F), F, h.tr, tw);
    gemm(rows, tw, F, at(h.phiQ, c * F), F, 1, h.tr, tw, h.a, tw, false);
    maskWindow(h.a, rows, t0, tw);
  }
  transpose(tw, E, at(h.vA, (w0 + t0) * E), E, h.tr, tw);
  gemm(rows, tw, E, at(h.gA, c * E), E, 1, h.tr, tw, h.b, tw, false);
  maskWindow(h.b, rows, t0, tw);
}

/** The forward sweep over query chunks [i0, i1) (i0 a multiple of C, calls in order): G' and dphiQ of their rows. */
export function linearGradForward(ws: usize, i0: i32, i1: i32): void {
  const h = changetype<Grad>(ws);
  const F = mapOf(ws).F;
  const E = h.E;
  for (let c = i0; c < i1; c += C) {
    const rows = min(C, h.Nq - c);
    const w0 = c + h.off;
    const t0 = max(0, -w0);
    const tw = min(C, h.Nk - w0) - t0;
    const phiQ = at(h.phiQ, c * F);
    const gA = at(h.gA, c * E);
    const phiK = at(h.phiK, (w0 + t0) * F);
    const vA = at(h.vA, (w0 + t0) * E);
    // O' = phiQ S' + mask(phiQ phiK_w^T) V'_w, then G' row by row
    gemm(rows, E, F, phiQ, F, 1, h.s32, E, gA, E, false);
    if (tw > 0) {
      transpose(tw, F, phiK, F, h.tr, tw);
      gemm(rows, tw, F, phiQ, F, 1, h.tr, tw, h.a, tw, false);
      maskWindow(h.a, rows, t0, tw);
      gemm(rows, E, tw, h.a, tw, 1, vA, E, gA, E, true);
    }
    for (let r = 0; r < rows; r++) gradRow(h, at(gA, r * E), at(h.g, (c + r) * h.Dv), load<f32>(at(h.qOff, c + r)));
    // dphiQ = G' S'^T + mask(G' V'_w^T) phiK_w
    const dPhiQ = at(h.dPhiQ, c * F);
    gemm(rows, F, E, gA, E, 1, h.sT, F, dPhiQ, F, false);
    if (tw > 0) {
      windowProducts(h, F, rows, c, w0, t0, tw, false);
      gemm(rows, F, tw, h.b, tw, 1, phiK, F, dPhiQ, F, true);
      // the window's keys join the state of the next chunk
      addProducts(h, F, tw, phiK, vA);
      refresh(h, F);
    }
  }
}

/** Starts the reverse sweep: R = 0 in s64. */
export function linearGradReverseStart(ws: usize): void {
  const h = changetype<Grad>(ws);
  memory.fill(h.s64, 0, <usize>mapOf(ws).F * <usize>h.E * 8);
  refresh(h, mapOf(ws).F);
}

/**
 * The reverse sweep over query chunks [i0, i1), last chunk first (calls in
 * reverse order, after the whole forward sweep): dphiK and dV of each chunk's
 * window, R (the queries after the chunk) plus the masked window products;
 * then the chunk's queries join R.
 */
export function linearGradReverse(ws: usize, i0: i32, i1: i32): void {
  const h = changetype<Grad>(ws);
  const F = mapOf(ws).F;
  const E = h.E;
  const Dv = h.Dv;
  const last = i0 + ((i1 - 1 - i0) / C) * C;
  for (let c = last; c >= i0; c -= C) {
    const rows = min(C, h.Nq - c);
    const w0 = c + h.off;
    const t0 = max(0, -w0);
    const tw = min(C, h.Nk - w0) - t0;
    const phiQ = at(h.phiQ, c * F);
    const gA = at(h.gA, c * E);
    if (tw > 0) {
      const j = w0 + t0;
      const dPhiK = at(h.dPhiK, j * F);
      const dV = at(h.dV, j * Dv);
      // dphiK_w = V'_w R^T + B^T phiQ, dV_w = phiK_w R + A^T G'
      gemm(tw, F, E, at(h.vA, j * E), E, 1, h.sT, F, dPhiK, F, false);
      gemm(tw, Dv, F, at(h.phiK, j * F), F, 1, h.s32, E, dV, Dv, false);
      windowProducts(h, F, rows, c, w0, t0, tw, true);
      gemm(tw, F, rows, h.b, 1, tw, phiQ, F, dPhiK, F, true);
      gemm(tw, Dv, rows, h.a, 1, tw, gA, E, dV, Dv, true);
    }
    addProducts(h, F, rows, phiQ, gA);
    refresh(h, F);
  }
}

/** out (+)= x for n floats. */
function storeOrAdd(out: usize, x: usize, n: i32, accumulate: bool): void {
  if (!accumulate) {
    memory.copy(out, x, <usize>n << 2);
    return;
  }
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(at(out, i), f32x4.add(v128.load(at(out, i)), v128.load(at(x, i))));
  for (; i < n; i++) store<f32>(at(out, i), load<f32>(at(out, i)) + load<f32>(at(x, i)));
}

/** efficient keys: the softmax of each column over the real keys, dk_jd = phi_jd (dphi_jd - sum_j phi_jd dphi_jd). */
function throughColumnSoftmax(h: Grad, D: i32, dk: usize): void {
  const s = h.t;
  memory.fill(s, 0, <usize>D << 2);
  for (let j = 0; j < h.Nk; j++) {
    for (let d = 0; d < D; d++) store<f32>(at(s, d), load<f32>(at(s, d)) + load<f32>(at(h.phiK, j * D + d)) * load<f32>(at(h.dPhiK, j * D + d)));
  }
  for (let j = 0; j < h.Nk; j++) {
    for (let d = 0; d < D; d++) store<f32>(at(dk, j * D + d), load<f32>(at(h.phiK, j * D + d)) * (load<f32>(at(h.dPhiK, j * D + d)) - load<f32>(at(s, d))));
  }
}

/**
 * Ends a head after both sweeps: the keys ahead of query 0 take all of R,
 * padded keys get no gradient, then the chain rule through phi: dq [Nq][D]
 * is written, dk [Nk][D] and dv [Nk][Dv] written or, with `accumulate` (the
 * later query heads of a kv head), added to.
 */
export function linearGradFinish(ws: usize, dq: usize, dk: usize, dv: usize, accumulate: bool): void {
  const h = changetype<Grad>(ws);
  const p = mapOf(ws);
  const F = p.F;
  const D = p.D;
  const E = h.E;
  const Dv = h.Dv;
  const Nk = h.Nk;
  const ahead = min(max(h.off, 0), Nk);
  if (ahead > 0) {
    gemm(ahead, F, E, h.vA, E, 1, h.sT, F, h.dPhiK, F, false);
    gemm(ahead, Dv, F, h.phiK, F, 1, h.s32, E, h.dV, Dv, false);
  }
  for (let j = 0; j < Nk; j++) {
    if (!padded(h.pad, j)) continue;
    memory.fill(at(h.dPhiK, j * F), 0, <usize>F << 2);
    memory.fill(at(h.dV, j * Dv), 0, <usize>Dv << 2);
  }
  throughFeatures(p, h.w, h.q, h.phiQ, h.dPhiQ, h.Nq, dq);
  if (p.kind == EFFICIENT) throughColumnSoftmax(h, D, h.x);
  else throughFeatures(p, h.w, h.k, h.phiK, h.dPhiK, Nk, h.x);
  storeOrAdd(dk, h.x, Nk * D, accumulate);
  storeOrAdd(dv, h.dV, Nk * Dv, accumulate);
}
