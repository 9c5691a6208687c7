/**
 * The one list of variants: the facade, the tests, the benchmarks and the
 * demo all read it, so a variant registered here appears everywhere.
 */
import { compressed } from './variants/compressed.js';
import { full } from './variants/full.js';
import { global as globalTokens } from './variants/global.js';
import { linear } from './variants/linear.js';
import { linformer } from './variants/linformer.js';
import { local } from './variants/local.js';
import { lsh } from './variants/lsh.js';
import { mixed } from './variants/mixed.js';
import { routing } from './variants/routing.js';
import { sinkhorn } from './variants/sinkhorn.js';
import { sparse } from './variants/sparse.js';
import { strided } from './variants/strided.js';
import { synthesizer } from './variants/synthesizer.js';
import { rejectUndeclared } from './options.js';
import { asOptions } from './validate.js';
import type { Inputs, Lookup, Parsed, Variant } from './variants/variant.js';

export const variants = {
  full,
  local,
  strided,
  global: globalTokens,
  sparse,
  mixed,
  lsh,
  routing,
  sinkhorn,
  linformer,
  compressed,
  linear,
  synthesizer,
  // each variant has its own parsed-options type
} as const satisfies Record<string, Variant<any>>;

/** The name of a registered variant. */
export type VariantName = keyof typeof variants;

export const variantNames = Object.keys(variants) as VariantName[];

/** Finds a variant by name, or throws a TypeError naming the argument. */
export const lookup: Lookup = (name, argName) => {
  if (typeof name !== 'string' || !Object.hasOwn(variants, name)) {
    throw new TypeError(`${argName}: expected one of ${variantNames.map((n) => `'${n}'`).join(', ')}, received ${JSON.stringify(name)}`);
  }
  return variants[name as VariantName] as unknown as Variant<Parsed>;
};

/** A variant's `parse` of the caller's options, after refusing any option name the variant does not declare. */
export function parseOptions(variant: Variant<Parsed>, inputs: Inputs, options: unknown): Parsed {
  const checked = asOptions(options);
  rejectUndeclared(checked, variant.options, variant.name, 'options');
  return variant.parse(inputs, checked, lookup);
}
