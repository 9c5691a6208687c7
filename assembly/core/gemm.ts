// General matrix multiply for the variants' projections (Linformer's e k,
// LSH hashing, routing similarities, Sinkhorn's sorted blocks, phi(K)^T V,
// Synthesizer's MLP): C[M][N] = A[M][K] B[K][N] (+ C when accumulating).
//
// A is read one element at a time through two strides, so A^T costs nothing;
// B's rows are contiguous (the vector loads run along them); all sizes in
// floats. Register tiles of 4 rows x 8 columns: 8 accumulators, 2 B vectors,
// 4 A splats, as in the attention engine.
import { madd } from './simd';
import { at } from './memory';

function tile4x8(K: i32, a: usize, rsA: i32, csA: i32, b: usize, ldb: i32, c: usize, ldc: i32, accumulate: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  // walk pointers rather than multiply indices in the inner loop
  const rowStep = <usize>(rsA << 2);
  const aStep = <usize>(csA << 2);
  const bStep = <usize>(ldb << 2);
  let ap = a;
  let bp = b;
  const end = b + <usize>K * bStep;
  while (bp < end) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let w = v128.load32_splat(ap);
    c00 = madd(w, b0, c00);
    c01 = madd(w, b1, c01);
    w = v128.load32_splat(ap + rowStep);
    c10 = madd(w, b0, c10);
    c11 = madd(w, b1, c11);
    w = v128.load32_splat(ap + 2 * rowStep);
    c20 = madd(w, b0, c20);
    c21 = madd(w, b1, c21);
    w = v128.load32_splat(ap + 3 * rowStep);
    c30 = madd(w, b0, c30);
    c31 = madd(w, b1, c31);
    ap += aStep;
    bp += bStep;
  }
  const r1 = at(c, ldc), r2 = at(c, 2 * ldc), r3 = at(c, 3 * ldc);
  if (accumulate) {
    c00 = f32x4.add(c00, v128.load(c));
    c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(r1));
    c11 = f32x4.add(c11, v128.load(r1, 16));
    c20 = f32x4.add(c20, v128.load(r2));
    c21 = f32x4.add(c21, v128.load(r2, 16));
    c30 = f32x4.add(c30, v128.load(r3));
    c31 = f32x4.add(c31, v128.load(r3, 16));
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(r1, c10);
  v128.store(r1, c11, 16);
  v128.store(r2, c20);
  v128.store(r2, c21, 16);
  v128.store(r3, c30);
  v128.store(r3, c31, 16);
}

/** One row of C against 4 columns: the tails of the 4 x 8 tiling. */
function tile1x4(K: i32, a: usize, csA: i32, b: usize, ldb: i32, c: usize, accumulate: bool): void {
  let acc = f32x4.splat(0);
  for (let p = 0; p < K; p++) acc = madd(v128.load32_splat(at(a, p * csA)), v128.load(at(b, p * ldb)), acc);
  v128.store(c, accumulate ? f32x4.add(acc, v128.load(c)) : acc);
}

/** One element of C. */
function dot1(K: i32, a: usize, csA: i32, b: usize, ldb: i32, c: usize, accumulate: bool): void {
  let sum: f32 = 0;
  for (let p = 0; p < K; p++) sum += load<f32>(at(a, p * csA)) * load<f32>(at(b, p * ldb));
  store<f32>(c, accumulate ? sum + load<f32>(c) : sum);
}

/**
 * C[M][N] = A B (or C + A B): A(i, p) at a + (i rsA + p csA) floats, B(p, j)
 * at b + (p ldb + j), C(i, j) at c + (i ldc + j).
 */
export function gemm(
  M: i32, N: i32, K: i32,
  a: usize, rsA: i32, csA: i32,
  b: usize, ldb: i32,
  c: usize, ldc: i32,
  accumulate: bool,
): void {
  const n8 = N & ~7;
  const n4 = N & ~3;
  let i = 0;
  for (; i + 4 <= M; i += 4) {
    const ai = at(a, i * rsA);
    const ci = at(c, i * ldc);
    for (let j = 0; j < n8; j += 8) tile4x8(K, ai, rsA, csA, at(b, j), ldb, at(ci, j), ldc, accumulate);
    for (let r = 0; r < 4; r++) {
      const ar = at(ai, r * rsA);
      const cr = at(ci, r * ldc);
      if (n4 > n8) tile1x4(K, ar, csA, at(b, n8), ldb, at(cr, n8), accumulate);
      for (let j = n4; j < N; j++) dot1(K, ar, csA, at(b, j), ldb, at(cr, j), accumulate);
    }
  }
  for (; i < M; i++) {
    const ai = at(a, i * rsA);
    const ci = at(c, i * ldc);
    for (let j = 0; j < n4; j += 4) tile1x4(K, ai, csA, at(b, j), ldb, at(ci, j), accumulate);
    for (let j = n4; j < N; j++) dot1(K, ai, csA, at(b, j), ldb, at(ci, j), accumulate);
  }
}

