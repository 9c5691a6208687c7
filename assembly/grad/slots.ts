// The softmax backward of queries over a few key rows (Linformer's P
// projected rows, compressed attention's slots), dense by blocks of R
// queries: Pm = softmax(scale q K^T) over the visible rows,
// dS = scale Pm (g V^T - delta) with delta_i = g_i . out_i, then
// dq = dS K, dK += dS^T q, dV += Pm^T g. Shared by assembly/grad/linformer.ts,
// assembly/grad/compressed.ts and Synthesizer's factorized and dense forms
// (src/grad/synthesizer-plan.ts: their logits are such a product).
import { gemm, transpose } from '../core/gemm';
import { maskRow, softmaxRowBackward } from './softmax-row';
import { at } from '../core/memory';

/** Query rows per block: the block's logits are R x P. */
const R: i32 = 64;
const NEG_INF: f32 = -Infinity;

/** Bytes of the per-thread buffers: K^T, V^T, two R x P blocks and the padding as a key bias. */
export function slotGradBytes(P: i32, D: i32, Dv: i32): f64 {
  return (<f64>P * <f64>(D + Dv + 1) + 2 * <f64>R * <f64>P + 16) * 4;
}

/** Query rows per block: row calls start at multiples of it. */
export function slotGradBlock(): i32 {
  return R;
}

/** Starts a head: K^T and V^T into ws, dK and dV zeroed. */
export function slotGradStart(kRows: usize, vRows: usize, P: i32, D: i32, Dv: i32, ws: usize, dK: usize, dV: usize): void {
  transpose(P, D, kRows, D, ws, P);
  transpose(P, Dv, vRows, Dv, at(ws, P * D), P);
  memory.fill(dK, 0, <usize>(P * D) << 2);
  memory.fill(dV, 0, <usize>(P * Dv) << 2);
}

/**
 * Query rows [i0, i1) of a head (i0 a multiple of R): q [Nq][D], g [Nq][Dv],
 * the key rows K [P][D], ws as slotGradStart left it; dq rows written, dK
 * [P][D] and dV [P][Dv] added to. Rows visible to query i: the first `first`
 * always, row first + m when real[first + m] != 0 (real: u8 [P], or 0 for
 * all) and m < visible[i] (visible: i32 [Nq] counts, or 0 for all). A query
 * that sees no row gets zeros.
 */
export function slotSoftmaxBackward(
  q: usize, g: usize, D: i32, Dv: i32, P: i32, scale: f32, kRows: usize, ws: usize,
  dq: usize, dK: usize, dV: usize, i0: i32, i1: i32, first: i32, real: usize, visible: usize,
): void {
  const kT = ws;
  const vT = at(ws, P * D);
  const pm = at(ws, P * (D + Dv));
  const ds = at(pm, R * P);
  // the padded rows past `first` as a key bias: -inf
  const bias = real != 0 ? at(ds, R * P) : 0;
  if (real != 0) for (let p = 0; p < P; p++) store<f32>(at(bias, p), p < first || load<u8>(real + <usize>p) != 0 ? 0 : NEG_INF);
  for (let c = i0; c < i1; c += R) {
    const rows = min(R, i1 - c);
    const qb = at(q, c * D);
    const gb = at(g, c * Dv);
    // the rows any query of the block sees: the block's products stop there
    let keys = P;
    if (visible != 0) {
      keys = 0;
      for (let r = 0; r < rows; r++) keys = max(keys, shownRows(visible, c + r, first, P));
    }
    // logits and dPm = g V^T
    gemm(rows, keys, D, qb, D, 1, kT, P, pm, P, false);
    gemm(rows, keys, Dv, gb, Dv, 1, vT, P, ds, P, false);
    for (let r = 0; r < rows; r++) {
      const pr = at(pm, r * P);
      const dr = at(ds, r * P);
      const top = maskRow(pr, scale, bias, visible != 0 ? shownRows(visible, c + r, first, P) : keys, keys, pr);
      softmaxRowBackward(pr, dr, keys, top, scale);
    }
    gemm(rows, D, keys, ds, P, 1, kRows, D, at(dq, c * D), D, false);
    gemm(keys, D, rows, ds, 1, P, qb, D, dK, D, true);
    gemm(keys, Dv, rows, pm, 1, P, gb, Dv, dV, Dv, true);
  }
}

/** The rows query i may see, first + visible[i] (at most P); padding aside. */
// @ts-ignore: decorator
@inline function shownRows(visible: usize, i: i32, first: i32, P: i32): i32 {
  return min(P, first + load<i32>(at(visible, i)));
}
