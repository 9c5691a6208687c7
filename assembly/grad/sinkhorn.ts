// Backward pass of `sinkhorn` (SPEC "Gradients"). Mirrors
// src/grad/sinkhorn-plan.ts; the forward is assembly/variants/sinkhorn.ts,
// whose steps give S, the sorted blocks and each row's main block again.
// Per head, back from the output:
//   1. sinkhornGradBlocks: each query block's softmax over its 2b keys
//      [sorted block ; own block], the few-row backward of slots.ts: dq, the
//      own block's dk and dv, the sorted blocks' dks and dvs;
//   2. sinkhornGradUnsort: x~ = S x (blocks as rows): dx += S^T dx~ and
//      dS += dx~ x^T, for k and v;
//   3. sinkhornGradSortBack: dS back through S = exp(L) and the balancing
//      steps, last first (each row or column step L' = L - lse(L) takes
//      dL = dL' - exp(L') sum(dL') over its line), or the causal softmax;
//   4. the logits: given, dR = dL / temperature (sinkhornGradLogits); else
//      L = qbar kbar^T into the block sums of q and k (sinkhornGradSummaries).
//
// Work of one head (floats, rows nbPad apart as S's):
//   L[nb][nbPad] | dS[nb][nbPad] | sums[nbPad] | record[2 iterations][nbPad] | dBar[nb][D]
// L is log S as the balancing left it; the record holds each step's row and
// column log-sum-exps, which walk L back one step at a time.
import { gemm, transpose } from '../core/gemm';
import { expNonPositive, roundUp } from '../core/simd';
import {
  sinkhornBalance, sinkhornExp, sinkhornKbarOf, sinkhornLogits, sinkhornMainOf, sinkhornQbarOf, sinkhornRowFloats, sinkhornStripWidth,
} from '../variants/sinkhorn';
import { slotGradStart, slotSoftmaxBackward } from './slots';
import { at } from '../core/memory';

// @ts-ignore: decorator
@inline function dSOf(work: usize, nb: i32): usize {
  return at(work, nb * sinkhornRowFloats(nb));
}

// @ts-ignore: decorator
@inline function sumsOf(work: usize, nb: i32): usize {
  return at(work, 2 * nb * sinkhornRowFloats(nb));
}

// @ts-ignore: decorator
@inline function recordOf(work: usize, nb: i32): usize {
  return at(work, (2 * nb + 1) * sinkhornRowFloats(nb));
}

// @ts-ignore: decorator
@inline function dBarOf(work: usize, nb: i32, iterations: i32): usize {
  return at(work, (2 * nb + 1 + 2 * iterations) * sinkhornRowFloats(nb));
}

/** Bytes of one head's work: O(nb^2 + iterations nb + nb D). */
export function sinkhornGradWorkBytes(N: i32, b: i32, D: i32, iterations: i32): f64 {
  const nb = N / b;
  return (<f64>(2 * nb + 1 + 2 * iterations) * <f64>sinkhornRowFloats(nb) + <f64>roundUp(nb * D, 4)) * 4;
}

/** Bytes of sinkhornGradBlocks' block buffer: one block's 2b key and value rows and their gradients, its masks. */
export function sinkhornGradBlockBytes(b: i32, D: i32, Dv: i32): f64 {
  return (4 * <f64>b * <f64>(D + Dv) + <f64>b + <f64>roundUp(2 * b, 4) / 4) * 4;
}

/** Bytes of sinkhornGradUnsort's strip of x, transposed: [STRIP][nbPad]. */
export function sinkhornGradStripBytes(N: i32, b: i32): f64 {
  return <f64>sinkhornStripWidth() * <f64>sinkhornRowFloats(N / b) * 4;
}

/**
 * S of one head and each row's main block, as sinkhornSortMatrix gives them
 * (the same steps, so the same bits), into scratch; work keeps L = log S
 * and the balancing's record, and dS is zeroed for the sums to come.
 */
