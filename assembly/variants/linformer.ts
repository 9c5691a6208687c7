// `linformer`: the keys and values are projected along the sequence axis by
// the core GEMM, K' = e k and V' = f v (P rows each), then the queries attend
// the P projected rows with the flash engine (packHead + fullAttentionRows).
// Mirrors src/variants/linformer.ts.
import { gemm } from '../core/gemm';

/**
 * Keys per GEMM call: the GEMM walks its whole inner dimension for every
 * 4 x 8 output tile, so cutting it into chunks keeps one chunk of x (256 x D
 * floats, 64 KiB at D = 64) in cache while every projected row passes over it.
 */
const KEY_CHUNK: i32 = 256;

/**
 * masked[j] = x[j] for real rows, zeros for padded ones (keyPadding: u8 [N],
 * 1 = real): the padded keys and values must contribute nothing to the
 * projection (nor, in `compressed`, to a convolved slot).
 */
export function linformerZeroPadded(x: usize, N: i32, Dx: i32, keyPadding: usize, masked: usize): void {
  const rowBytes = <usize>Dx << 2;
  for (let j = 0; j < N; j++) {
    const dst = masked + <usize>j * rowBytes;
    if (load<u8>(keyPadding + j) != 0) memory.copy(dst, x + <usize>j * rowBytes, rowBytes);
    else memory.fill(dst, 0, rowBytes);
  }
}

/**
 * Rows [rowStart, rowEnd) of xp = proj x for one head: proj [P][N], x [N][Dx],
 * xp [P][Dx]. Row ranges let the caller split the projection across calls.
 */
export function linformerProject(proj: usize, x: usize, N: i32, Dx: i32, xp: usize, rowStart: i32, rowEnd: i32): void {
  const rows = rowEnd - rowStart;
  if (rows <= 0) return;
  const a = proj + (<usize>rowStart * <usize>N << 2);
  const c = xp + (<usize>(rowStart * Dx) << 2);
  if (N == 0) {
    memory.fill(c, 0, <usize>(rows * Dx) << 2);
    return;
  }
  for (let j0 = 0; j0 < N; j0 += KEY_CHUNK) {
    const keys = min(KEY_CHUNK, N - j0);
    gemm(rows, Dx, keys, a + (<usize>j0 << 2), N, 1, x + (<usize>(j0 * Dx) << 2), Dx, c, Dx, j0 > 0);
  }
}
