// The softmax backward of one row held whole: from its logits and dP = g V^T
// to P and dS = scale P (dP - delta), delta = P . dP. Shared by the few-row
// backward of assembly/grad/slots.ts and Synthesizer's given logits
// (assembly/grad/synthesizer.ts).
import { expNonPositive } from '../core/simd';

// @ts-ignore: decorator
@inline function at(base: usize, index: i32): usize {
  return base + (<usize>index << 2);
}

/** exp(x - top) of a row of n, in place (each x <= top, or -Infinity); returns the sum. */
function expRow(x: usize, n: i32, top: f32): f32 {
  const s = f32x4.splat(top);
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const e = expNonPositive(f32x4.sub(v128.load(at(x, i)), s));
    v128.store(at(x, i), e);
    acc = f32x4.add(acc, e);
  }
  let sum = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; i < n; i++) {
    const e = Mathf.exp(load<f32>(at(x, i)) - top);
    store<f32>(at(x, i), e);
    sum += e;
  }
  return sum;
}

/**
 * One row of n in place: pr holds the logits (-Infinity where hidden) whose
 * largest is top, dr holds dP; on return pr = P and dr = scale P (dP - delta).
 * A row that sees nothing (top = -Infinity) gets zeros in both: its output
 * is 0 whatever the inputs.
 */
export function softmaxRowBackward(pr: usize, dr: usize, n: i32, top: f32, scale: f32): void {
  if (top == -Infinity) {
    memory.fill(pr, 0, <usize>n << 2);
    memory.fill(dr, 0, <usize>n << 2);
    return;
  }
  const inv: f32 = 1 / expRow(pr, n, top);
  let delta: f32 = 0;
  for (let p = 0; p < n; p++) {
    const w = load<f32>(at(pr, p)) * inv;
    store<f32>(at(pr, p), w);
    delta += w * load<f32>(at(dr, p));
  }
  for (let p = 0; p < n; p++) store<f32>(at(dr, p), scale * load<f32>(at(pr, p)) * (load<f32>(at(dr, p)) - delta));
}
