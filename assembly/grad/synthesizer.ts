// Backward pass of `synthesizer` (SPEC "Gradients"). Mirrors
// src/grad/synthesizer-plan.ts; the forward is assembly/variants/synthesizer.ts.
//
// The factorized and dense forms' logits are a product of a row-side and a
// key-side factor (a b^T, and [h, 1] [w2; b2]^T with h = relu(x w1 + b1)),
// so their softmax backward is the one of assembly/grad/slots.ts; here are
// the given logits' own rows, dense's hidden layer (with its column of ones)
// and the way back through its relu, and the sums of partial gradients that
// keep the pool's result the bits of one thread's.
import { gemm, transpose } from '../core/gemm';
import { maskRow, softmaxRowBackward } from './softmax-row';
import { at } from '../core/memory';

/** Rows per block of the given logits: the block's P and dP are ROWS x Nk. */
const ROWS: i32 = 64;
const NEG_INF: f32 = -Infinity;

/** Bytes of synthesizerGradRandom's buffer: P and dP of one block of rows, and the key bias. */
export function synthesizerGradRandomBytes(Nk: i32): f64 {
  return (2 * <f64>ROWS + 1) * <f64>Nk * 4;
}

/**
 * Rows [i0, i1) of one head (and batch) with given logits [Nq][Nk]: g
 * [Nq][Dv], vT = v^T [Dv][Nk]; key j visible to row i when j <= i + Nk - Nq
 * (causal) and pad[j] != 0 (pad: this batch's u8 [Nk], or 0). dLogits rows
 * written, or added to with `accumulate` (a later head or batch sharing the
 * logits); dv [Nk][Dv] gets P^T g of these rows, written (zeros first)
 * unless `dvAccumulate`. Causal blocks stop at their last visible key.
 */
export function synthesizerGradRandom(
  logits: usize, g: usize, vT: usize, Nq: i32, Nk: i32, Dv: i32, causal: bool, pad: usize,
  ws: usize, dLogits: usize, accumulate: bool, dv: usize, dvAccumulate: bool, i0: i32, i1: i32,
): void {
  if (!dvAccumulate) memory.fill(dv, 0, <usize>(Nk * Dv) << 2);
  const pm = ws;
  const ds = at(ws, ROWS * Nk);
  // padding as a key bias: 0 for real keys, -inf for padded ones
  const bias = at(ws, 2 * ROWS * Nk);
  if (pad != 0) for (let j = 0; j < Nk; j++) store<f32>(at(bias, j), load<u8>(pad + <usize>j) != 0 ? 0 : NEG_INF);
  const shift = Nk - Nq;
  for (let c = i0; c < i1; c += ROWS) {
    const rows = min(ROWS, i1 - c);
    const gb = at(g, c * Dv);
    // the keys any row of the block sees
    const keys = causal ? min(Nk, max(0, c + rows + shift)) : Nk;
    // dP = g V^T
    gemm(rows, keys, Dv, gb, Dv, 1, vT, Nk, ds, Nk, false);
    for (let r = 0; r < rows; r++) {
      const i = c + r;
      const pr = at(pm, r * Nk);
      const dr = at(ds, r * Nk);
      const top = maskRow(at(logits, i * Nk), 1, pad != 0 ? bias : 0, causal ? min(keys, max(0, i + shift + 1)) : keys, keys, pr);
      softmaxRowBackward(pr, dr, keys, top, 1);
      const dRow = at(dLogits, i * Nk);
      addRow(dr, dRow, keys, accumulate);
      if (!accumulate) memory.fill(at(dRow, keys), 0, <usize>(Nk - keys) << 2);
    }
    // dv += P^T g (the keys past the block's last visible one get nothing)
    gemm(keys, Dv, rows, pm, 1, Nk, gb, Dv, dv, Dv, true);
  }
}

/** dst (+)= src over n floats. */
function addRow(src: usize, dst: usize, n: i32, accumulate: bool): void {
  if (!accumulate) {
    memory.copy(dst, src, <usize>n << 2);
    return;
  }
  let j = 0;
  for (; j + 4 <= n; j += 4) v128.store(at(dst, j), f32x4.add(v128.load(at(dst, j)), v128.load(at(src, j))));
  for (; j < n; j++) store<f32>(at(dst, j), load<f32>(at(dst, j)) + load<f32>(at(src, j)));
}

