/**
 * `global`: global tokens (Longformer, ETC). A query at a global position
 * sees every key, and every query sees the global keys; alone, ordinary
 * positions see only the global tokens. Added global tokens (ETC /
 * BigBird-ITC) are rows prepended to q, k, v and named in `tokens`.
 */
import { parsePatternProblem, patternLogits, patternMask, patternReference, patternWeights, readGlobal, type PatternParsed } from '../patterns.js';
import { patternKernel, patternPlan } from '../pattern-kernel.js';
import { declareOptions } from '../options.js';
import { scoringOptions, type ScoringOptions } from '../model.js';
import { commonOptions, type CommonOptions } from '../validate.js';
import type { Variant } from './variant.js';

/** Options of `global`. */
export interface GlobalOptions extends CommonOptions, ScoringOptions {
  /** The global positions: integers in `[0, Nk)`, duplicates ignored. */
  tokens: readonly number[];
}

export const global: Variant<PatternParsed> = {
  name: 'global',
  inputs: { q: 'required', k: 'required' },
  layoutInPlace: true,
  options: declareOptions<GlobalOptions>()({
    ...commonOptions,
    ...scoringOptions,
    tokens: { type: '`number[]`', doc: 'the global positions, in `[0, Nk)` (duplicates ignored)' },
  }),
  parse(inputs, options) {
    return parsePatternProblem(inputs, options, ({ Nk }) => [readGlobal(options, 'options', Nk)]);
  },
  reference: patternReference,
  weights: patternWeights,
  logits: patternLogits,
  mask: patternMask,
  plan: patternPlan,
  kernel: patternKernel,
};
