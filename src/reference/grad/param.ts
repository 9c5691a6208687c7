/** The gradient of a per-head parameter (`Param`): one slice when every head shares it (head stride 0), else one per head. */
import type { Param } from '../../validate.js';

/** A zeroed float64 gradient for `param`, whose one head's slice holds `size` values, in a problem of H heads. */
export function paramGradient(param: Param, H: number, size: number): Float64Array {
  return new Float64Array(param.headStride === 0 ? size : H * size);
}
