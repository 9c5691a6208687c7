// The feature maps phi of `linear` (SPEC "Changing the order of operations"),
// shared by its forward kernels (assembly/variants/linear.ts, linear-state.ts)
// and its backward pass (assembly/grad/linear.ts): elu + 1, relu, FAVOR+
// positive random features, RFA's random Fourier features, Efficient
// Attention's row softmax; and where their blocks keep the map's parameters.
// Kept out of the module's exports (assembly/index.ts re-exports the variant
// files whole, and an exported class would pull in the runtime).
import { gemm } from './gemm';
import { at, scaleRow } from './memory';
import { madd } from './simd';

// Feature maps, numbered as src/variants/linear.ts passes them.
export const ELU: i32 = 0;
export const RELU: i32 = 1;
export const FAVOR: i32 = 2;
export const RFA: i32 = 3;
export const EFFICIENT: i32 = 4;

const NEG_INF: f32 = -Infinity;

/** Bytes reserved for the header of a block of linear (a head's context, a recurrent state, a backward workspace). */
export const BLOCK_HEADER: usize = 256;
/** Where the feature map's parameters (Features) sit inside a block's header, after the block's own fields (each block's class stays below 192 bytes). */
const MAP_AT: usize = 192;

/** The feature map's parameters in the header of the block at `block`. */
// @ts-ignore: decorator
@inline export function mapOf(block: usize): Features {
  return changetype<Features>(block + MAP_AT);
}

/** Writes a feature map's parameters into the header of the block at `block`, and returns them. */
export function writeMap(block: usize, kind: i32, D: i32, F: i32, M: i32, wt: usize, scale: f32): Features {
  const p = mapOf(block);
  p.kind = kind;
  p.D = D;
  p.F = F;
  p.M = M;
  p.wt = wt;
  p.scale = scale;
  return p;
}

/** Bytes of a buffer of n floats, 16-byte aligned, with 4 floats of slack for vector tails. */
// @ts-ignore: decorator
@inline export function floats(n: f64): f64 {
  return Math.ceil((n * 4 + 16) / 16) * 16;
}

/** The parameters of a feature map: what featurise needs besides the rows. */
@unmanaged export class Features {
  kind: i32;
  D: i32;
  /** Length of phi: D (elu, relu, efficient), M (favor), 2M (rfa). */
  F: i32;
  /** Random features (favor, rfa); 0 otherwise. */
  M: i32;
  /** This head's projection, transposed: [D][M], times sqrt(scale) for favor. */
  wt: usize;
  /** favor: |x'|^2 / 2 = scale |x|^2 / 2. */
  scale: f32;
}

// expNonPositive (core/simd.ts) with its constants read from a static table:
// V8 rebuilds every v128.const inside a loop (several instructions each),
// while a load from this table folds into the arithmetic. Same math, same
// results, about half the instructions.
const EXP_TABLE = memory.data<u32>([
  0x3FB8AA3B, 0x3FB8AA3B, 0x3FB8AA3B, 0x3FB8AA3B, // log2(e)
  0x4B40007F, 0x4B40007F, 0x4B40007F, 0x4B40007F, // 1.5 * 2^23 + 127
  0xBF317200, 0xBF317200, 0xBF317200, 0xBF317200, // -ln2, high part
  0xB5BFBE8E, 0xB5BFBE8E, 0xB5BFBE8E, 0xB5BFBE8E, // -ln2, low part
  0x3C07CFCE, 0x3C07CFCE, 0x3C07CFCE, 0x3C07CFCE, // c5
  0x3D2B9D0D, 0x3D2B9D0D, 0x3D2B9D0D, 0x3D2B9D0D, // c4
  0x3E2AAD40, 0x3E2AAD40, 0x3E2AAD40, 0x3E2AAD40, // c3
  0x3EFFFEE3, 0x3EFFFEE3, 0x3EFFFEE3, 0x3EFFFEE3, // c2
  0x3F7FFFFB, 0x3F7FFFFB, 0x3F7FFFFB, 0x3F7FFFFB, // c1
  0xC2AEAC4F, 0xC2AEAC4F, 0xC2AEAC4F, 0xC2AEAC4F, // below: exp is subnormal, flushed to 0
], 16);

/** exp of four lanes, each <= 0 (or -Infinity): expNonPositive of core/simd.ts. */
// @ts-ignore: decorator
@inline export function expK(x: v128): v128 {
  const k = EXP_TABLE;
  const magic = v128.load(k, 16);
  let n = madd(x, v128.load(k), magic);
  const s = i32x4.shl(n, 23);
  n = f32x4.sub(n, magic);
  let t = madd(n, v128.load(k, 32), x);
  t = madd(n, v128.load(k, 48), t);
  let p = madd(v128.load(k, 64), t, v128.load(k, 80));
  p = madd(p, t, v128.load(k, 96));
  p = madd(p, t, v128.load(k, 112));
  p = madd(p, t, v128.load(k, 128));
  t = f32x4.mul(t, s);
  const e = madd(t, p, s);
  return v128.andnot(e, f32x4.lt(x, v128.load(k, 144)));
}

