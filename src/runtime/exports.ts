/** The WebAssembly module's exports (assembly/index.ts): integers and pointers only. */
export interface Exports extends Record<string, unknown> {
  heapBase(): number;
  /** 1 when the build fuses multiply-adds with relaxed SIMD. */
  relaxedSimd(): number;
  /** Bytes of one head's packed keys, values and key bias. */
  packBytes(Nk: number, D: number, Dv: number): number;
  /** Bytes of a group of query tiles' working buffers. */
  groupBytes(D: number, Dv: number): number;
  packHead(k: number, v: number, Nk: number, D: number, Dv: number, keyPadding: number, pack: number): void;
  fullAttentionRows(
    q: number, out: number, Nq: number, Nk: number, D: number, Dv: number,
    scale: number, causal: number, pack: number, tiles: number, rowStart: number, rowEnd: number,
  ): void;
  /** C[M][N] = A B (+ C): A(i, p) at a + (i rsA + p csA) floats, B rows ldb, C rows ldc. */
  gemm(M: number, N: number, K: number, a: number, rsA: number, csA: number, b: number, ldb: number, c: number, ldc: number, accumulate: number): void;
  /** dst[c][r] = src[r][c] for an R x C block. */
  transpose(R: number, C: number, src: number, ldSrc: number, dst: number, ldDst: number): void;
  /** inv[n] = 1 / max(|x_n|, 1e-12) for the rows of x [N][D]. */
  inverseNorms(x: number, N: number, D: number, inv: number): void;
}
