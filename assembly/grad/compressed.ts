// Backward pass of `compressed` (SPEC "Gradients"). Mirrors
// src/grad/compressed-plan.ts; the forward is assembly/variants/compressed.ts.
//
// Per batch and query head, the slot rows are made again by the forward's
// compressedSlots, and the softmax backward over them (assembly/grad/slots.ts,
// with the forward's slot visibility) gives dq and the slot gradients dK_s,
// dV_s. A later stage takes those back through the pooling:
//   mean:   dx[j] (+)= dslot[m] / count_m for each real row j of slot m;
//   Conv1d: dx[m s + t] (+)= W_t dslot[m]       (W_t [o][c] per tap, laid out in TypeScript),
//           dW_t (+)= dslot^T x_t,  dbias (+)= sum_m dslot[m];
//   null:   dnull (+)= dslot[0].
// Padded rows and the right padding past N take no part.
import { gemm } from '../core/gemm';
import { linformerZeroPadded } from '../variants/linformer';
import { visibleSlots } from '../variants/compressed';
import { at } from '../core/memory';

// @ts-ignore: decorator
@inline function slotCount(N: i32, s: i32): i32 {
  return (N + s - 1) / s;
}

// @ts-ignore: decorator
@inline function isPadded(keyPadding: usize, j: i32): bool {
  return keyPadding != 0 && load<u8>(keyPadding + <usize>j) == 0;
}

/** dst[0 .. n) = (dst if accumulate, else 0) + f src[0 .. n). */
function addScaledRow(dst: usize, src: usize, n: i32, f: f32, accumulate: bool): void {
  const fs = f32x4.splat(f);
  let d = 0;
  for (; d + 4 <= n; d += 4) {
    const x = f32x4.mul(v128.load(at(src, d)), fs);
    v128.store(at(dst, d), accumulate ? f32x4.add(v128.load(at(dst, d)), x) : x);
  }
  for (; d < n; d++) {
    const x = load<f32>(at(src, d)) * f;
    store<f32>(at(dst, d), accumulate ? load<f32>(at(dst, d)) + x : x);
  }
}

/** Causal: visible[i] (i32 [Nq]) = how many pooled slots query row i sees, the forward's prefix. */
export function compressedGradVisible(Nq: i32, Nk: i32, s: i32, visible: usize): void {
  for (let i = 0; i < Nq; i++) store<i32>(at(visible, i), visibleSlots(i, Nk - Nq, Nk, s, 0));
}

/**
 * dst [Dx] (+)= the sum of `count` rows [count][Dx] in order: a conv bias's
 * gradient (every pooled slot) or a null row's (count 1); count 0 zeroes dst.
 */
export function compressedGradRowSum(rows: usize, count: i32, Dx: i32, dst: usize, accumulate: bool): void {
  if (!accumulate) memory.fill(dst, 0, <usize>Dx << 2);
  for (let m = 0; m < count; m++) addScaledRow(dst, at(rows, m * Dx), Dx, 1, true);
}

/**
 * Mean pooling: dx [N][Dx] (+)= each real row's share of its slot's gradient,
 * dSlots [ceil(N / s)][Dx] (the pooled slots, after any null row); padded
 * rows get 0. keyPadding: this batch's u8 [N] row, or 0.
 */
export function compressedGradMean(dSlots: usize, N: i32, Dx: i32, s: i32, keyPadding: usize, dx: usize, accumulate: bool): void {
  const count = slotCount(N, s);
  for (let m = 0; m < count; m++) {
    const end = min((m + 1) * s, N);
    let real = 0;
    for (let j = m * s; j < end; j++) if (!isPadded(keyPadding, j)) real++;
    const share: f32 = real > 0 ? <f32>1 / <f32>real : 0;
    const g = at(dSlots, m * Dx);
    for (let j = m * s; j < end; j++) addScaledRow(at(dx, j * Dx), g, Dx, isPadded(keyPadding, j) ? 0 : share, accumulate);
  }
}

/**
 * Conv1d pooling, the input's gradient: dx[m s + t] (+)= W_t dslot[m], one GEMM
 * per tap over the rows m s + t (C written with row stride s Dx). wo: [s][Dx
 * out][Dx in] per tap; dSlots: the pooled slots' gradients [ceil(N / s)][Dx];
 * padded rows get 0.
 */
export function compressedGradConvInput(dSlots: usize, N: i32, Dx: i32, s: i32, keyPadding: usize, wo: usize, dx: usize, accumulate: bool): void {
  for (let t = 0; t < min(s, N); t++) {
    // slots whose tap t lies inside the sequence: m s + t < N
    const rows = (N - t + s - 1) / s;
    gemm(rows, Dx, Dx, dSlots, Dx, 1, at(wo, t * Dx * Dx), Dx, at(dx, t * Dx), s * Dx, accumulate);
  }
  if (keyPadding == 0) return;
  for (let j = 0; j < N; j++) if (isPadded(keyPadding, j)) memory.fill(at(dx, j * Dx), 0, <usize>Dx << 2);
}

/**
 * Conv1d pooling, the weight's gradient: dW_t [Dx out][Dx in] (+)= dslot^T x_t
 * over the slots whose tap t lies inside the sequence, per tap (dW: [s][Dx][Dx],
 * reordered to PyTorch's [o][c][t] in TypeScript). x [N][Dx] with its padded
 * rows taken as zeros (copied to `masked` [N][Dx]).
 */
export function compressedGradConvWeight(dSlots: usize, x: usize, N: i32, Dx: i32, s: i32, keyPadding: usize, masked: usize, dW: usize, accumulate: bool): void {
  let src = x;
  if (keyPadding != 0) {
    linformerZeroPadded(x, N, Dx, keyPadding, masked);
    src = masked;
  }
  for (let t = 0; t < s; t++) {
    const tap = at(dW, t * Dx * Dx);
    const rows = t < N ? (N - t + s - 1) / s : 0;
    if (rows > 0) gemm(Dx, Dx, rows, dSlots, 1, Dx, at(src, t * Dx), s * Dx, tap, Dx, accumulate);
    else if (!accumulate) memory.fill(tap, 0, <usize>(Dx * Dx) << 2);
  }
}
