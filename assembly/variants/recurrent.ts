// Recurrent linear attention (SPEC "Recurrent linear attention", the ONNX
// LinearAttention family): per (batch, kv head) a state S [D][Dv] updated by
// the rule of src/reference/recurrent.ts (the float64 token-by-token math),
// here evaluated by chunks of c tokens. With S the state before the chunk,
// Gp_i = g_0 + .. + g_i the running log decay (0 without decay, per head or
// per key dim), Lambda_i = exp(Gp_i), and u_j what token j writes:
//
//   S_i  = Lambda_i S + sum_{j <= i} exp(Gp_i - Gp_j) k_j u_j^T
//   o_i  = scale (Lambda_i q_i)^T S + sum_{j <= i} P_ij u_j,
//          P_ij = scale sum_d q_id k_jd exp(Gp_id - Gp_jd)
//   u_i  = v_i                                     (linear, gated)
//   u_i  = beta_i (v_i - S'^T k_i), i.e. the lower-triangular system
//          u_i + sum_{j < i} L_ij u_j = beta_i (v_i - (Lambda_i k_i)^T S),
//          L_ij = beta_i sum_d k_id k_jd exp(Gp_id - Gp_jd)  (delta rules,
//          solved by forward substitution: the UT transform's system)
//   S_next = Lambda_end S + sum_j (exp(Gp_end - Gp_j) k_j) u_j^T
//
// so a chunk is GEMMs against the state (Q S, K S, K^T U) and a masked c x c
// product inside it. Decay stays stable in float32: every factor is the exp
// of a sum of the chunk's own log decays (exp(sum of g over tokens j+1..i),
// never exp(G) / exp(G')), so nothing overflows that the math keeps finite.
// The state is float64 across chunks (S64, with a float32 copy S32 for the
// GEMMs): each chunk's update sums only c terms in float32, so N = 65536
// tokens add no drift. Per-key-dim decay weighs each pair by a vector of
// exps, computed pair by pair in chunks of CV tokens; per-head decay (or
// none) takes Q K^T by a GEMM and one exp per pair, in chunks of C.
//
// Rows of q, k, v, out are read in place through row strides (either layout);
// every other buffer lives in the work block (recurrentWorkBytes) or the
// state block (recurrentStateBytes) that the caller hands in.
import { gemm, transpose } from '../core/gemm';
import { at, at64, scaleRow } from '../core/memory';
import { expNonPositive, madd, roundUp } from '../core/simd';

/** Tokens per chunk without decay or with a decay per head. */
const C: i32 = 64;
/** Tokens per chunk with a decay per key dim (each pair of tokens costs D exps). */
const CV: i32 = 16;

// mode bits, as src/variants/recurrent.ts passes them
const GATED: i32 = 1;
const PER_DIM: i32 = 2;
const DELTA: i32 = 4;

/** exp of four lanes of any sign: exp(-|x|), inverted where x > 0 (exp(-Infinity) = 0, NaN stays NaN). */
// @ts-ignore: decorator
@inline function expAny(x: v128): v128 {
  const e = expNonPositive(f32x4.neg(f32x4.abs(x)));
  return v128.bitselect(f32x4.div(f32x4.splat(1), e), e, f32x4.gt(x, f32x4.splat(0)));
}

// @ts-ignore: decorator
@inline function hsum(x: v128): f32 {
  return f32x4.extract_lane(x, 0) + f32x4.extract_lane(x, 1) + f32x4.extract_lane(x, 2) + f32x4.extract_lane(x, 3);
}

/** Tokens per chunk for a mode: calls start at multiples of it, so the result does not depend on how a head is split. */
export function recurrentChunk(mode: i32): i32 {
  return mode & PER_DIM ? CV : C;
}

/** Bytes of a state block: S64 [D][Dv] float64, then S32 [D][roundUp(Dv, 4)] float32 (padding 0). In float64, so that no size overflows. */
export function recurrentStateBytes(D: i32, Dv: i32): f64 {
  return <f64>D * <f64>Dv * 8 + <f64>D * <f64>roundUp(Dv, 4) * 4;
}