export function sinkhornGradSortMatrix(
  q: usize, k: usize, N: i32, b: i32, D: i32, scale: f32, temperature: f32,
  iterations: i32, causal: bool, logits: usize, scratch: usize, work: usize,
): void {
  const nb = N / b;
  const floats = nb * sinkhornRowFloats(nb);
  sinkhornLogits(q, k, N, b, D, scale, temperature, causal, logits, scratch);
  sinkhornBalance(nb, iterations, causal, scratch, causal ? 0 : recordOf(work, nb));
  memory.copy(work, scratch, <usize>floats << 2);
  memory.fill(dSOf(work, nb), 0, <usize>floats << 2);
  sinkhornExp(nb, causal || iterations > 0, scratch);
}

/**
 * Query blocks [uStart, uEnd) of one head: block u's b queries against the
 * 2b keys of sinkhornAttendBlocks (sorted key r hidden when row S_u is empty
 * or padding hides key main_u b + r; own keys by padding, and causal inside
 * the block), by slotSoftmaxBackward. Writes dq's rows of the block, dk and
 * dv's rows of the block (its own keys' terms: no other block reads them),
 * and dks, dvs ([N][D], [N][Dv]) rows of its sorted block. q, k, g as the
 * forward's heads; ks, vs the sorted blocks; keyPadding: this batch's u8
 * [N], or 0. ws: slotGradBytes(2b, D, Dv); block: sinkhornGradBlockBytes.
 */
export function sinkhornGradBlocks(
  q: usize, g: usize, k: usize, v: usize, ks: usize, vs: usize, N: i32, b: i32, D: i32, Dv: i32, scale: f32, causal: bool,
  keyPadding: usize, scratch: usize, ws: usize, block: usize, dq: usize, dks: usize, dvs: usize, dk: usize, dv: usize,
  uStart: i32, uEnd: i32,
): void {
  const nb = N / b;
  const main = sinkhornMainOf(scratch, nb);
  const kRows = block;
  const vRows = at(kRows, 2 * b * D);
  const dK = at(vRows, 2 * b * Dv);
  const dV = at(dK, 2 * b * D);
  const visible = at(dV, 2 * b * Dv);
  const real = at(visible, b);
  // causal: query r of the block sees the b sorted keys and own keys 0 .. r
  for (let r = 0; r < b; r++) store<i32>(at(visible, r), b + r + 1);
  const keyBytes = <usize>(b * D) << 2;
  const valueBytes = <usize>(b * Dv) << 2;
  for (let u = uStart; u < uEnd; u++) {
    const m = load<i32>(at(main, u));
    let all = m >= 0;
    for (let r = 0; r < b; r++) {
      const sorted = m >= 0 && (keyPadding == 0 || load<u8>(keyPadding + <usize>(m * b + r)) != 0);
      const own = keyPadding == 0 || load<u8>(keyPadding + <usize>(u * b + r)) != 0;
      store<u8>(real + <usize>r, sorted ? 1 : 0);
      store<u8>(real + <usize>(b + r), own ? 1 : 0);
      all = all && sorted && own;
    }
    memory.copy(kRows, at(ks, u * b * D), keyBytes);
    memory.copy(at(kRows, b * D), at(k, u * b * D), keyBytes);
    memory.copy(vRows, at(vs, u * b * Dv), valueBytes);
    memory.copy(at(vRows, b * Dv), at(v, u * b * Dv), valueBytes);
    slotGradStart(kRows, vRows, 2 * b, D, Dv, ws, dK, dV);
    slotSoftmaxBackward(
      at(q, u * b * D), at(g, u * b * Dv), D, Dv, 2 * b, scale, kRows, ws, at(dq, u * b * D), dK, dV,
      0, b, 0, all ? 0 : real, causal ? visible : 0,
    );
    memory.copy(at(dks, u * b * D), dK, keyBytes);
    memory.copy(at(dk, u * b * D), at(dK, b * D), keyBytes);
    memory.copy(at(dvs, u * b * Dv), dV, valueBytes);
    memory.copy(at(dv, u * b * Dv), at(dV, b * Dv), valueBytes);
  }
}

