/**
 * `sparse`: a key is visible when any of the patterns makes it visible.
 * Longformer is local + global (Beltagy et al. 2020), BigBird local + global
 * + random (Zaheer et al. 2020), the Sparse Transformer local + strided
 * (Child et al. 2019).
 */
import { readPatterns, type Pattern } from '../patterns.js';
import { declareOptions } from '../options.js';
import { scoringOptions, type ScoringOptions } from '../model.js';
import { commonOptions, type CommonOptions } from '../validate.js';
import { patternVariant } from './pattern-variant.js';

/** Options of `sparse`. */
export interface SparseOptions extends CommonOptions, ScoringOptions {
  /** The patterns whose union is visible (at least one). */
  patterns: readonly Pattern[];
}

export const sparse = patternVariant(
  'sparse',
  declareOptions<SparseOptions>()({
    ...commonOptions,
    ...scoringOptions,
    patterns: { type: '`Pattern[]`', doc: 'the patterns whose union is visible: `local`, `strided`, `global`, `random` (tables below)' },
  }),
  (options, { Nq, Nk }) => readPatterns(options.patterns, 'options.patterns', Nq, Nk),
);
