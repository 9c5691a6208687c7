// The machine's multiply-add peak as the bench measures it (bench/peak.ts):
// the engine's own 4 x 8 register tile (core/gemm.ts panelTile: 8
// accumulators, 2 vectors, 4 splats) run again and again over panels that
// stay in L1. Not part of the library's module: the bench compiles it.
import { panelTile } from '../core/gemm';

/** c [4][8] += a [K][4]^T b [K][8], `reps` times. */
export function tile(a: usize, b: usize, c: usize, K: i32, reps: i32): void {
  for (let r = 0; r < reps; r++) panelTile(K, a, 16, b, 8, c, 8, 4, true);
}
