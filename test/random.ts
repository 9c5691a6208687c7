/** Seeded random inputs for tests. */
import { Rng } from '../src/prng.js';

export interface T {
  data: Float32Array;
  dims: number[];
}

/** A tensor of standard-normal values times `scale`. */
export function randn(dims: number[], seed: number, scale = 1): T {
  const rng = new Rng(seed);
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() * scale;
  return { data, dims };
}

/** A [B, N] key-padding mask with about `fraction` of keys padded (never all of a batch's). */
export function padding(B: number, N: number, seed: number, fraction = 0.3): Uint8Array {
  const rng = new Rng(seed);
  const m = new Uint8Array(B * N);
  for (let i = 0; i < m.length; i++) m[i] = rng.uniform() < fraction ? 0 : 1;
  for (let b = 0; b < B; b++) m[b * N] = 1;
  return m;
}

/** Rows of x divided by max(|row|, 1e-12). */
export function normalised(x: T): T {
  const D = x.dims[x.dims.length - 1];
  const data = new Float32Array(x.data.length);
  for (let n = 0; n < x.data.length / D; n++) {
    const row = x.data.subarray(n * D, (n + 1) * D);
    const norm = Math.max(Math.hypot(...row), 1e-12);
    for (let d = 0; d < D; d++) data[n * D + d] = row[d] / norm;
  }
  return { data, dims: x.dims };
}

/** A copy of x with rows from `from` on (in every batch and head) replaced by fresh standard normals times `scale`. */
export function changedFrom(x: T, from: number, seed: number, scale: number): T {
  const [N, D] = x.dims.slice(-2) as [number, number];
  const fresh = randn(x.dims, seed, scale);
  const data = x.data.slice();
  for (let n = 0; n < data.length / D; n++) {
    if (n % N >= from) data.set(fresh.data.subarray(n * D, (n + 1) * D), n * D);
  }
  return { data, dims: x.dims };
}

/** A copy of x `[B, H, N, D]` whose padded rows (mask 0 in `[B, N]`) hold fresh noise: what padding must never see. */
export function changePaddedRows(x: T, mask: Uint8Array, seed: number): T {
  const [B, H, N, D] = x.dims as [number, number, number, number];
  const noise = randn(x.dims, seed, 10);
  const data = Float32Array.from(x.data);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let j = 0; j < N; j++) {
        if (mask[b * N + j] !== 0) continue;
        for (let d = 0; d < D; d++) data[((b * H + h) * N + j) * D + d] = noise.data[((b * H + h) * N + j) * D + d];
      }
    }
  }
  return { data, dims: x.dims };
}

/** `[H, ...inner]` made of `times` copies of a one-head tensor `[1, ...inner]` (or, giving `inner`, `[...inner]`). */
export function repeatHeads(t: T, times: number, inner: number[] = t.dims.slice(1)): T {
  const data = new Float32Array(t.data.length * times);
  for (let h = 0; h < times; h++) data.set(t.data, h * t.data.length);
  return { data, dims: [times, ...inner] };
}

/** `[B, Hkv, N, D]` with every head repeated `times` times in a row, `[B, Hkv * times, N, D]` (PyTorch `repeat_interleave` on the head axis). */
export function repeatInterleaveHeads(x: T, times: number): T {
  const [B, H, N, D] = x.dims as [number, number, number, number];
  const data = new Float32Array(x.data.length * times);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H * times; h++) {
      const from = (b * H + Math.floor(h / times)) * N * D;
      data.set(x.data.subarray(from, from + N * D), (b * H * times + h) * N * D);
    }
  }
  return { data, dims: [B, H * times, N, D] };
}

/** `[B, X, Y, D]` with its two middle axes swapped: `[B, Y, X, D]` (bhnd <-> bnhd). */
export function swapHeadsAndPositions(x: T): T {
  const [B, X, Y, D] = x.dims as [number, number, number, number];
  const data = new Float32Array(x.data.length);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < X; i++) {
      for (let j = 0; j < Y; j++) data.set(x.data.subarray(((b * X + i) * Y + j) * D, ((b * X + i) * Y + j + 1) * D), ((b * Y + j) * X + i) * D);
    }
  }
  return { data, dims: [B, Y, X, D] };
}
