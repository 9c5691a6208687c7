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
