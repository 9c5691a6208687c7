// The backward of the feature maps phi of `linear` (core/features.ts): the
// chain rule from the gradients of phi's rows to those of their inputs, for
// elu + 1, relu, Efficient Attention's row softmax, FAVOR+ and RFA. Used by
// linear's backward pass (linear.ts); the float64 math is
// src/reference/grad/linear.ts. Kept out of the module's exports (it takes
// a Features class).
import { gemm } from '../core/gemm';
import { at, scaleRow } from '../core/memory';
import { EFFICIENT, ELU, FAVOR, Features, RELU } from '../core/features';

/**
 * The chain rule through phi for `rows` rows of x [rows][D] with features
 * phi and their gradients dphi ([rows][F], dphi overwritten) into dx
 * [rows][D]. Not efficient keys (their softmax runs over columns).
 */
export function throughFeatures(p: Features, w: usize, x: usize, phi: usize, dphi: usize, rows: i32, dx: usize): void {
  const D = p.D;
  const F = p.F;
  const M = p.M;
  const kind = p.kind;
  if (kind == ELU || kind == RELU) {
    // elu + 1: the slope is 1 above 0 and exp(x) = phi below; relu: 1 or 0
    const n = rows * D;
    const zero = f32x4.splat(0);
    const one = f32x4.splat(1);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const above = f32x4.gt(v128.load(at(x, i)), zero);
      const slope = v128.bitselect(one, kind == ELU ? v128.load(at(phi, i)) : zero, above);
      v128.store(at(dx, i), f32x4.mul(v128.load(at(dphi, i)), slope));
    }
    for (; i < n; i++) {
      const above = load<f32>(at(x, i)) > 0;
      const slope: f32 = above ? 1 : kind == ELU ? load<f32>(at(phi, i)) : 0;
      store<f32>(at(dx, i), load<f32>(at(dphi, i)) * slope);
    }
    return;
  }
  if (kind == EFFICIENT) {
    // the softmax of each row: dx = phi (dphi - phi . dphi)
    for (let r = 0; r < rows; r++) {
      const pr = at(phi, r * F), gr = at(dphi, r * F), xr = at(dx, r * D);
      let s: f32 = 0;
      for (let d = 0; d < D; d++) s += load<f32>(at(pr, d)) * load<f32>(at(gr, d));
      for (let d = 0; d < D; d++) store<f32>(at(xr, d), load<f32>(at(pr, d)) * (load<f32>(at(gr, d)) - s));
    }
    return;
  }
  if (kind == FAVOR) {
    // log phi_m = w_m . x' - |x'|^2 / 2 (+ const), x' = sqrt(scale) x: with
    // u = dphi * phi, dx = u (sqrt(scale) W) - scale x sum(u)
    for (let r = 0; r < rows; r++) {
      const pr = at(phi, r * F), gr = at(dphi, r * F);
      let s: f32 = 0;
      for (let m = 0; m < M; m++) {
        const u = load<f32>(at(pr, m)) * load<f32>(at(gr, m));
        store<f32>(at(gr, m), u);
        s += u;
      }
      store<f32>(at(phi, r * F), s); // phi's row is spent: keep the row's sum(u) in its first slot
    }
    gemm(rows, D, M, dphi, F, 1, w, D, dx, D, false);
    for (let r = 0; r < rows; r++) {
      const f = p.scale * load<f32>(at(phi, r * F));
      const xr = at(x, r * D), dr = at(dx, r * D);
      for (let d = 0; d < D; d++) store<f32>(at(dr, d), load<f32>(at(dr, d)) - f * load<f32>(at(xr, d)));
    }
    return;
  }
  // rfa: phi = [A sin(theta), A cos(theta)], theta = W x^: dtheta = dsin phi_cos - dcos phi_sin
  for (let r = 0; r < rows; r++) {
    const pr = at(phi, r * F), gr = at(dphi, r * F);
    for (let m = 0; m < M; m++) {
      store<f32>(at(gr, m), load<f32>(at(gr, m)) * load<f32>(at(pr, M + m)) - load<f32>(at(gr, M + m)) * load<f32>(at(pr, m)));
    }
  }
  gemm(rows, D, M, dphi, F, 1, w, D, dx, D, false);
  // x^ = x / max(|x|, 1e-12): dx = (dx^ - x^ (x^ . dx^)) / |x|, or dx^ / 1e-12 below it
  for (let r = 0; r < rows; r++) {
    const xr = at(x, r * D), dr = at(dx, r * D);
    let nn: f32 = 0, xd: f32 = 0;
    for (let d = 0; d < D; d++) {
      const xv = load<f32>(at(xr, d));
      nn += xv * xv;
      xd += xv * load<f32>(at(dr, d));
    }
    const norm = Mathf.sqrt(nn);
    if (norm > <f32>1e-12) {
      const inv: f32 = 1 / norm;
      const f = xd * inv * inv;
      for (let d = 0; d < D; d++) store<f32>(at(dr, d), (load<f32>(at(dr, d)) - f * load<f32>(at(xr, d))) * inv);
    } else {
      scaleRow(dr, dr, <f32>1e12, D);
    }
  }
}