/** Loads a state block from `init` [D][Dv] float32, or zeros when init is 0. */
export function recurrentLoad(state: usize, init: usize, D: i32, Dv: i32): void {
  const Dv4 = roundUp(Dv, 4);
  const s32 = at64(state, D * Dv);
  memory.fill(s32, 0, <usize>(D * Dv4) << 2);
  for (let d = 0; d < D; d++) {
    for (let c = 0; c < Dv; c++) {
      const x: f32 = init ? load<f32>(at(init, d * Dv + c)) : 0;
      store<f64>(at64(state, d * Dv + c), <f64>x);
      store<f32>(at(s32, d * Dv4 + c), x);
    }
  }
}

/** Writes the state as float32 [D][Dv] to `dst`. */
export function recurrentStore(state: usize, dst: usize, D: i32, Dv: i32): void {
  for (let i = 0; i < D * Dv; i++) store<f32>(at(dst, i), <f32>load<f64>(at64(state, i)));
}

// The work block's buffers, set by `layout` at the start of each call (each
// thread runs its own module instance, so these globals are its own).
let KP: usize = 0; // keys of the chunk [C][D4], padded with zeros
let QP: usize = 0; // queries of the group's heads [group][C][D4]
let VP: usize = 0; // values [C][Dv4]
let GP: usize = 0; // log decays [C][D4] (per key dim) or [C]
let EQ: usize = 0; // exp(Gp_i): [C][D4] or [C]
let EK: usize = 0; // exp(Gp_end - Gp_i): [C][D4] or [C]
let KT: usize = 0; // keys transposed [D][C]
let KL: usize = 0; // Lambda_i k_i, then exp(Gp_end - Gp_i) k_i [C][D4]
let QL: usize = 0; // scale Lambda_i q_i [C][D4]
let KS: usize = 0; // (Lambda_i k_i)^T S [C][Dv4]
let U: usize = 0; // what each token writes [C][Dv4]
let T: usize = 0; // the chunk's update of the state [D][Dv]
let P: usize = 0; // query-key weights of the group's heads [group][C][C]
let L: usize = 0; // key-key weights of the delta system [C][C]
let F: usize = 0; // per-head decay: exp(Gp_i - Gp_j) [C][C]
let E: usize = 0; // per key dim: exp(Gp_id - Gp_jd) of one pair [D4]
let R: usize = 0; // per key dim: the running sum Gp_i - Gp_j [D4]

// 64-bit, so that sizing a block too large for memory reports its size instead of wrapping
let cursor: u64 = 0;

/** The next `floats` of the work block (16-byte aligned). */
function take(floats: i64): usize {
  const start = cursor;
  cursor += <u64>((floats + 3) & ~3) << 2;
  return <usize>start;
}

/** Lays the work block out; returns its size in bytes. */
function layout(work: usize, D: i32, Dv: i32, group: i32): u64 {
  const D4: i64 = roundUp(D, 4);
  const Dv4: i64 = roundUp(Dv, 4);
  const C64: i64 = C;
  cursor = work;
  KP = take(C64 * D4);
  QP = take(<i64>group * C64 * D4);
  VP = take(C64 * Dv4);
  GP = take(C64 * D4);
  EQ = take(C64 * D4);
  EK = take(C64 * D4);
  KT = take(<i64>D * C64);
  KL = take(C64 * D4);
  QL = take(C64 * D4);
  KS = take(C64 * Dv4);
  U = take(C64 * Dv4);
  T = take(<i64>D * <i64>Dv);
  P = take(<i64>group * C64 * C64);
  L = take(C64 * C64);
  F = take(C64 * C64);
  E = take(D4);
  R = take(D4);
  return cursor - <u64>work;
}

/** Bytes of one thread's work block for kv heads of `group` query heads. */
export function recurrentWorkBytes(D: i32, Dv: i32, group: i32): f64 {
  return <f64>layout(0, D, Dv, group);
}

/** Copies c rows of n floats (ld apart) into rows of n4 (zero padding). */
function copyRows(src: usize, ld: i32, c: i32, n: i32, dst: usize, n4: i32): void {
  for (let i = 0; i < c; i++) {
    memory.copy(at(dst, i * n4), at(src, i * ld), <usize>n << 2);
    memory.fill(at(dst, i * n4 + n), 0, <usize>(n4 - n) << 2);
  }
}

