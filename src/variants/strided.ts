/**
 * `strided`: Longformer's dilated sliding window (Beltagy et al. 2020). Query
 * position p sees key j when `p - j` is a multiple of `stride` and
 * `|p - j| <= window * stride`; `stride: 1` is a `local` window.
 */
import { readStrided } from '../patterns.js';
import { declareOptions } from '../options.js';
import { scoringOptions, type ScoringOptions } from '../model.js';
import { commonOptions, type CommonOptions } from '../validate.js';
import { patternVariant } from './pattern-variant.js';

/** Options of `strided`. */
export interface StridedOptions extends CommonOptions, ScoringOptions {
  /** Step between visible keys (integer >= 1; one past the sequence sees only the query's own position). */
  stride: number;
  /** Visible keys on each side, counted in strides (integer >= 0); default unbounded. */
  window?: number;
}

export const strided = patternVariant(
  'strided',
  declareOptions<StridedOptions>()({
    ...commonOptions,
    ...scoringOptions,
    stride: { type: '`number`', doc: 'step between visible keys (1 is a `local` window)' },
    window: { type: '`number`', doc: 'visible keys on each side, counted in strides; default unbounded' },
  }),
  (options) => [readStrided(options, 'options')],
);
