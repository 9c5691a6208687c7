/**
 * Float64 backward pass of `linformer` (forward: ../linformer.ts). With
 * `K' = e k` and `V' = f v` per batch and query head, the softmax backward
 * over the P projected rows gives dK', dV'; then
 * `dk_j += sum_r e_rj dK'_r`, `de_rj += dK'_r . k_j` (and the same for f, v),
 * padded positions taking no part. A projection shared by heads (head axis 1)
 * sums its heads' gradients; `f = e` sums both uses into e.
 */
import { headOffset, type Heads } from '../../tensor.js';
import type { Param } from '../../validate.js';
import { isPadded, projectSequence, type LinformerMath } from '../linformer.js';
import { paramGradient } from './param.js';
import { softmaxBackward } from './softmax.js';

export interface LinformerGradients {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly v: Float64Array;
  /** `[1|H, P, Nk]` like e. */
  readonly e: Float64Array;
  /** `[1|H, P, Nk]` like f; the same array as `e` when f is e. */
  readonly f: Float64Array;
}

/**
 * Backward of `x' = proj x` for every batch and query head: adds
 * `proj^T dX'` into dx (the kv head query head h reads) and `dX' x^T` into dProj.
 */
function projectBackward(x: Heads, H: number, proj: Param, P: number, keyPadding: Uint8Array | null, dProjected: Float64Array, dx: Float64Array, dProj: Float64Array): void {
  const { B, N, D } = x;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const xBase = headOffset(x, b, h, H);
      for (let r = 0; r < P; r++) {
        const projRow = h * proj.headStride + r * N;
        const gRow = ((b * H + h) * P + r) * D;
        for (let j = 0; j < N; j++) {
          if (isPadded(keyPadding, b, N, j)) continue;
          const w = proj.data[projRow + j];
          let dot = 0;
          for (let d = 0; d < D; d++) {
            dx[xBase + j * D + d] += w * dProjected[gRow + d];
            dot += dProjected[gRow + d] * x.data[xBase + j * D + d];
          }
          dProj[projRow + j] += dot;
        }
      }
    }
  }
}

export function linformerBackward(q: Heads, k: Heads, v: Heads, math: LinformerMath, gradOutput: Float32Array): LinformerGradients {
  const { H } = q;
  const { P, e, f, keyPadding } = math;
  const projectedKeys = projectSequence(k, H, e, P, keyPadding);
  const projectedValues = projectSequence(v, H, f, P, keyPadding);
  const g = softmaxBackward(q, projectedKeys, projectedValues, math, () => true, gradOutput);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const de = paramGradient(e, H, P * k.N);
  const df = f === e ? de : paramGradient(f, H, P * k.N);
  projectBackward(k, H, e, P, keyPadding, g.k, dk, de);
  projectBackward(v, H, f, P, keyPadding, g.v, dv, df);
  return { q: g.q, k: dk, v: dv, e: de, f: df };
}
