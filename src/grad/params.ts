/**
 * Shapes of gradient tensors: float64 sums given back as float32, and the
 * gradient of a per-head parameter (`[H|1, ...inner]`, shared by all heads
 * when its head stride is 0) in the parameter's own shape. The facade then
 * gives every gradient the dims the caller gave the option (`[P, Nk]` as
 * `[P, Nk]`, `[1, P, Nk]` as `[1, P, Nk]`).
 */
import type { BiasView } from '../model.js';
import type { Tensor } from '../tensor.js';

/** A float64 sum rounded to float32 once, at the end. */
export function toFloat32(x: Float64Array): Float32Array {
  return Float32Array.from(x);
}

/** The gradient of a per-head parameter as a tensor `[1 | H, ...inner]`. */
export function paramTensor(gradient: Float64Array, inner: readonly number[]): Tensor {
  const size = inner.reduce((a, b) => a * b, 1);
  return { data: toFloat32(gradient), dims: [size === 0 ? 0 : gradient.length / size, ...inner] };
}

/** The gradient of a mask-shaped bias in its broadcast dims `[B|1, H|1, Nq|1, Nk|1]`. */
export function biasTensor(gradient: Float64Array, view: BiasView): Tensor {
  return { data: toFloat32(gradient), dims: [...view.dims] };
}
