/**
 * `strided`: Longformer's dilated sliding window (Beltagy et al. 2020). Query
 * position p sees key j when `p - j` is a multiple of `stride` and
 * `|p - j| <= window * stride`; `stride: 1` is a `local` window.
 */
import { parsePatternProblem, patternKernel, patternMask, patternPlan, patternReference, patternWeights, readStrided, type PatternParsed } from '../patterns.js';
import type { CommonOptions } from '../validate.js';
import type { Variant } from './variant.js';

/** Options of `strided`. */
export interface StridedOptions extends CommonOptions {
  /** Step between visible keys (integer >= 1; one past the sequence sees only the query's own position). */
  stride: number;
  /** Visible keys on each side, counted in strides (integer >= 0); default unbounded. */
  window?: number;
}

export const strided: Variant<PatternParsed> = {
  name: 'strided',
  inputs: { q: 'required', k: 'required' },
  parse(inputs, options) {
    return parsePatternProblem(inputs, options, () => [readStrided(options, 'options')]);
  },
  reference: patternReference,
  weights: patternWeights,
  mask: patternMask,
  plan: patternPlan,
  kernel: patternKernel,
};