/**
 * Back through the sorted blocks x~ = S x of one head (x, dx~, dx seen as
 * [nb][b width]): dS += dx~ x^T (work's dS) and dx += S^T dx~, by strips of
 * STRIP columns as sinkhornSortColumns (x's rows are b width floats apart,
 * often a large power of two): strip gets the strip of dx~ [nb][STRIP],
 * xT the strip of x transposed (sinkhornGradStripBytes).
 */
export function sinkhornGradUnsort(x: usize, width: i32, N: i32, b: i32, scratch: usize, dxs: usize, strip: usize, xT: usize, work: usize, dx: usize): void {
  const nb = N / b;
  const nbPad = sinkhornRowFloats(nb);
  const cols = b * width;
  const STRIP = sinkhornStripWidth();
  const dS = dSOf(work, nb);
  for (let j0 = 0; j0 < cols; j0 += STRIP) {
    const w = min(STRIP, cols - j0);
    for (let u = 0; u < nb; u++) memory.copy(at(strip, u * STRIP), at(dxs, u * cols + j0), <usize>w << 2);
    transpose(nb, w, at(x, j0), cols, xT, nbPad);
    gemm(nb, nb, w, strip, STRIP, 1, xT, nbPad, dS, nbPad, true);
    gemm(nb, w, nb, scratch, 1, nbPad, strip, STRIP, at(dx, j0), cols, true);
  }
}

/**
 * dS (work) back to dL, the gradient of L = R / temperature, in place: S =
 * exp(L) (scratch), then the balancing steps last first, L walked back by
 * the record; causal, each row's softmax over its past blocks.
 */
export function sinkhornGradSortBack(N: i32, b: i32, iterations: i32, causal: bool, scratch: usize, work: usize): void {
  const nb = N / b;
  const nbPad = sinkhornRowFloats(nb);
  const S = scratch;
  const dL = dSOf(work, nb);
  if (causal) {
    for (let u = 0; u < nb; u++) {
      const s = at(S, u * nbPad);
      const d = at(dL, u * nbPad);
      let dots = f32x4.splat(0);
      for (let t = 0; t < nbPad; t += 4) dots = f32x4.add(dots, f32x4.mul(v128.load(at(s, t)), v128.load(at(d, t))));
      const dot = f32x4.splat(lanes(dots));
      for (let t = 0; t < nbPad; t += 4) v128.store(at(d, t), f32x4.mul(v128.load(at(s, t)), f32x4.sub(v128.load(at(d, t)), dot)));
    }
    return;
  }
  for (let n = 0; n < nb * nbPad; n += 4) v128.store(at(dL, n), f32x4.mul(v128.load(at(dL, n)), v128.load(at(S, n))));
  const L = work;
  const sums = sumsOf(work, nb);
  for (let step = iterations - 1; step >= 0; step--) {
    const rowLse = at(recordOf(work, nb), 2 * step * nbPad);
    const colLse = at(rowLse, nbPad);
    // the column step: sums down each column, then L before it
    memory.fill(sums, 0, <usize>nbPad << 2);
    for (let u = 0; u < nb; u++) {
      const d = at(dL, u * nbPad);
      for (let t = 0; t < nbPad; t += 4) v128.store(at(sums, t), f32x4.add(v128.load(at(sums, t)), v128.load(at(d, t))));
    }
    for (let u = 0; u < nb; u++) {
      const l = at(L, u * nbPad);
      const d = at(dL, u * nbPad);
      for (let t = 0; t < nbPad; t += 4) {
        const after = v128.load(at(l, t));
        v128.store(at(d, t), f32x4.sub(v128.load(at(d, t)), f32x4.mul(expNonPositive(after), v128.load(at(sums, t)))));
        v128.store(at(l, t), f32x4.add(after, v128.load(at(colLse, t))));
      }
    }
    // the row step
    for (let u = 0; u < nb; u++) {
      const l = at(L, u * nbPad);
      const d = at(dL, u * nbPad);
      let acc = f32x4.splat(0);
      for (let t = 0; t < nbPad; t += 4) acc = f32x4.add(acc, v128.load(at(d, t)));
      const sum = f32x4.splat(lanes(acc));
      const lse = f32x4.splat(load<f32>(at(rowLse, u)));
      for (let t = 0; t < nbPad; t += 4) {
        const after = v128.load(at(l, t));
        v128.store(at(d, t), f32x4.sub(v128.load(at(d, t)), f32x4.mul(expNonPositive(after), sum)));
        v128.store(at(l, t), f32x4.add(after, lse));
      }
    }
  }
}

