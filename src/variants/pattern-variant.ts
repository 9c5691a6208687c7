/**
 * What `local`, `strided`, `global` and `sparse` share: the pattern family's
 * reference, weights, logits, mask and kernel (patterns.ts,
 * pattern-kernel.ts). A pattern variant is its name, its options and the
 * patterns they describe.
 */
import { parsePatternProblem, patternLogits, patternMask, patternReference, patternWeights, type PatternParsed, type PatternRule } from '../patterns.js';
import { patternKernel, patternPlan } from '../pattern-kernel.js';
import type { OptionTable } from '../options.js';
import type { Options } from '../validate.js';
import type { Problem, Variant } from './variant.js';

/** A pattern variant whose visible keys are the union of the rules `readRules` makes of its options. */
export function patternVariant(name: string, options: OptionTable, readRules: (options: Options, problem: Problem) => PatternRule[]): Variant<PatternParsed> {
  return {
    name,
    inputs: { q: 'required', k: 'required' },
    layoutInPlace: true,
    options,
    parse: (inputs, given) => parsePatternProblem(inputs, given, (problem) => readRules(given, problem)),
    reference: patternReference,
    weights: patternWeights,
    logits: patternLogits,
    mask: patternMask,
    plan: patternPlan,
    kernel: patternKernel,
  };
}