/** dst[i] = f[i] * x[i] over n4 lanes (f a row of factors). */
function mulRow(dst: usize, f: usize, x: usize, n4: i32): void {
  for (let d = 0; d < n4; d += 4) v128.store(at(dst, d), f32x4.mul(v128.load(at(f, d)), v128.load(at(x, d))));
}

/**
 * The decay factors of a chunk: EQ_i = exp(Gp_i) and EK_i = exp(Gp_end -
 * Gp_i), from running sums of the chunk's log decays (w lanes per token).
 */
function decayFactors(c: i32, w: i32): void {
  for (let d = 0; d < w; d += 4) {
    let run = f32x4.splat(0);
    for (let i = 0; i < c; i++) {
      run = f32x4.add(run, v128.load(at(GP, i * w + d)));
      v128.store(at(EQ, i * w + d), expAny(run));
    }
    run = f32x4.splat(0);
    for (let i = c - 1; i >= 0; i--) {
      v128.store(at(EK, i * w + d), expAny(run));
      run = f32x4.add(run, v128.load(at(GP, i * w + d)));
    }
  }
}

/** Per-head decay (token i's log decay at GP[4 i]): F_ij = exp(g_{j+1} + .. + g_i) for j <= i (rows of C). */
function pairFactors(c: i32): void {
  for (let j = 0; j < c; j++) {
    let run: f32 = 0;
    store<f32>(at(F, j * C + j), 0);
    for (let i = j + 1; i < c; i++) {
      run += load<f32>(at(GP, i * 4));
      store<f32>(at(F, i * C + j), run);
    }
  }
  for (let i = 0; i < c; i++) {
    for (let j = 0; j < roundUp(i + 1, 4); j += 4) v128.store(at(F, i * C + j), expAny(v128.load(at(F, i * C + j))));
  }
}

/**
 * Without a per-key-dim decay: W [c][C] = X K^T (a GEMM on the transposed
 * keys), then W_ij *= s_i F_ij below the diagonal (on it too when
 * `diagonal`), 0 elsewhere. `rowScale` 0: s_i = s; else s_i = s * beta_i.
 */
function maskedProduct(W: usize, X: usize, c: i32, D: i32, D4: i32, s: f32, gated: bool, diagonal: bool, beta: usize, betaLd: i32): void {
  gemm(c, c, D, X, D4, 1, KT, C, W, C, false);
  for (let i = 0; i < c; i++) {
    const si = beta ? s * load<f32>(at(beta, i * betaLd)) : s;
    const last = diagonal ? i : i - 1;
    for (let j = 0; j <= last; j++) {
      const f = gated ? load<f32>(at(F, i * C + j)) : 1;
      store<f32>(at(W, i * C + j), load<f32>(at(W, i * C + j)) * si * f);
    }
    for (let j = last + 1; j < c; j++) store<f32>(at(W, i * C + j), 0);
  }
}

/**
 * With a per-key-dim decay: for each pair j <= i the vector exp(Gp_i - Gp_j)
 * (a running sum over i for each j), then P_ij of every query head and,
 * for delta rules, L_ij (j < i).
 */
function perDimProducts(c: i32, D4: i32, group: i32, scale: f32, delta: bool, beta: usize, betaLd: i32): void {
  // the upper triangles stay 0 (the products read rows < c only)
  for (let g = 0; g < group; g++) memory.fill(at(P, g * C * C), 0, <usize>(c * C) << 2);
  memory.fill(L, 0, <usize>(c * C) << 2);
  for (let j = 0; j < c; j++) {
    memory.fill(R, 0, <usize>D4 << 2);
    const kj = at(KP, j * D4);
    for (let i = j; i < c; i++) {
      if (i > j) for (let d = 0; d < D4; d += 4) v128.store(at(R, d), f32x4.add(v128.load(at(R, d)), v128.load(at(GP, i * D4 + d))));
      let acc = f32x4.splat(0);
      const ki = at(KP, i * D4);
      for (let d = 0; d < D4; d += 4) {
        const e = f32x4.mul(expAny(v128.load(at(R, d))), v128.load(at(kj, d)));
        v128.store(at(E, d), e);
        acc = madd(v128.load(at(ki, d)), e, acc);
      }
      if (delta && i > j) store<f32>(at(L, i * C + j), load<f32>(at(beta, i * betaLd)) * hsum(acc));
      for (let g = 0; g < group; g++) {
        const qi = at(QP, (g * C + i) * D4);
        let pacc = f32x4.splat(0);
        for (let d = 0; d < D4; d += 4) pacc = madd(v128.load(at(qi, d)), v128.load(at(E, d)), pacc);
        store<f32>(at(P, (g * C + i) * C + j), scale * hsum(pacc));
      }
    }
  }
}

