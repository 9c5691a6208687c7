/**
 * The pattern-based variants by name, and a call of one parsed as the
 * facade would (inputs read, options validated), for the tests of the
 * float64 reference and of the pattern descriptions.
 */
import { readInputs } from '../src/inputs.js';
import { full } from '../src/variants/full.js';
import { global } from '../src/variants/global.js';
import { local } from '../src/variants/local.js';
import { mixed } from '../src/variants/mixed.js';
import { sparse } from '../src/variants/sparse.js';
import { strided } from '../src/variants/strided.js';
import type { Lookup, Parsed, Variant } from '../src/variants/variant.js';
import type { T } from './random.js';

export const variants: Record<string, Variant<Parsed>> = { full, local, strided, global, sparse, mixed };

export const lookup: Lookup = (name, argName) => {
  const variant = variants[name];
  if (!variant) throw new TypeError(`${argName}: expected one of ${Object.keys(variants).join(', ')}, received "${name}"`);
  return variant;
};

export function prepare<P extends Parsed>(variant: Variant<P>, q: T, k: T, v: T | null, options: Record<string, unknown>) {
  const inputs = readInputs(variant, q, k, v, v !== null);
  return { inputs, parsed: variant.parse(inputs, options, lookup) };
}