/** dst[c][r] = src[r][c] for an R x C block (leading dimensions in floats). */
export function transpose(R: i32, C: i32, src: usize, ldSrc: i32, dst: usize, ldDst: i32): void {
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) store<f32>(at(dst, c * ldDst + r), load<f32>(at(src, r * ldSrc + c)));
  }
}

/**
 * C[M][N] += A B with A in panels of 4 rows, the layout the attention
 * engine's score blocks have (st[key][8 rows] is two panels, 16 bytes
 * apart, of 32-byte steps): A(i, p) at a + (i / 4) panelBytes + p aStep +
 * (i % 4) 4 bytes. The splats' offsets are constants, which the general
 * gemm's strides are not (about 1.4x faster on a 64 x 64 x 64 block). B rows
 * ldb floats apart, C rows ldc apart; rows of C from M on are never touched.
 * Inlined, so that aStep and panelBytes are constants too.
 */
// @ts-ignore: decorator
@inline export function gemmPanels(
  M: i32, N: i32, K: i32, a: usize, panelBytes: usize, aStep: usize, b: usize, ldb: i32, c: usize, ldc: i32,
): void {
  const n8 = N & ~7;
  for (let i = 0; i < M; i += 4) {
    const ai = a + <usize>(i >> 2) * panelBytes;
    const ci = at(c, i * ldc);
    const rows = min(4, M - i);
    for (let j = 0; j < n8; j += 8) panelTile(K, ai, aStep, at(b, j), ldb, at(ci, j), ldc, rows, true);
    for (let r = 0; r < rows; r++) {
      for (let j = n8; j < N; j++) {
        let sum: f32 = 0;
        for (let p = 0; p < K; p++) sum += load<f32>(ai + <usize>p * aStep + (<usize>r << 2)) * load<f32>(at(b, p * ldb + j));
        store<f32>(at(ci, r * ldc + j), load<f32>(at(ci, r * ldc + j)) + sum);
      }
    }
  }
}

/**
 * The register tile of gemmPanels and of the attention engine's scores
 * (flash.ts scoreBlock): 4 rows x 8 columns of C (the first `rows` stored,
 * added to C when accumulating): 8 accumulators, 2 B vectors, 4 A splats.
 */
// @ts-ignore: decorator
@inline export function panelTile(K: i32, a: usize, aStep: usize, b: usize, ldb: i32, c: usize, ldc: i32, rows: i32, accumulate: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const bStep = <usize>(ldb << 2);
  let ap = a;
  let bp = b;
  const end = a + <usize>K * aStep;
  while (ap < end) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let w = v128.load32_splat(ap);
    c00 = madd(w, b0, c00);
    c01 = madd(w, b1, c01);
    w = v128.load32_splat(ap, 4);
    c10 = madd(w, b0, c10);
    c11 = madd(w, b1, c11);
    w = v128.load32_splat(ap, 8);
    c20 = madd(w, b0, c20);
    c21 = madd(w, b1, c21);
    w = v128.load32_splat(ap, 12);
    c30 = madd(w, b0, c30);
    c31 = madd(w, b1, c31);
    ap += aStep;
    bp += bStep;
  }
  if (accumulate) {
    c00 = f32x4.add(c00, v128.load(c));
    c01 = f32x4.add(c01, v128.load(c, 16));
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  if (rows < 2) return;
  const r1 = at(c, ldc);
  if (accumulate) {
    c10 = f32x4.add(c10, v128.load(r1));
    c11 = f32x4.add(c11, v128.load(r1, 16));
  }
  v128.store(r1, c10);
  v128.store(r1, c11, 16);
  if (rows < 3) return;
  const r2 = at(c, 2 * ldc);
  if (accumulate) {
    c20 = f32x4.add(c20, v128.load(r2));
    c21 = f32x4.add(c21, v128.load(r2, 16));
  }
  v128.store(r2, c20);
  v128.store(r2, c21, 16);
  if (rows < 4) return;
  const r3 = at(c, 3 * ldc);
  if (accumulate) {
    c30 = f32x4.add(c30, v128.load(r3));
    c31 = f32x4.add(c31, v128.load(r3, 16));
  }
  v128.store(r3, c30);
  v128.store(r3, c31, 16);
}
