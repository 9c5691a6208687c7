/**
 * `options.layout` (SPEC "Layout"): rank-4 inputs may be `[B, N, H, D]`
 * (`'bnhd'`) instead of `[B, H, N, D]` (`'bhnd'`, the default), and the
 * output then comes back in the same layout. The facade reads the layout
 * before the inputs; the variants see `'bhnd'` heads, made by
 * {@link inBhnd} and given back by {@link outputInLayout}: the one place
 * where the layout is transposed (a kernel that reads `'bnhd'` in place
 * skips both).
 */
import { describe, type Heads, type Layout } from './tensor.js';
import type { Options } from './validate.js';
import type { Inputs } from './variants/variant.js';

const LAYOUTS: readonly Layout[] = ['bhnd', 'bnhd'];

/** `options.layout`: `'bhnd'` when absent. */
export function readLayout(options: Options): Layout {
  const value = options.layout;
  if (value === undefined) return 'bhnd';
  if (typeof value !== 'string') throw new TypeError(`options.layout: expected 'bhnd' or 'bnhd', received ${describe(value)}`);
  if (!(LAYOUTS as readonly string[]).includes(value)) throw new RangeError(`options.layout: expected 'bhnd' or 'bnhd', received ${describe(value)}`);
  return value as Layout;
}

/** `[B, X, Y, D]` to `[B, Y, X, D]`: swaps the two middle axes (a copy). */
export function swapMiddleAxes(data: Float32Array, B: number, X: number, Y: number, D: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let b = 0; b < B; b++) {
    for (let x = 0; x < X; x++) {
      for (let y = 0; y < Y; y++) {
        const from = ((b * X + x) * Y + y) * D;
        out.set(data.subarray(from, from + D), ((b * Y + y) * X + x) * D);
      }
    }
  }
  return out;
}

/** One input in `'bhnd'`: itself, or a transposed copy of a `'bnhd'` input. */
function headsInBhnd(x: Heads): Heads {
  if (x.layout === 'bhnd') return x;
  return { ...x, data: swapMiddleAxes(x.data, x.B, x.N, x.H, x.D), layout: 'bhnd' };
}

/** The inputs in `'bhnd'` (a k that is q itself, as lsh takes it, stays q itself). */
export function inBhnd(inputs: Inputs): Inputs {
  const q = inputs.q && headsInBhnd(inputs.q);
  const k = inputs.k === inputs.q ? q : inputs.k && headsInBhnd(inputs.k);
  return { q, k, v: inputs.v && headsInBhnd(inputs.v) };
}

/** An output `[B, H, N, Dv]` in the caller's layout: as it is, or transposed to `[B, N, H, Dv]`. */
export function outputInLayout(data: Float32Array, B: number, H: number, N: number, Dv: number, layout: Layout): Float32Array {
  return layout === 'bhnd' ? data : swapMiddleAxes(data, B, H, N, Dv);
}
