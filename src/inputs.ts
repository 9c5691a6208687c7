/** Reading a call's q, k, v into validated heads, following what the variant takes. */
import { asHeads, describe, type Layout } from './tensor.js';
import type { Inputs, Variant } from './variants/variant.js';

export function readInputs(variant: Pick<Variant, 'name' | 'inputs'>, q: unknown, k: unknown, v: unknown, withValues: boolean, layout: Layout = 'bhnd'): Inputs {
  const qh = variant.inputs.q === 'required' ? asHeads(q, 'q', layout) : null;
  let kh = null;
  if (variant.inputs.k === 'required') kh = asHeads(k, 'k', layout);
  else if (variant.inputs.k === 'shared') {
    if (k !== null && k !== undefined && k !== q) {
      throw new TypeError(`k: ${variant.name} shares queries and keys, so k must be null (or q itself), received ${describe(k)}`);
    }
    kh = qh;
  }
  const vh = withValues ? asHeads(v, 'v', layout) : null;
  return { q: qh, k: kh, v: vh };
}
