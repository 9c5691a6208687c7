// The softmax backward of one row held whole: its logits masked, then from
// them and dP = g V^T to P and dS = scale P (dP - delta), delta = P . dP. Shared by the few-row
// backward of assembly/grad/slots.ts and Synthesizer's given logits
// (assembly/grad/synthesizer.ts).
import { expNonPositive, madd } from '../core/simd';
import { at } from '../core/memory';

/**
 * A row of logits into dst over n keys: x[j] scale (+ bias[j]: 0 or -inf,
 * when bias is given) for j < visible, -Infinity past it; returns the
 * largest. dst may be x.
 */
export function maskRow(x: usize, scale: f32, bias: usize, visible: i32, n: i32, dst: usize): f32 {
  const vScale = f32x4.splat(scale);
  let tops = f32x4.splat(-Infinity);
  let j = 0;
  for (; j + 4 <= visible; j += 4) {
    let s = f32x4.mul(v128.load(at(x, j)), vScale);
    if (bias != 0) s = f32x4.add(s, v128.load(at(bias, j)));
    v128.store(at(dst, j), s);
    tops = f32x4.max(tops, s);
  }
  let top = max(max(f32x4.extract_lane(tops, 0), f32x4.extract_lane(tops, 1)), max(f32x4.extract_lane(tops, 2), f32x4.extract_lane(tops, 3)));
  for (; j < visible; j++) {
    let s = load<f32>(at(x, j)) * scale;
    if (bias != 0) s += load<f32>(at(bias, j));
    store<f32>(at(dst, j), s);
    top = max(top, s);
  }
  for (; j < n; j++) store<f32>(at(dst, j), -Infinity);
  return top;
}

/**
 * One row of n in place: pr holds the logits (-Infinity where hidden) whose
 * largest is top, dr holds dP; on return pr = P and dr = scale P (dP - delta).
 * A row that sees nothing (top = -Infinity) gets zeros in both: its output
 * is 0 whatever the inputs. Two passes: e = exp(x - top) with its sum and
 * e . dP, then P = e / sum and dS (delta = (e . dP) / sum).
 */
export function softmaxRowBackward(pr: usize, dr: usize, n: i32, top: f32, scale: f32): void {
  if (top == -Infinity) {
    memory.fill(pr, 0, <usize>n << 2);
    memory.fill(dr, 0, <usize>n << 2);
    return;
  }
  const s = f32x4.splat(top);
  let sums = f32x4.splat(0);
  let dots = f32x4.splat(0);
  let p = 0;
  for (; p + 4 <= n; p += 4) {
    const e = expNonPositive(f32x4.sub(v128.load(at(pr, p)), s));
    v128.store(at(pr, p), e);
    sums = f32x4.add(sums, e);
    dots = madd(e, v128.load(at(dr, p)), dots);
  }
  let sum = lanes(sums);
  let dot = lanes(dots);
  for (; p < n; p++) {
    const e = Mathf.exp(load<f32>(at(pr, p)) - top);
    store<f32>(at(pr, p), e);
    sum += e;
    dot += e * load<f32>(at(dr, p));
  }
  const inv: f32 = 1 / sum;
  const delta = dot * inv;
  const vInv = f32x4.splat(inv);
  const vDelta = f32x4.splat(delta);
  const vScale = f32x4.splat(scale);
  p = 0;
  for (; p + 4 <= n; p += 4) {
    const w = f32x4.mul(v128.load(at(pr, p)), vInv);
    v128.store(at(pr, p), w);
    v128.store(at(dr, p), f32x4.mul(f32x4.mul(vScale, w), f32x4.sub(v128.load(at(dr, p)), vDelta)));
  }
  for (; p < n; p++) {
    const w = load<f32>(at(pr, p)) * inv;
    store<f32>(at(pr, p), w);
    store<f32>(at(dr, p), scale * w * (load<f32>(at(dr, p)) - delta));
  }
}

/** The sum of a vector's four lanes. */
// @ts-ignore: decorator
@inline function lanes(x: v128): f32 {
  return f32x4.extract_lane(x, 0) + f32x4.extract_lane(x, 1) + f32x4.extract_lane(x, 2) + f32x4.extract_lane(x, 3);
}