/**
 * Dense Synthesizer's hidden rows [rowStart, rowEnd) of one head with a
 * column of ones, the row-side factor of the logits [h, 1] [w2; b2]^T:
 * hidden [Nq][Dh + 1] = [relu(x w1 + b1), 1]. x [Nq][Dm] (this batch), w1
 * [Dm][Dh], b1 [Dh]. The same sums as the forward's synthesizerHidden.
 */
export function synthesizerGradHidden(x: usize, w1: usize, b1: usize, Dm: i32, Dh: i32, hidden: usize, rowStart: i32, rowEnd: i32): void {
  const rows = rowEnd - rowStart;
  if (rows <= 0) return;
  const ld = Dh + 1;
  const c = at(hidden, rowStart * ld);
  for (let r = 0; r < rows; r++) memory.copy(at(c, r * ld), b1, <usize>Dh << 2);
  gemm(rows, Dh, Dm, at(x, rowStart * Dm), Dm, 1, w1, Dh, c, ld, true);
  for (let r = 0; r < rows; r++) {
    const row = at(c, r * ld);
    for (let u = 0; u < Dh; u++) store<f32>(at(row, u), max(load<f32>(at(row, u)), 0));
    store<f32>(at(row, Dh), 1);
  }
}

/**
 * Dense's keys, one head: keys [Nk][Dh + 1] with key j = (w2[.][j], b2[j]),
 * the key-side factor of [h, 1] [w2; b2]^T. w2 [Dh][Nmax], b2 [Nmax]: the
 * first Nk of their Nmax logits.
 */
export function synthesizerGradKeys(w2: usize, b2: usize, Dh: i32, Nk: i32, Nmax: i32, keys: usize): void {
  transpose(Dh, Nk, w2, Nmax, keys, Dh + 1);
  transpose(1, Nk, b2, Nmax, at(keys, Dh), Dh + 1);
}

/** The keys' gradients dKeys [Nk][Dh + 1] taken apart: dw2 [Dh][Nk] and db2 [Nk]. */
export function synthesizerGradKeysBack(dKeys: usize, Dh: i32, Nk: i32, dw2: usize, db2: usize): void {
  transpose(Nk, Dh, dKeys, Dh + 1, dw2, Nk);
  transpose(Nk, 1, at(dKeys, Dh), Dh + 1, db2, 1);
}

/**
 * Back through dense's relu: dHidden [Nq][ld] zeroed where hidden (the same
 * layout) is not positive (no gradient at 0, as autograd takes it), over the
 * first Dh columns; db1 [Dh] = their column sums, rows in order.
 */
export function synthesizerGradRelu(hidden: usize, dHidden: usize, Nq: i32, Dh: i32, ld: i32, db1: usize): void {
  memory.fill(db1, 0, <usize>Dh << 2);
  for (let i = 0; i < Nq; i++) {
    const h = at(hidden, i * ld);
    const d = at(dHidden, i * ld);
    for (let u = 0; u < Dh; u++) {
      const grad = load<f32>(at(h, u)) > 0 ? load<f32>(at(d, u)) : 0;
      store<f32>(at(d, u), grad);
      store<f32>(at(db1, u), load<f32>(at(db1, u)) + grad);
    }
  }
}

/**
 * out [rows][ldOut] = the sum, in order, of `count` partial gradients
 * [rows][ldPart], the p-th at parts + p partStride floats, over the first
 * `cols` columns; columns [cols, outCols) get 0 (dense w2's and b2's logits
 * past Nk, which no call reads). count 0 gives zeros.
 */
export function synthesizerGradSum(parts: usize, count: i32, partStride: i32, rows: i32, cols: i32, ldPart: i32, out: usize, ldOut: i32, outCols: i32): void {
  const step = <usize>partStride << 2;
  for (let r = 0; r < rows; r++) {
    const dst = at(out, r * ldOut);
    const src = at(parts, r * ldPart);
    let j = 0;
    for (; j + 4 <= cols; j += 4) {
      let acc = f32x4.splat(0);
      for (let p = 0; p < count; p++) acc = f32x4.add(acc, v128.load(at(src + <usize>p * step, j)));
      v128.store(at(dst, j), acc);
    }
    for (; j < cols; j++) {
      let acc: f32 = 0;
      for (let p = 0; p < count; p++) acc += load<f32>(at(src + <usize>p * step, j));
      store<f32>(at(dst, j), acc);
    }
    if (outCols > cols) memory.fill(at(dst, cols), 0, <usize>(outCols - cols) << 2);
  }
}