/** Given sort logits: their gradient dR = dL / temperature into out [nb][nb]. */
export function sinkhornGradLogits(N: i32, b: i32, temperature: f32, work: usize, out: usize): void {
  const nb = N / b;
  const nbPad = sinkhornRowFloats(nb);
  const dL = dSOf(work, nb);
  for (let u = 0; u < nb; u++) {
    for (let t = 0; t < nb; t++) store<f32>(at(out, u * nb + t), load<f32>(at(dL, u * nbPad + t)) / temperature);
  }
}

/**
 * Computed sort logits L = qbar kbar^T (the factors sinkhornLogits left in
 * scratch: qbar weighs its rows by scale / temperature / rows, kbar by 1 /
 * b): dq of each block's summed rows (its first only when causal) += weight
 * (dL kbar)_u, dk of block t's rows += (dL^T qbar)_t / b.
 */
export function sinkhornGradSummaries(
  N: i32, b: i32, D: i32, scale: f32, temperature: f32, iterations: i32, causal: bool, scratch: usize, work: usize, dq: usize, dk: usize,
): void {
  const nb = N / b;
  const nbPad = sinkhornRowFloats(nb);
  const dL = dSOf(work, nb);
  const dBar = dBarOf(work, nb, iterations);
  const qRows = causal ? 1 : b;
  gemm(nb, D, nb, dL, nbPad, 1, sinkhornKbarOf(scratch, nb, D), D, dBar, D, false);
  spread(dBar, nb, b, qRows, D, scale / temperature / <f32>qRows, dq);
  gemm(nb, D, nb, dL, 1, nbPad, sinkhornQbarOf(scratch, nb), D, dBar, D, false);
  spread(dBar, nb, b, b, D, 1 / <f32>b, dk);
}

/** dx rows u b .. u b + rows (of D) += weight dBar_u, for every block u. */
function spread(dBar: usize, nb: i32, b: i32, rows: i32, D: i32, weight: f32, dx: usize): void {
  const w = f32x4.splat(weight);
  for (let u = 0; u < nb; u++) {
    const src = at(dBar, u * D);
    for (let r = 0; r < rows; r++) {
      const dst = at(dx, (u * b + r) * D);
      let d = 0;
      for (; d + 4 <= D; d += 4) v128.store(at(dst, d), f32x4.add(v128.load(at(dst, d)), f32x4.mul(v128.load(at(src, d)), w)));
      for (; d < D; d++) store<f32>(at(dst, d), load<f32>(at(dst, d)) + load<f32>(at(src, d)) * weight);
    }
  }
}

/** The sum of a vector's four lanes. */
// @ts-ignore: decorator
@inline function lanes(x: v128): f32 {
  return (f32x4.extract_lane(x, 0) + f32x4.extract_lane(x, 1)) + (f32x4.extract_lane(x, 2) + f32x4.extract_lane(x, 3));
}