/** expK with the table already in registers (hot loops load it once, before the loop). */
// @ts-ignore: decorator
@inline function expR(x: v128, log2e: v128, magic: v128, ln2hi: v128, ln2lo: v128, c5: v128, c4: v128, c3: v128, c2: v128, c1: v128, cutoff: v128): v128 {
  let n = madd(x, log2e, magic);
  const s = i32x4.shl(n, 23);
  n = f32x4.sub(n, magic);
  let t = madd(n, ln2hi, x);
  t = madd(n, ln2lo, t);
  let p = madd(c5, t, c4);
  p = madd(p, t, c3);
  p = madd(p, t, c2);
  p = madd(p, t, c1);
  t = f32x4.mul(t, s);
  const e = madd(t, p, s);
  return v128.andnot(e, f32x4.lt(x, cutoff));
}

/** Sum of squares of a row of n floats. */
function sumSquares(x: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let d = 0;
  for (; d + 4 <= n; d += 4) {
    const v = v128.load(at(x, d));
    acc = madd(v, v, acc);
  }
  let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; d < n; d++) {
    const v = load<f32>(at(x, d));
    s += v * v;
  }
  return s;
}

/** Dot product of two rows of n floats. */
export function dot(a: usize, b: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) acc = madd(v128.load(at(a, i)), v128.load(at(b, i)), acc);
  let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; i < n; i++) s += load<f32>(at(a, i)) * load<f32>(at(b, i));
  return s;
}

/** Largest of a row of n >= 1 floats. */
function rowMax(x: usize, n: i32): f32 {
  let i = 0;
  let m = NEG_INF;
  if (n >= 4) {
    let acc = v128.load(x);
    for (i = 4; i + 4 <= n; i += 4) acc = f32x4.max(acc, v128.load(at(x, i)));
    m = max(max(f32x4.extract_lane(acc, 0), f32x4.extract_lane(acc, 1)), max(f32x4.extract_lane(acc, 2), f32x4.extract_lane(acc, 3)));
  }
  for (; i < n; i++) m = max(m, load<f32>(at(x, i)));
  return m;
}

/** x[i] = exp(x[i] - shift) for i < n, each x[i] <= shift; returns their sum. */
function expShifted(x: usize, n: i32, shift: f32): f32 {
  const s = f32x4.splat(shift);
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const e = expK(f32x4.sub(v128.load(at(x, i)), s));
    v128.store(at(x, i), e);
    acc = f32x4.add(acc, e);
  }
  let sum = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; i < n; i++) {
    const e = Mathf.exp(load<f32>(at(x, i)) - shift);
    store<f32>(at(x, i), e);
    sum += e;
  }
  return sum;
}

// sin and cos of four lanes (RFA): x = n pi/2 + r with |r| <= pi/4 (three-part
// Cody-Waite reduction), Cephes' sinf / cosf polynomials on r, the quadrant
// n mod 4 picks and signs them. Absolute error about 1e-7 for |x| < 1e4,
// below the float32 error of the argument itself.
const TWO_OVER_PI: f32 = 0.636619772;
const PIO2_1: f32 = 1.5703125;
const PIO2_2: f32 = 4.83751296997e-4;
const PIO2_3: f32 = 7.54978995489e-8;
const S1: f32 = -1.6666654611e-1;
const S2: f32 = 8.3321608736e-3;
const S3: f32 = -1.9515295891e-4;
const C1: f32 = 4.166664568298827e-2;
const C2: f32 = -1.388731625493765e-3;
const C3: f32 = 2.443315711809948e-5;

/** Writes amp * sin(x) to sinOut and amp * cos(x) to cosOut (four lanes each). */
// @ts-ignore: decorator
@inline function sinCos4(x: v128, amp: v128, sinOut: usize, cosOut: usize): void {
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(TWO_OVER_PI)));
  let r = madd(n, f32x4.splat(-PIO2_1), x);
  r = madd(n, f32x4.splat(-PIO2_2), r);
  r = madd(n, f32x4.splat(-PIO2_3), r);
  const r2 = f32x4.mul(r, r);
  let ps = madd(r2, f32x4.splat(S3), f32x4.splat(S2));
  ps = madd(ps, r2, f32x4.splat(S1));
  const s = madd(f32x4.mul(ps, r2), r, r);
  let pc = madd(r2, f32x4.splat(C3), f32x4.splat(C2));
  pc = madd(pc, r2, f32x4.splat(C1));
  const c = madd(f32x4.mul(pc, r2), r2, madd(r2, f32x4.splat(-0.5), f32x4.splat(1)));
  const q = i32x4.trunc_sat_f32x4_s(n);
  const odd = i32x4.eq(v128.and(q, i32x4.splat(1)), i32x4.splat(1));
  const sinBase = v128.bitselect(c, s, odd);
  const cosBase = v128.bitselect(s, c, odd);
  // sin is negative in quadrants 2, 3; cos in quadrants 1, 2: flip the sign bit
  const sinSign = i32x4.shl(v128.and(q, i32x4.splat(2)), 30);
  const cosSign = i32x4.shl(v128.and(i32x4.add(q, i32x4.splat(1)), i32x4.splat(2)), 30);
  v128.store(sinOut, f32x4.mul(v128.xor(sinBase, sinSign), amp));
  v128.store(cosOut, f32x4.mul(v128.xor(cosBase, cosSign), amp));
}

