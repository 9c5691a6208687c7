/**
 * `sparse`: a key is visible when any of the patterns makes it visible.
 * Longformer is local + global (Beltagy et al. 2020), BigBird local + global
 * + random (Zaheer et al. 2020), the Sparse Transformer local + strided
 * (Child et al. 2019).
 */
import { parsePatternProblem, patternLogits, patternMask, patternReference, patternWeights, readPatterns, type Pattern, type PatternParsed } from '../patterns.js';
import { patternKernel, patternPlan } from '../pattern-kernel.js';
import { declareOptions } from '../options.js';
import { scoringOptions, type ScoringOptions } from '../model.js';
import { commonOptions, type CommonOptions } from '../validate.js';
import type { Variant } from './variant.js';

/** Options of `sparse`. */
export interface SparseOptions extends CommonOptions, ScoringOptions {
  /** The patterns whose union is visible (at least one). */
  patterns: readonly Pattern[];
}

export const sparse: Variant<PatternParsed> = {
  name: 'sparse',
  inputs: { q: 'required', k: 'required' },
  layoutInPlace: true,
  options: declareOptions<SparseOptions>()({
    ...commonOptions,
    ...scoringOptions,
    patterns: { type: '`Pattern[]`', doc: 'the patterns whose union is visible: `local`, `strided`, `global`, `random` (tables below)' },
  }),
  parse(inputs, options) {
    return parsePatternProblem(inputs, options, ({ Nq, Nk }) => readPatterns(options.patterns, 'options.patterns', Nq, Nk));
  },
  reference: patternReference,
  weights: patternWeights,
  logits: patternLogits,
  mask: patternMask,
  plan: patternPlan,
  kernel: patternKernel,
};
