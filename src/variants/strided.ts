/**
 * `strided`: Longformer's dilated sliding window (Beltagy et al. 2020). Query
 * position p sees key j when `p - j` is a multiple of `stride` and
 * `|p - j| <= window * stride`; `stride: 1` is a `local` window.
 */
import { parsePatternProblem, patternLogits, patternMask, patternReference, patternWeights, readStrided, type PatternParsed } from '../patterns.js';
import { patternKernel, patternPlan } from '../pattern-kernel.js';
import { declareOptions } from '../options.js';
import { scoringOptions, type ScoringOptions } from '../model.js';
import { commonOptions, type CommonOptions } from '../validate.js';
import type { Variant } from './variant.js';

/** Options of `strided`. */
export interface StridedOptions extends CommonOptions, ScoringOptions {
  /** Step between visible keys (integer >= 1; one past the sequence sees only the query's own position). */
  stride: number;
  /** Visible keys on each side, counted in strides (integer >= 0); default unbounded. */
  window?: number;
}

export const strided: Variant<PatternParsed> = {
  name: 'strided',
  inputs: { q: 'required', k: 'required' },
  layoutInPlace: true,
  options: declareOptions<StridedOptions>()({
    ...commonOptions,
    ...scoringOptions,
    stride: { type: '`number`', doc: 'step between visible keys (1 is a `local` window)' },
    window: { type: '`number`', doc: 'visible keys on each side, counted in strides; default unbounded' },
  }),
  parse(inputs, options) {
    return parsePatternProblem(inputs, options, () => [readStrided(options, 'options')]);
  },
  reference: patternReference,
  weights: patternWeights,
  logits: patternLogits,
  mask: patternMask,
  plan: patternPlan,
  kernel: patternKernel,
};
