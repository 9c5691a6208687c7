/**
 * Plain-JS float64 reference of `linformer` — Linformer (Wang et al. 2020,
 * "Linformer: Self-Attention with Linear Complexity"). Keys and values are
 * projected along the sequence axis to P rows, `K' = E k` and `V' = F v`,
 * and the queries attend those P rows with exact softmax attention, so the
 * cost is O(Nq * P * D) instead of O(Nq * Nk * D).
 */
import { softmaxAttention, softmaxWeights, type Visible } from './softmax.js';
import { headOffset, type Heads } from '../tensor.js';
import type { Common, Param } from '../validate.js';

/**
 * What the Linformer math needs: the projections `e`, `f` (`[P, Nk]` per
 * head) and the common options (`causal` is always false; padded keys and
 * values are zeroed before projection).
 */
export interface LinformerMath extends Common {
  /** Projection of the keys, `[P, Nk]` per head. */
  readonly e: Param;
  /** Projection of the values, `[P, Nk]` per head. */
  readonly f: Param;
  /** Number of projected rows. */
  readonly P: number;
}

/** Every projected row is visible: the P rows mix all positions, so there is nothing to hide. */
const everyRow: Visible = () => true;

export function isPadded(keyPadding: Uint8Array | null, b: number, N: number, j: number): boolean {
  return keyPadding !== null && keyPadding[b * N + j] === 0;
}

/**
 * `x' = proj · x` along the sequence axis, per batch and query head h (the
 * projection of head h applied to the kv head that h reads): `[B, H, P, Dx]`.
 * Padded rows of x are zeroed first, so they contribute nothing to x'.
 */
export function projectSequence(x: Heads, H: number, proj: Param, P: number, keyPadding: Uint8Array | null): Heads {
  const { B, N, D } = x;
  const out = new Float32Array(B * H * P * D);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const xBase = headOffset(x, b, h, H);
      for (let r = 0; r < P; r++) {
        const projRow = h * proj.headStride + r * N;
        acc.fill(0);
        for (let j = 0; j < N; j++) {
          if (isPadded(keyPadding, b, N, j)) continue;
          const w = proj.data[projRow + j];
          const xOff = xBase + j * D;
          for (let d = 0; d < D; d++) acc[d] += w * x.data[xOff + d];
        }
        out.set(acc, ((b * H + h) * P + r) * D);
      }
    }
  }
  return { data: out, B, H, N: P, D, rank: 4, layout: 'bhnd' };
}

/** `out = softmax(scale · q K'^T) V'` with `K' = e k`, `V' = f v`: `[B, H, Nq, Dv]`. */
export function linformerAttention(q: Heads, k: Heads, v: Heads, math: LinformerMath): Float32Array {
  // Linformer's low-rank step: project the Nk keys and values down to P rows
  const projectedKeys = projectSequence(k, q.H, math.e, math.P, math.keyPadding);
  const projectedValues = projectSequence(v, q.H, math.f, math.P, math.keyPadding);
  // then ordinary softmax attention of every query over the P projected rows
  return softmaxAttention(q, projectedKeys, projectedValues, math, everyRow);
}

/**
 * The dense matrix Linformer applies to v: `softmax(scale · q K'^T) · f`,
 * `[B, H, Nq, Nk]`, with the columns of padded keys zero (their values are
 * zeroed before projection), so that `out = weights · v`.
 */
export function linformerWeights(q: Heads, k: Heads, math: LinformerMath): Float32Array {
  const { B, H, N: Nq } = q;
  const Nk = k.N;
  const { P, f } = math;
  const projected = softmaxWeights(q, projectSequence(k, H, math.e, P, math.keyPadding), math, everyRow);
  const out = new Float32Array(B * H * Nq * Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        const row = ((b * H + h) * Nq + i) * P;
        const outRow = ((b * H + h) * Nq + i) * Nk;
        for (let j = 0; j < Nk; j++) {
          if (isPadded(math.keyPadding, b, Nk, j)) continue;
          // V' = f v, so value j reaches query i through every projected row r
          let sum = 0;
          for (let r = 0; r < P; r++) sum += projected[row + r] * f.data[h * f.headStride + r * Nk + j];
          out[outRow + j] = sum;
        }
      }
    }
  }
  return out;
}
