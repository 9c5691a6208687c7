/** The WebAssembly module's exports (assembly/index.ts): integers and pointers only. */
export interface Exports extends Record<string, unknown> {
  heapBase(): number;
  /** 1 when the build fuses multiply-adds with relaxed SIMD. */
  relaxedSimd(): number;
  /** Bytes of one head's packed keys, values and key bias. */
  packBytes(Nk: number, D: number, Dv: number): number;
  /** Bytes of a group of query tiles' working buffers. */
  groupBytes(D: number, Dv: number): number;
  /** Packs one head's keys and values (rows kLd and vLd floats apart) and its key-padding bias. */
  packHead(k: number, v: number, Nk: number, D: number, Dv: number, kLd: number, vLd: number, keyPadding: number, pack: number): void;
  fullAttentionRows(
    q: number, out: number, Nq: number, Nk: number, D: number, Dv: number, qLd: number, oLd: number,
    scale: number, causal: number, terms: number, pack: number, tiles: number, rowStart: number, rowEnd: number,
  ): void;
  /** Bytes of one head's model terms record. */
  termsBytes(): number;
  /** Writes a head's model terms record: mask, bias (head pointers, row and key strides in elements; 0: none), softcap (0: none). */
  writeTerms(record: number, mask: number, maskRow: number, maskKey: number, bias: number, biasRow: number, biasKey: number, softcap: number): void;
  /** Lets the heads of a batch share the covers of their (tile, key block) pairs (a byte map, `blocks` a row). */
  shareCovers(record: number, covers: number, blocks: number): void;
  /** C[M][N] = A B (+ C): A(i, p) at a + (i rsA + p csA) floats, B rows ldb, C rows ldc. */
  gemm(M: number, N: number, K: number, a: number, rsA: number, csA: number, b: number, ldb: number, c: number, ldc: number, accumulate: number): void;
  /** dst[c][r] = src[r][c] for an R x C block. */
  transpose(R: number, C: number, src: number, ldSrc: number, dst: number, ldDst: number): void;
  /** inv[n] = 1 / max(|x_n|, 1e-12) for the rows of x [N][D]. */
  inverseNorms(x: number, N: number, D: number, inv: number): void;
}
