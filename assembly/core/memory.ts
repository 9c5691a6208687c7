// Kernels never allocate: the TypeScript arena hands them every buffer.
// This is where the arena may start (after the module's static data).

export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}

/** Whether this build fuses multiply-adds with relaxed SIMD (f32x4.relaxed_madd). */
export function relaxedSimd(): bool {
  return ASC_FEATURE_RELAXED_SIMD;
}
