// The softmax backward of queries over a few key rows (Linformer's P
// projected rows, compressed attention's slots), dense by blocks of R
// queries: Pm = softmax(scale q K^T) over the visible rows,
// dS = scale Pm (g V^T - delta) with delta_i = g_i . out_i, then
// dq = dS K, dK += dS^T q, dV += Pm^T g. Shared by assembly/grad/linformer.ts
// and assembly/grad/compressed.ts.
import { gemm, transpose } from '../core/gemm';
import { expNonPositive } from '../core/simd';

/** Query rows per block: the block's logits are R x P. */
const R: i32 = 64;
const NEG_INF: f32 = -Infinity;

// @ts-ignore: decorator
@inline function at(base: usize, index: i32): usize {
  return base + (<usize>index << 2);
}

/** Bytes of the per-thread buffers: K^T, V^T and two R x P blocks. */
export function slotGradBytes(P: i32, D: i32, Dv: i32): f64 {
  return (<f64>P * <f64>(D + Dv) + 2 * <f64>R * <f64>P + 16) * 4;
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

/** exp(x - top) of a row of n, in place (each x <= top, or -Infinity); returns the sum. */
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
 * the key rows K [P][D], ws as slotGradStart left it; dq rows written, dK
 * [P][D] and dV [P][Dv] added to. Rows visible to query i: the first `first`
 * always, row first + m when real[first + m] != 0 (real: u8 [P], or 0 for
 * all) and m < visible[i] (visible: i32 [Nq] counts, non-decreasing in i,
 * or 0 for all; a block skips the rows past its last query's count). A query
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
  for (let c = i0; c < i1; c += R) {
    const rows = min(R, i1 - c);
    const qb = at(q, c * D);
    const gb = at(g, c * Dv);
    // the rows past the block's last visible one take no part (visible counts grow with i)
    const cols = visible != 0 ? min(P, first + load<i32>(at(visible, c + rows - 1))) : P;
    // logits and dPm = g V^T
    gemm(rows, cols, D, qb, D, 1, kT, P, pm, P, false);
    gemm(rows, cols, Dv, gb, Dv, 1, vT, P, ds, P, false);
    for (let r = 0; r < rows; r++) {
      const pr = at(pm, r * P);
      const dr = at(ds, r * P);
      const limit = visible != 0 ? first + load<i32>(at(visible, c + r)) : P;
      let top = NEG_INF;
      for (let p = 0; p < cols; p++) {
        const shown = p < first || (p < limit && (real == 0 || load<u8>(real + <usize>p) != 0));
        const s = shown ? load<f32>(at(pr, p)) * scale : NEG_INF;
        store<f32>(at(pr, p), s);
        top = max(top, s);
      }
      if (top == NEG_INF) {
        // nothing visible: the output row is 0 whatever q, k and v
        memory.fill(pr, 0, <usize>cols << 2);
        memory.fill(dr, 0, <usize>cols << 2);
        continue;
      }
      const inv: f32 = 1 / expRow(pr, cols, top);
      let delta: f32 = 0;
      for (let p = 0; p < cols; p++) {
        const w = load<f32>(at(pr, p)) * inv;
        store<f32>(at(pr, p), w);
        delta += w * load<f32>(at(dr, p));
      }
      for (let p = 0; p < cols; p++) store<f32>(at(dr, p), scale * load<f32>(at(pr, p)) * (load<f32>(at(dr, p)) - delta));
    }
    gemm(rows, D, cols, ds, P, 1, kRows, D, at(dq, c * D), D, false);
    gemm(cols, D, rows, ds, 1, P, qb, D, dK, D, true);
    gemm(cols, Dv, rows, pm, 1, P, gb, Dv, dV, Dv, true);
  }
}