/** The delta system: U_i = beta_i (v_i - KS_i) - sum_{j < i} L_ij U_j, row by row. */
function solveWrites(c: i32, Dv4: i32, beta: usize, betaLd: i32): void {
  for (let i = 0; i < c; i++) {
    const b = f32x4.splat(load<f32>(at(beta, i * betaLd)));
    const ui = at(U, i * Dv4);
    for (let d = 0; d < Dv4; d += 4) v128.store(at(ui, d), f32x4.mul(b, f32x4.sub(v128.load(at(VP, i * Dv4 + d)), v128.load(at(KS, i * Dv4 + d)))));
    for (let j = 0; j < i; j++) {
      const l = f32x4.splat(-load<f32>(at(L, i * C + j)));
      const uj = at(U, j * Dv4);
      for (let d = 0; d < Dv4; d += 4) v128.store(at(ui, d), madd(l, v128.load(at(uj, d)), v128.load(at(ui, d))));
    }
  }
}

/**
 * Tokens [t0, t1) of one kv head and its `group` query heads, from the
 * state block `state` on. q, k, v, out point at token 0 of their head (q
 * and out at the group's first head, the next `qHead` / `oHead` floats
 * apart); rows `qLd`, `kLd`, `vLd`, `oLd` floats apart; `decay` and `beta`
 * at token 0 of their head, tokens `decayLd` / `betaLd` apart (0 where the
 * rule has none). `mode`: GATED | PER_DIM | DELTA. t0 a multiple of
 * recurrentChunk(mode).
 */
export function recurrentRows(
  work: usize, state: usize,
  q: usize, qLd: i32, qHead: i32, k: usize, kLd: i32, v: usize, vLd: i32,
  decay: usize, decayLd: i32, beta: usize, betaLd: i32,
  out: usize, oLd: i32, oHead: i32,
  group: i32, D: i32, Dv: i32, mode: i32, scale: f32, t0: i32, t1: i32,
): void {
  layout(work, D, Dv, group);
  const chunk = recurrentChunk(mode);
  for (let c0 = t0; c0 < t1; c0 += chunk) {
    const c = min(chunk, t1 - c0);
    runChunk(state, at(q, c0 * qLd), qLd, qHead, at(k, c0 * kLd), kLd, at(v, c0 * vLd), vLd, decay ? at(decay, c0 * decayLd) : 0, decayLd, beta ? at(beta, c0 * betaLd) : 0, betaLd, at(out, c0 * oLd), oLd, oHead, group, D, Dv, mode, scale, c);
  }
}

