// Backward pass of `linformer` (SPEC "Gradients"). Mirrors
// src/grad/linformer-plan.ts; the forward is assembly/variants/linformer.ts.
//
// Per batch and query head, with K' = e k and V' = f v (P rows) already
// projected by the forward's kernels, a softmax backward over the P rows by
// blocks of R queries: Pm = softmax(scale q K'^T), dS = scale Pm (g V'^T - delta)
// with delta_i = g_i . out_i, then dq = dS K', dK' += dS^T q, dV' += Pm^T g.
// A later stage spreads them back along the sequence: dk = e^T dK' (summed
// over the query heads of a kv head), de = dK' k^T (summed over the batches
// and the heads that share e), and the same for f and v; padded positions
// take no part.
import { gemm, transpose } from '../core/gemm';
import { expNonPositive } from '../core/simd';

/** Query rows per block: the block's logits are R x P. */
const R: i32 = 64;

// @ts-ignore: decorator
@inline function at(base: usize, index: i32): usize {
  return base + (<usize>index << 2);
}

/** Bytes of the per-thread buffers of the softmax backward: K'^T, V'^T and two R x P blocks. */
export function linformerGradBytes(P: i32, D: i32, Dv: i32): f64 {
  return (<f64>P * <f64>(D + Dv) + 2 * <f64>R * <f64>P + 16) * 4;
}

/** Query rows per block: rows calls start at multiples of it. */
export function linformerGradBlock(): i32 {
  return R;
}

/** Starts a head: kT = K'^T, vT = V'^T into ws, dK' and dV' zeroed. */
export function linformerGradStart(kProj: usize, vProj: usize, P: i32, D: i32, Dv: i32, ws: usize, dKp: usize, dVp: usize): void {
  transpose(P, D, kProj, D, ws, P);
  transpose(P, Dv, vProj, Dv, at(ws, P * D), P);
  memory.fill(dKp, 0, <usize>(P * D) << 2);
  memory.fill(dVp, 0, <usize>(P * Dv) << 2);
}

/** exp(x - max) of a row of n, in place; returns the sum. */
function expRow(x: usize, n: i32, top: f32): f32 {
  const s = f32x4.splat(top);
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const e = expNonPositive(f32x4.sub(v128.load(at(x, i)), s));
    v128.store(at(x, i), e);
    acc = f32x4.add(acc, e);
  }
  let sum = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; i < n; i++) {
    const e = Mathf.exp(load<f32>(at(x, i)) - top);
    store<f32>(at(x, i), e);
    sum += e;
  }
  return sum;
}

/**
 * Query rows [i0, i1) of a head (i0 a multiple of R): q [Nq][D], g [Nq][Dv],
 * K' [P][D], ws as linformerGradStart left it; dq rows written, dK' [P][D] and
 * dV' [P][Dv] added to.
 */
export function linformerGradRows(q: usize, g: usize, D: i32, Dv: i32, P: i32, scale: f32, kProj: usize, ws: usize, dq: usize, dKp: usize, dVp: usize, i0: i32, i1: i32): void {
  const kT = ws;
  const vT = at(ws, P * D);
  const pm = at(ws, P * (D + Dv));
  const ds = at(pm, R * P);
  for (let c = i0; c < i1; c += R) {
    const rows = min(R, i1 - c);
    const qb = at(q, c * D);
    const gb = at(g, c * Dv);
    // Pm = softmax(scale q K'^T) row by row; dPm = g V'^T
    gemm(rows, P, D, qb, D, 1, kT, P, pm, P, false);
    gemm(rows, P, Dv, gb, Dv, 1, vT, P, ds, P, false);
    for (let r = 0; r < rows; r++) {
      const pr = at(pm, r * P);
      const dr = at(ds, r * P);
      let top = load<f32>(pr) * scale;
      for (let p = 0; p < P; p++) {
        const s = load<f32>(at(pr, p)) * scale;
        store<f32>(at(pr, p), s);
        top = max(top, s);
      }
      const inv: f32 = 1 / expRow(pr, P, top);
      // delta = sum_p Pm dPm = g . out
      let delta: f32 = 0;
      for (let p = 0; p < P; p++) {
        const w = load<f32>(at(pr, p)) * inv;
        store<f32>(at(pr, p), w);
        delta += w * load<f32>(at(dr, p));
      }
      for (let p = 0; p < P; p++) store<f32>(at(dr, p), scale * load<f32>(at(pr, p)) * (load<f32>(at(dr, p)) - delta));
    }
    gemm(rows, D, P, ds, P, 1, kProj, D, at(dq, c * D), D, false);
    gemm(P, D, rows, ds, 1, P, qb, D, dKp, D, true);
    gemm(P, Dv, rows, pm, 1, P, gb, Dv, dVp, Dv, true);
  }
}

/**
 * dx (+)= proj^T dX' for sequence rows [j0, j1): proj [P][N], dX' [P][Dx],
 * dx [N][Dx]; padded rows (pad: u8 [N] or 0) get 0.
 */
export function linformerGradSpread(proj: usize, dXp: usize, N: i32, Dx: i32, P: i32, pad: usize, dx: usize, accumulate: bool, j0: i32, j1: i32): void {
  if (j1 <= j0) return;
  gemm(j1 - j0, Dx, P, at(proj, j0), 1, N, dXp, Dx, at(dx, j0 * Dx), Dx, accumulate);
  if (pad == 0) return;
  for (let j = j0; j < j1; j++) if (load<u8>(pad + <usize>j) == 0) memory.fill(at(dx, j * Dx), 0, <usize>Dx << 2);
}

/**
 * dProj [P][N] (+)= dX' x^T: dX' [P][Dx], x [N][Dx] with its padded rows (pad:
 * u8 [N] or 0) taken as zeros; xT [Dx][N] is scratch.
 */
export function linformerGradProjection(dXp: usize, x: usize, N: i32, Dx: i32, P: i32, pad: usize, xT: usize, dProj: usize, accumulate: bool): void {
  transpose(N, Dx, x, Dx, xT, N);
  if (pad != 0) {
    for (let j = 0; j < N; j++) {
      if (load<u8>(pad + <usize>j) != 0) continue;
      for (let d = 0; d < Dx; d++) store<f32>(at(xT, d * N + j), 0);
    }
  }
  gemm(P, N, Dx, dXp, Dx, 1, xT, N, dProj, N, accumulate);
}
