/**
 * `compressed` — memory-compressed attention (Liu et al. 2018, "Generating
 * Wikipedia by Summarizing Long Sequences"): keys and values are pooled in
 * slots of `factor` positions (a mean, or a learned strided convolution),
 * optionally preceded by a learned null slot, and queries attend the slots.
 */
import { compressedAttention, compressedWeights, slotCount, type CompressedMath, type SlotConv } from '../reference/compressed.js';
import { describe, type Tensor } from '../tensor.js';
import { headParam, parseCommon, requiredNumber, type CommonOptions, type Options } from '../validate.js';
import { qkvProblem } from './full.js';
import type { Inputs, Parsed, Variant } from './variant.js';

/** A learned slot compression: a PyTorch Conv1d with kernel size and stride `factor`. */
export interface CompressedConv {
  /**
   * `[Dx, Dx, s]` (PyTorch `[out, in, kernel]`) shared by all heads, or
   * `[H|1, Dx, Dx, s]` per head — a Conv1d with `groups = H` over the model
   * dimension, its `[H * Dx, Dx, s]` weight reshaped. Dx is D for `convK`
   * and Dv for `convV`; s is `factor`.
   */
  weight: Tensor;
  /** `[Dx]` or `[H|1, Dx]`; default no bias. */
  bias?: Tensor;
}

/** Options of `attn.compressed(q, k, v, options)`. */
export interface CompressedOptions extends CommonOptions {
  /**
   * Slot length s (integer >= 1): keys and values are cut into
   * `ceil(Nk / s)` slots of s positions, the last possibly shorter.
   */
  factor: number;
  /**
   * Pools each key slot with this strided convolution (padded keys and the
   * right padding up to a multiple of s count as zeros). Without it a key
   * slot is the mean of its real (not padded) keys. Given alone, without
   * `convV`, the values are still mean-pooled.
   */
  convK?: CompressedConv;
  /** The same for the values (Dv features); without it values are mean-pooled, whatever `convK` is. */
  convV?: CompressedConv;
  /** `[H|1, D]` (or `[D]`): a learned key for a null slot placed first and always visible. Requires `nullValue`. */
  nullKey?: Tensor;
  /** `[H|1, Dv]` (or `[Dv]`): the null slot's value. Requires `nullKey`. */
  nullValue?: Tensor;
  /**
   * A query at position `p = i + (Nk - Nq)` sees slot m only when the slot
   * is complete, `min((m + 1) s, Nk) - 1 <= p`; the null slot is always visible.
   */
  causal?: boolean;
  /** `[B, Nk]`, 1 = real key. Padded positions leave every slot; a slot with no real key is hidden. */
  keyPadding?: Uint8Array;
}

/** Parsed `compressed` options. */
export interface CompressedParsed extends Parsed, CompressedMath {
  /** S, the number of slots: `ceil(Nk / s)`, plus 1 with the null slot (the last axis of `weights()`). */
  readonly slots: number;
}

function given(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/**
 * Dv: from v, or, for `weights()` (no v), from the value-side options
 * (`nullValue`, `convV.weight`), which then only need to agree among themselves.
 */
function valueFeatures(inputs: Inputs, options: Options, D: number): number {
  if (inputs.v) return inputs.v.D;
  const field = (value: unknown, key: string): unknown =>
    value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  const last = (dims: unknown, fromEnd: number): unknown => (Array.isArray(dims) ? dims[dims.length - fromEnd] : undefined);
  const fromNull = last(field(options.nullValue, 'dims'), 1);
  if (Number.isInteger(fromNull)) return fromNull as number;
  const fromConv = last(field(field(options.convV, 'weight'), 'dims'), 2);
  if (Number.isInteger(fromConv)) return fromConv as number;
  return D;
}

function parseConv(value: unknown, name: string, H: number, features: number, featureName: string, s: number): SlotConv | null {
  if (!given(value)) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${name}: expected { weight, bias? }, received ${describe(value)}`);
  }
  const { weight, bias } = value as { weight?: unknown; bias?: unknown };
  if (!given(weight)) throw new TypeError(`${name}.weight: required option is missing (a Conv1d weight [H|1, ${featureName}, ${featureName}, s])`);
  return {
    weight: headParam(weight, `${name}.weight`, H, [features, features, s], `${featureName}, ${featureName}, s`),
    bias: given(bias) ? headParam(bias, `${name}.bias`, H, [features], featureName) : null,
  };
}

export const compressed: Variant<CompressedParsed> = {
  name: 'compressed',
  inputs: { q: 'required', k: 'required' },
  parse(inputs, options) {
    const { B, H, Nq, Nk, D } = qkvProblem(inputs);
    const Dv = valueFeatures(inputs, options, D);
    const problem = { B, H, Nq, Nk, D, Dv };
    const common = parseCommon(options, D, B, Nk);
    const factor = requiredNumber(options, 'factor', { integer: true, min: 1 });
    const convK = parseConv(options.convK, 'options.convK', H, D, 'D', factor);
    const convV = parseConv(options.convV, 'options.convV', H, Dv, 'Dv', factor);
    // the null slot needs both halves: a key to score it and a value to return
    if (given(options.nullKey) !== given(options.nullValue)) {
      const [missing, present] = given(options.nullKey) ? ['nullValue', 'nullKey'] : ['nullKey', 'nullValue'];
      throw new TypeError(`options.${missing}: required when options.${present} is given (the null slot needs a key and a value), received ${describe(options[missing])}`);
    }
    const nullKey = given(options.nullKey) ? headParam(options.nullKey, 'options.nullKey', H, [D], 'D') : null;
    const nullValue = given(options.nullValue) ? headParam(options.nullValue, 'options.nullValue', H, [Dv], 'Dv') : null;
    const slots = slotCount(Nk, factor) + (nullKey ? 1 : 0);
    return { problem, ...common, factor, convK, convV, nullKey, nullValue, slots };
  },
  reference({ q, k, v }, p) {
    return compressedAttention(q!, k!, v!, p);
  },
  weights({ q, k }, p) {
    const { B, H, Nq } = p.problem;
    return { data: compressedWeights(q!, k!, p), dims: [B, H, Nq, p.slots] };
  },
};
