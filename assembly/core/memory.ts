// Kernels never allocate: the TypeScript arena hands them every buffer.
// This is where the arena may start (after the module's static data).

export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}

/** Whether this build fuses multiply-adds with relaxed SIMD (f32x4.relaxed_madd). */
export function relaxedSimd(): bool {
  return ASC_FEATURE_RELAXED_SIMD;
}

/** The address of float32 `index` of the buffer at `base`. */
// @ts-ignore: decorator
@inline export function at(base: usize, index: i32): usize {
  return base + (<usize>index << 2);
}

/** The address of float64 `index` of the buffer at `base`. */
// @ts-ignore: decorator
@inline export function at64(base: usize, index: i32): usize {
  return base + (<usize>index << 3);
}

/**
 * Copies `floats` float32 values (a row): vectors, then the tail. Short rows
 * copied one by one cost less this way than as `memory.copy`, which V8 runs
 * as a call out of the module.
 */
export function copyRow(dst: usize, src: usize, floats: i32): void {
  const bytes = <usize>floats << 2;
  const vectors = bytes & ~15;
  let at: usize = 0;
  for (; at < vectors; at += 16) v128.store(dst + at, v128.load(src + at));
  for (; at < bytes; at += 4) store<f32>(dst + at, load<f32>(src + at));
}

/** dst = src * scale over `floats` float32 values (a row; dst may be src): vectors, then the tail. */
export function scaleRow(dst: usize, src: usize, scale: f32, floats: i32): void {
  const bytes = <usize>floats << 2;
  const vectors = bytes & ~15;
  const s = f32x4.splat(scale);
  let at: usize = 0;
  for (; at < vectors; at += 16) v128.store(dst + at, f32x4.mul(v128.load(src + at), s));
  for (; at < bytes; at += 4) store<f32>(dst + at, load<f32>(src + at) * scale);
}
