/**
 * `global`: global tokens (Longformer, ETC). A query at a global position
 * sees every key, and every query sees the global keys; alone, ordinary
 * positions see only the global tokens. Added global tokens (ETC /
 * BigBird-ITC) are rows prepended to q, k, v and named in `tokens`.
 */
import { readGlobal } from '../patterns.js';
import { declareOptions } from '../options.js';
import { scoringOptions, type ScoringOptions } from '../model.js';
import { commonOptions, type CommonOptions } from '../validate.js';
import { patternVariant } from './pattern-variant.js';

/** Options of `global`. */
export interface GlobalOptions extends CommonOptions, ScoringOptions {
  /** The global positions: integers in `[0, Nk)`, duplicates ignored. */
  tokens: readonly number[];
}

export const global = patternVariant(
  'global',
  declareOptions<GlobalOptions>()({
    ...commonOptions,
    ...scoringOptions,
    tokens: { type: '`number[]`', doc: 'the global positions, in `[0, Nk)` (duplicates ignored)' },
  }),
  (options, { Nk }) => [readGlobal(options, 'options', Nk)],
);