/**
 * phi of `rows` rows of x ([rows][D]) into phi ([rows][F]) with each row's
 * log scale in off (0 except favor): phi(x_r) = exp(off[r]) * phi[r].
 * efficient queries: the softmax of each row over its D features.
 */
export function featurise(p: Features, x: usize, rows: i32, phi: usize, off: usize): void {
  const D = p.D;
  const F = p.F;
  const kind = p.kind;
  if (kind == ELU || kind == RELU) {
    // elementwise on the whole block (phi rows are D long)
    const n = rows * D;
    const one = f32x4.splat(1);
    const zero = f32x4.splat(0);
    let i = 0;
    if (kind == ELU) {
      const k = EXP_TABLE;
      const log2e = v128.load(k), magic = v128.load(k, 16), ln2hi = v128.load(k, 32), ln2lo = v128.load(k, 48);
      const c5 = v128.load(k, 64), c4 = v128.load(k, 80), c3 = v128.load(k, 96), c2 = v128.load(k, 112), c1 = v128.load(k, 128);
      const cutoff = v128.load(k, 144);
      for (; i + 4 <= n; i += 4) {
        const v = v128.load(at(x, i));
        const e = expR(f32x4.min(v, zero), log2e, magic, ln2hi, ln2lo, c5, c4, c3, c2, c1, cutoff);
        v128.store(at(phi, i), v128.bitselect(f32x4.add(v, one), e, f32x4.gt(v, zero)));
      }
    } else {
      for (; i + 4 <= n; i += 4) v128.store(at(phi, i), f32x4.max(v128.load(at(x, i)), zero));
    }
    for (; i < n; i++) {
      const v = load<f32>(at(x, i));
      store<f32>(at(phi, i), kind == ELU ? (v > 0 ? v + 1 : Mathf.exp(v)) : max(v, 0));
    }
    for (let r = 0; r < rows; r++) store<f32>(at(off, r), 0);
    return;
  }
  if (kind == EFFICIENT) {
    for (let r = 0; r < rows; r++) {
      const row = at(phi, r * F);
      memory.copy(row, at(x, r * D), <usize>D << 2);
      const sum = expShifted(row, D, rowMax(row, D));
      scaleRow(row, row, 1 / sum, D);
      store<f32>(at(off, r), 0);
    }
    return;
  }
  // favor, rfa: the projections x W^T as one GEMM, into the first M columns
  const M = p.M;
  gemm(rows, M, D, x, D, 1, p.wt, M, phi, F, false);
  if (kind == FAVOR) {
    // phi_m = M^(-1/2) exp(w_m . x' - |x'|^2 / 2) = exp(off) exp(w_m . x' - max)
    const shift: f32 = <f32>0.5 * Mathf.log(<f32>M);
    for (let r = 0; r < rows; r++) {
      const row = at(phi, r * F);
      const top = rowMax(row, M);
      expShifted(row, M, top);
      store<f32>(at(off, r), top - p.scale * <f32>0.5 * sumSquares(at(x, r * D), D) - shift);
    }
    return;
  }
  // rfa: M^(-1/2) [sin(W x^), cos(W x^)], x^ = x / max(|x|, 1e-12)
  const amplitude: f32 = 1 / Mathf.sqrt(<f32>M);
  const amp = f32x4.splat(amplitude);
  for (let r = 0; r < rows; r++) {
    const row = at(phi, r * F);
    const inv: f32 = 1 / max(Mathf.sqrt(sumSquares(at(x, r * D), D)), <f32>1e-12);
    const s = f32x4.splat(inv);
    let m = 0;
    for (; m + 4 <= M; m += 4) sinCos4(f32x4.mul(v128.load(at(row, m)), s), amp, at(row, m), at(row, M + m));
    for (; m < M; m++) {
      const a = <f64>(load<f32>(at(row, m)) * inv);
      store<f32>(at(row, m), amplitude * <f32>Math.sin(a));
      store<f32>(at(row, M + m), amplitude * <f32>Math.cos(a));
    }
    store<f32>(at(off, r), 0);
  }
}

