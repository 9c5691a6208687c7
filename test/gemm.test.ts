// The shared SIMD GEMM against a plain float64 matrix product.
import { beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../dist/runtime/runtime.js';
import { maxAbsDiff } from './golden.js';
import { randn } from './random.js';

let runtime: Runtime;
beforeAll(async () => {
  runtime = await Runtime.create();
});

/** C = A B (+ C0), A given as [M][K] or, transposed, as [K][M]. */
function product(M: number, N: number, K: number, a: Float32Array, aTransposed: boolean, b: Float32Array, c0: Float32Array | null): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = c0 ? c0[i * N + j] : 0;
      for (let p = 0; p < K; p++) s += (aTransposed ? a[p * M + i] : a[i * K + p]) * b[p * N + j];
      c[i * N + j] = s;
    }
  return c;
}

describe('gemm', () => {
  const sizes = [
    [1, 1, 1],
    [4, 8, 3],
    [5, 9, 7],
    [13, 21, 17],
    [64, 64, 64],
    [3, 4, 100],
    [33, 12, 1],
  ];
  for (const [M, N, K] of sizes) {
    for (const aTransposed of [false, true]) {
      for (const accumulate of [false, true]) {
        it(`M=${M} N=${N} K=${K} A${aTransposed ? '^T' : ''}${accumulate ? ' + C' : ''}`, () => {
          const a = randn([M * K], M + N + K).data;
          const b = randn([K * N], M * N * K).data;
          const c0 = randn([M * N], 7).data;
          const got = runtime.call('gemm', [a, b, c0], 2, M * N, ([ap, bp, cp]) => {
            const [rs, cs] = aTransposed ? [1, M] : [K, 1];
            runtime.exports.gemm(M, N, K, ap, rs, cs, bp, N, cp, N, accumulate ? 1 : 0);
          });
          expect(maxAbsDiff(got, product(M, N, K, a, aTransposed, b, accumulate ? c0 : null))).toBeLessThanOrEqual(1e-4 * Math.sqrt(K));
        });
      }
    }
  }

  it('transposes', () => {
    const src = randn([5 * 7], 3).data;
    const got = runtime.call('transpose', [src, 35 * 4], 1, 35, ([s, d]) => runtime.exports.transpose(5, 7, s, 7, d, 5));
    const want = new Float32Array(35);
    for (let r = 0; r < 5; r++) for (let c = 0; c < 7; c++) want[c * 5 + r] = src[r * 7 + c];
    expect(maxAbsDiff(got, want)).toBe(0);
  });
});
