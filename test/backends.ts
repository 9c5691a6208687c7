/** What the property and bounds suites compare, and how they compare bits. */
import { createAttention, type Attention } from '../dist/index.js';

/** SIMD on one thread, SIMD on the pool of two, and the float64 JS backend (`two` is the caller's to dispose). */
export async function comparedBackends(): Promise<{ one: Attention; two: Attention; js: Attention }> {
  return {
    one: await createAttention({ backend: 'wasm', threads: 1 }),
    two: await createAttention({ backend: 'wasm', threads: 2 }),
    js: await createAttention({ backend: 'js' }),
  };
}

/** The bytes of a float32 result, to compare two results bit for bit. */
export const bytes = (x: Float32Array): Uint8Array => new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
