// Backward pass of `linformer` (SPEC "Gradients"). Mirrors
// src/grad/linformer-plan.ts; the forward is assembly/variants/linformer.ts.
//
// Per batch and query head, with K' = e k and V' = f v (P rows) projected by
// the forward's kernels, the softmax backward over the P rows
// (assembly/grad/slots.ts) gives dq, dK' and dV'. A later stage spreads them back along the sequence: dk = e^T dK' (summed
// over the query heads of a kv head), de = dK' k^T (summed over the batches
// and the heads that share e), and the same for f and v; padded positions
// take no part.
import { gemm, transpose } from '../core/gemm';
import { at } from '../core/memory';

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
