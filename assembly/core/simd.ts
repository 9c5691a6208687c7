// SIMD building blocks shared by every kernel: multiply-add and a vector exp.

/** a * b + c. Fused in the relaxed-SIMD build (f32x4.relaxed_madd), mul then add otherwise. */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

// exp(x) for x <= 0, as XNNPACK's f32 exp "wasmsimd_rr2_p5": n = round(x / ln2),
// t = x - n ln2 in two steps (Cody-Waite), exp(t) by a degree-5 polynomial,
// 2^n built from the exponent bits; flushed to 0 below -87.34 (so -Infinity gives 0).
// see: XNNPACK src/f32-raddstoreexpminusmax/wasmsimd-rr2-p5.c.in
const LOG2E: f32 = reinterpret<f32>(0x3FB8AA3B); // 1.44269502
// 1.5 * 2^23 + 127: adding it rounds x log2e to an integer n and leaves n + 127 in the low bits
const MAGIC_BIAS: f32 = reinterpret<f32>(0x4B40007F); // 12583039.0
const MINUS_LN2_HI: f32 = reinterpret<f32>(0xBF317200); // -0.693145752
const MINUS_LN2_LO: f32 = reinterpret<f32>(0xB5BFBE8E); // -1.42860677e-6
const C5: f32 = reinterpret<f32>(0x3C07CFCE); // 0.00828929059
const C4: f32 = reinterpret<f32>(0x3D2B9D0D); // 0.0418978222
const C3: f32 = reinterpret<f32>(0x3E2AAD40); // 0.166676521
const C2: f32 = reinterpret<f32>(0x3EFFFEE3); // 0.499991506
const C1: f32 = reinterpret<f32>(0x3F7FFFFB); // 0.999999702
const DENORM_CUTOFF: f32 = reinterpret<f32>(0xC2AEAC4F); // -87.3365402: exp below is subnormal

/** exp of four lanes, each <= 0 (or -Infinity). Max relative error about 1.5e-7. */
// @ts-ignore: decorator
@inline export function expNonPositive(x: v128): v128 {
  const magic = f32x4.splat(MAGIC_BIAS);
  let n = madd(x, f32x4.splat(LOG2E), magic);
  const s = i32x4.shl(n, 23); // 2^n
  n = f32x4.sub(n, magic);
  let t = madd(n, f32x4.splat(MINUS_LN2_HI), x);
  t = madd(n, f32x4.splat(MINUS_LN2_LO), t);
  let p = madd(f32x4.splat(C5), t, f32x4.splat(C4));
  p = madd(p, t, f32x4.splat(C3));
  p = madd(p, t, f32x4.splat(C2));
  p = madd(p, t, f32x4.splat(C1));
  t = f32x4.mul(t, s);
  const e = madd(t, p, s);
  // also clears the NaN that -Infinity makes on the way
  return v128.andnot(e, f32x4.lt(x, f32x4.splat(DENORM_CUTOFF)));
}

/** Rounds n up to a multiple of m (a power of two). */
// @ts-ignore: decorator
@inline export function roundUp(n: i32, m: i32): i32 {
  return (n + m - 1) & ~(m - 1);
}
