/**
 * `local`: sliding-window attention. Query position p sees keys
 * `p - before ..= p + after` (SPEC "Exact and pattern-based"); the softmax
 * runs over those keys only.
 */
import { readLocal } from '../patterns.js';
import { declareOptions } from '../options.js';
import { scoringOptions, type ScoringOptions } from '../model.js';
import { commonOptions, type CommonOptions } from '../validate.js';
import { patternVariant } from './pattern-variant.js';

/**
 * Options of `local`. Give `window`, or `before` and/or `after` (when only
 * one of them is given the other is 0). Other libraries' conventions:
 * Mistral's `sliding_window = W` is `{ before: W - 1, after: 0, causal: true }`;
 * ONNX `Attention` `left_window_size = L`, `right_window_size = R` is
 * `{ before: L, after: R }` around the operator's causal offset
 * (`attn.onnxAttention` maps it); onnxruntime GroupQueryAttention
 * `local_window_size = W` is `{ before: W, after: 0, causal: true }`; an odd
 * xformers `window_size = W` is `{ window: (W - 1) / 2 }`; Longformer's
 * one-sided `w` is `{ window: w }`.
 */
export interface LocalOptions extends CommonOptions, ScoringOptions {
  /** Keys on each side of the query position (integer >= 0); `before = after = window`. */
  window?: number;
  /** Keys before the query position (integer >= 0; default 0 when only `after` is given). */
  before?: number;
  /** Keys after the query position (integer >= 0; default 0 when only `before` is given). */
  after?: number;
}

export const local = patternVariant(
  'local',
  declareOptions<LocalOptions>()({
    ...commonOptions,
    ...scoringOptions,
    window: { type: '`number`', doc: 'keys on each side of the query position, `before = after = window`' },
    before: { type: '`number`', doc: 'keys before the query position (0 when only `after` is given)' },
    after: { type: '`number`', doc: 'keys after the query position (0 when only `before` is given)' },
  }),
  (options) => [readLocal(options, 'options')],
);