function runChunk(
  state: usize,
  q: usize, qLd: i32, qHead: i32, k: usize, kLd: i32, v: usize, vLd: i32,
  decay: usize, decayLd: i32, beta: usize, betaLd: i32,
  out: usize, oLd: i32, oHead: i32,
  group: i32, D: i32, Dv: i32, mode: i32, scale: f32, c: i32,
): void {
  const D4 = roundUp(D, 4);
  const Dv4 = roundUp(Dv, 4);
  const gated = (mode & GATED) != 0;
  const perDim = (mode & PER_DIM) != 0;
  const delta = (mode & DELTA) != 0;
  const S64 = state;
  const S32 = at64(state, D * Dv);
  const w = perDim ? D4 : 4;

  copyRows(k, kLd, c, D, KP, D4);
  copyRows(v, vLd, c, Dv, VP, Dv4);
  for (let g = 0; g < group; g++) copyRows(at(q, g * qHead), qLd, c, D, at(QP, g * C * D4), D4);
  if (gated) {
    if (perDim) copyRows(decay, decayLd, c, D, GP, D4);
    // per-head decay: the token's value in all four lanes, so that decayFactors runs the same vector loop
    else for (let i = 0; i < c; i++) v128.store(at(GP, i * w), f32x4.splat(load<f32>(at(decay, i * decayLd))));
    decayFactors(c, w);
  }

  // the pair weights inside the chunk
  if (perDim) perDimProducts(c, D4, group, scale, delta, beta, betaLd);
  else {
    transpose(c, D, KP, D4, KT, C);
    if (gated) pairFactors(c);
    if (delta) maskedProduct(L, KP, c, D, D4, 1, gated, false, beta, betaLd);
    for (let g = 0; g < group; g++) maskedProduct(at(P, g * C * C), at(QP, g * C * D4), c, D, D4, scale, gated, true, 0, 0);
  }

  // what each token writes: v, or the delta rule's solve against the state
  let writes = VP;
  if (delta) {
    for (let i = 0; i < c; i++) {
      if (!gated) memory.copy(at(KL, i * D4), at(KP, i * D4), <usize>D4 << 2);
      else if (perDim) mulRow(at(KL, i * D4), at(EQ, i * D4), at(KP, i * D4), D4);
      else scaleRow(at(KL, i * D4), at(KP, i * D4), load<f32>(at(EQ, i * w)), D4);
    }
    gemm(c, Dv4, D, KL, D4, 1, S32, Dv4, KS, Dv4, false);
    solveWrites(c, Dv4, beta, betaLd);
    writes = U;
  }

  // the outputs: what the state before the chunk gives, then the chunk's own tokens
  for (let g = 0; g < group; g++) {
    for (let i = 0; i < c; i++) {
      const qi = at(QP, (g * C + i) * D4);
      if (!gated) scaleRow(at(QL, i * D4), qi, scale, D4);
      else if (perDim) {
        mulRow(at(QL, i * D4), at(EQ, i * D4), qi, D4);
        scaleRow(at(QL, i * D4), at(QL, i * D4), scale, D4);
      } else scaleRow(at(QL, i * D4), qi, scale * load<f32>(at(EQ, i * w)), D4);
    }
    const o = at(out, g * oHead);
    gemm(c, Dv, D, QL, D4, 1, S32, Dv4, o, oLd, false);
    gemm(c, Dv, c, at(P, g * C * C), C, 1, writes, Dv4, o, oLd, true);
  }

  // the state after the chunk: S64 = Lambda_end S64 + sum_j (EK_j k_j) u_j^T
  for (let i = 0; i < c; i++) {
    if (!gated) memory.copy(at(KL, i * D4), at(KP, i * D4), <usize>D4 << 2);
    else if (perDim) mulRow(at(KL, i * D4), at(EK, i * D4), at(KP, i * D4), D4);
    else scaleRow(at(KL, i * D4), at(KP, i * D4), load<f32>(at(EK, i * w)), D4);
  }
  gemm(D, Dv, c, KL, 1, D4, writes, Dv4, T, Dv, false);
  for (let d = 0; d < D; d++) {
    const lambda: f64 = gated ? <f64>load<f32>(at(EQ, (c - 1) * w + (perDim ? d : 0))) : 1;
    updateRow(at64(S64, d * Dv), at(S32, d * Dv4), at(T, d * Dv), Dv, lambda);
  }
}

/** One row of the state: S64 = lambda S64 + T (float64, two lanes at a time), and its float32 copy. */
function updateRow(s64: usize, s32: usize, t: usize, Dv: i32, lambda: f64): void {
  const l = f64x2.splat(lambda);
  let col = 0;
  for (; col + 4 <= Dv; col += 4) {
    const x = v128.load(at(t, col));
    const lo = f64x2.add(f64x2.mul(l, v128.load(at64(s64, col))), f64x2.promote_low_f32x4(x));
    const hi = f64x2.add(f64x2.mul(l, v128.load(at64(s64, col + 2))), f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 0, 1)));
    v128.store(at64(s64, col), lo);
    v128.store(at64(s64, col + 2), hi);
    v128.store(at(s32, col), v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5));
  }
  for (; col < Dv; col++) {
    const x = lambda * load<f64>(at64(s64, col)) + <f64>load<f32>(at(t, col));
    store<f64>(at64(s64, col), x);
    store<f32>(at(s32, col), <f32>x);
  }
}
