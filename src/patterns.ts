/**
 * Sparsity patterns (SPEC "Exact and pattern-based"): the options of
 * `local`, `strided`, `global` and `sparse` are read into normalised
 * {@link PatternRule}s, which say which keys a query position sees. The same
 * descriptions serve the float64 reference (a visibility predicate), `mask()`
 * (the dense `[Nq, Nk]` picture), {@link rowSpans} (the visible keys of one
 * query row as a few spans, never an `Nq x Nk` buffer) and the plans of the
 * SIMD kernel (src/pattern-kernel.ts).
 *
 * Query row i sits at position `p = i + (Nk - Nq)` (bottom-right aligned, as
 * for `causal`), so a decoding step with one query and a cache of Nk keys
 * sees the same keys as the last row of the square problem.
 */
import { declareOptions, rejectUndeclared, type OptionTable } from './options.js';
import { Rng, seedOf } from './prng.js';
import { parseLogitOptions, type LogitOptions, type MaskView } from './model.js';
import { commonVisible, softmaxAttention, softmaxLogits, softmaxWeights, type Visible } from './reference/softmax.js';
import { describe, type Heads } from './tensor.js';
import { parseCommon, positions, requiredNumber, optionalNumber, type Common, type Options } from './validate.js';
import { qkvProblem } from './variants/full.js';
import type { Dense, Inputs, Parsed, Problem } from './variants/variant.js';

/**
 * A sliding window: query position p sees keys `p - before ..= p + after`.
 * Give either `window` (`before = after = window`) or `before` and/or
 * `after`; when only one of `before` / `after` is given the other is 0.
 */
export interface LocalPattern {
  readonly type: 'local';
  /** Keys on each side of the query position (integer >= 0); excludes `before` / `after`. */
  readonly window?: number;
  /** Keys before the query position (integer >= 0; default 0 when `after` is given). */
  readonly before?: number;
  /** Keys after the query position (integer >= 0; default 0 when `before` is given). */
  readonly after?: number;
}

/**
 * Longformer's dilated window: position p sees key j when `p - j` is a
 * multiple of `stride` and `|p - j| <= window * stride`.
 */
export interface StridedPattern {
  readonly type: 'strided';
  /** Step between visible keys (integer >= 1; 1 is a `local` window; past the sequence, only `j = p`). */
  readonly stride: number;
  /** Visible keys on each side, counted in strides (integer >= 0); default unbounded. */
  readonly window?: number;
}

/** Global tokens: a global position sees every key and every position sees the global keys. */
export interface GlobalPattern {
  readonly type: 'global';
  /** The global positions (integers in `[0, Nk)`; duplicates are ignored). */
  readonly tokens: readonly number[];
}

/**
 * BigBird's random keys: every query row additionally sees `count` distinct
 * keys drawn with the library's seeded PRNG (see {@link positionPicks} for
 * the exact draw; `mask()` shows the picks).
 */
export interface RandomPattern {
  readonly type: 'random';
  /** Random keys per query row (integer >= 0; at most Nk are drawn). */
  readonly count: number;
  /** Integer seed of the draw (taken modulo 2^32). */
  readonly seed: number;
}

/** One pattern of the `sparse` variant's `patterns` option. */
export type Pattern = LocalPattern | StridedPattern | GlobalPattern | RandomPattern;

/** Normalised `local`: keys `p - before ..= p + after`. */
export interface LocalRule {
  readonly type: 'local';
  readonly before: number;
  readonly after: number;
}

/** Normalised `strided`: `window` is null when unbounded. */
export interface StridedRule {
  readonly type: 'strided';
  readonly stride: number;
  readonly window: number | null;
}

/** Normalised `global`: sorted distinct tokens and their `[Nk]` membership flags. */
export interface GlobalRule {
  readonly type: 'global';
  readonly tokens: readonly number[];
  /** `isToken[j] = 1` when position j is a global token. */
  readonly isToken: Uint8Array;
}

/** Normalised `random`, drawn for one problem size (see {@link randomPicks}). */
export interface RandomRule {
  readonly type: 'random';
  /** Picks per row: the requested count clamped to Nk. */
  readonly count: number;
  readonly seed: number;
  /** `[Nq, count]`: row i's picks, ascending. */
  readonly picks: Int32Array;
}

/** A normalised pattern: what one `Pattern` (or a pattern variant's options) makes visible. */
export type PatternRule = LocalRule | StridedRule | GlobalRule | RandomRule;

/** The union of some rules, bound to one problem size. */
export interface PatternSet {
  readonly Nq: number;
  readonly Nk: number;
  readonly rules: readonly PatternRule[];
}

// ---------------------------------------------------------------- parsing

const patternType = { type: '`string`', doc: 'the pattern: `local`, `strided`, `global` or `random`' } as const;

/** The declared options of each pattern type (the `Pattern` objects of `sparse`). */
export const patternOptions: Readonly<Record<Pattern['type'], OptionTable>> = {
  local: declareOptions<LocalPattern>()({
    type: patternType,
    window: { type: '`number`', doc: 'keys on each side of the query position' },
    before: { type: '`number`', doc: 'keys before the query position' },
    after: { type: '`number`', doc: 'keys after the query position' },
  }),
  strided: declareOptions<StridedPattern>()({
    type: patternType,
    stride: { type: '`number`', doc: 'step between visible keys' },
    window: { type: '`number`', doc: 'visible keys on each side, counted in strides; default unbounded' },
  }),
  global: declareOptions<GlobalPattern>()({
    type: patternType,
    tokens: { type: '`number[]`', doc: 'the global positions' },
  }),
  random: declareOptions<RandomPattern>()({
    type: patternType,
    count: { type: '`number`', doc: 'random keys per query row (at most Nk are drawn)' },
    seed: { type: '`number`', doc: 'seed of the draw' },
  }),
};

const nonNegativeInteger = { integer: true, min: 0 };

/** Reads `window` or `before` / `after` (prefix: where the options sit, e.g. `options`). */
export function readLocal(options: Options, prefix: string): LocalRule {
  const hasWindow = options.window !== undefined;
  const hasSides = options.before !== undefined || options.after !== undefined;
  if (hasWindow && hasSides) {
    throw new TypeError(`${prefix}.window: expected either window or before/after, received window = ${describe(options.window)} together with before = ${describe(options.before)}, after = ${describe(options.after)}`);
  }
  if (!hasWindow && !hasSides) {
    throw new TypeError(`${prefix}.window: required option is missing (or give before and after)`);
  }
  if (hasWindow) {
    const window = requiredNumber(options, 'window', nonNegativeInteger, prefix);
    return { type: 'local', before: window, after: window };
  }
  return {
    type: 'local',
    before: optionalNumber(options, 'before', 0, nonNegativeInteger, prefix),
    after: optionalNumber(options, 'after', 0, nonNegativeInteger, prefix),
  };
}

/** Reads `stride` and `window?`. */
export function readStrided(options: Options, prefix: string): StridedRule {
  const stride = requiredNumber(options, 'stride', { integer: true, min: 1 }, prefix);
  const window = options.window === undefined ? null : requiredNumber(options, 'window', nonNegativeInteger, prefix);
  return { type: 'strided', stride, window };
}

/** Reads `tokens`: positions in `[0, Nk)`. */
export function readGlobal(options: Options, prefix: string, Nk: number): GlobalRule {
  const name = `${prefix}.tokens`;
  if (options.tokens === undefined) throw new TypeError(`${name}: required option is missing`);
  const tokens = positions(options.tokens, name);
  const isToken = new Uint8Array(Nk);
  for (const t of tokens) {
    if (t >= Nk) throw new RangeError(`${name}[]: expected positions < Nk = ${Nk}, received ${t}`);
    isToken[t] = 1;
  }
  return { type: 'global', tokens, isToken };
}

/** Reads `count` and `seed`, and draws the picks for an `Nq x Nk` problem. */
export function readRandom(options: Options, prefix: string, Nq: number, Nk: number): RandomRule {
  const requested = requiredNumber(options, 'count', nonNegativeInteger, prefix);
  if (options.seed === undefined) throw new TypeError(`${prefix}.seed: required option is missing`);
  const seed = seedOf(options.seed, `${prefix}.seed`);
  return { type: 'random', count: Math.min(requested, Nk), seed, picks: randomPicks(seed, requested, Nq, Nk) };
}

/** Reads one `{ type, ... }` pattern object; keys that its type does not take are refused. */
export function readPattern(value: unknown, prefix: string, Nq: number, Nk: number): PatternRule {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${prefix}: expected a pattern object { type, ... }, received ${describe(value)}`);
  }
  const options = value as Options;
  const type = options.type;
  if (typeof type !== 'string') throw new TypeError(`${prefix}.type: expected a string, received ${describe(type)}`);
  if (!Object.hasOwn(patternOptions, type)) {
    throw new TypeError(`${prefix}.type: expected 'local', 'strided', 'global' or 'random', received ${describe(type)}`);
  }
  rejectUndeclared(options, patternOptions[type as Pattern['type']], `a '${type}' pattern`, prefix);
  switch (type as Pattern['type']) {
    case 'local':
      return readLocal(options, prefix);
    case 'strided':
      return readStrided(options, prefix);
    case 'global':
      return readGlobal(options, prefix, Nk);
    case 'random':
      return readRandom(options, prefix, Nq, Nk);
  }
}

/** Reads a non-empty `Pattern[]` (the `sparse` variant's `patterns`). */
export function readPatterns(value: unknown, name: string, Nq: number, Nk: number): PatternRule[] {
  if (value === undefined) throw new TypeError(`${name}: required option is missing`);
  if (!Array.isArray(value)) throw new TypeError(`${name}: expected an array of patterns, received ${describe(value)}`);
  if (value.length === 0) throw new RangeError(`${name}: expected at least one pattern, received []`);
  return value.map((pattern, index) => readPattern(pattern, `${name}[${index}]`, Nq, Nk));
}

// ---------------------------------------------------------- random picks

/** The murmur3 32-bit finaliser: a bijection that spreads every input bit. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The random keys of query position p: `min(count, Nk)` distinct keys of
 * `[0, Nk)`, ascending. The draw, exactly (so that any port can redo it):
 *
 * 1. `rng = new Rng(mix32((seed ^ Math.imul(p, 0x9e3779b1)) >>> 0))`, with
 *    `mix32` the murmur3 finaliser (`x ^= x >>> 16; x *= 0x85ebca6b;
 *    x ^= x >>> 13; x *= 0xc2b2ae35; x ^= x >>> 16`, 32-bit) — one stream per
 *    position, so a decoding step draws what the last row of the square
 *    problem draws;
 * 2. Floyd's algorithm: for `t = Nk - c .. Nk - 1`, `r = rng.int(t + 1)`;
 *    take r, or t when r was already taken;
 * 3. sort the c picks ascending.
 */
export function positionPicks(seed: number, count: number, p: number, Nk: number): Int32Array {
  const c = Math.min(count, Nk);
  const rng = new Rng(mix32((seed ^ Math.imul(p, 0x9e3779b1)) >>> 0));
  const taken = new Set<number>();
  for (let t = Nk - c; t < Nk; t++) {
    const r = rng.int(t + 1);
    taken.add(taken.has(r) ? t : r);
  }
  return Int32Array.from(taken).sort();
}

/** `[Nq, min(count, Nk)]`: row i holds {@link positionPicks} of position `i + Nk - Nq`. */
export function randomPicks(seed: number, count: number, Nq: number, Nk: number): Int32Array {
  const c = Math.min(count, Nk);
  const picks = new Int32Array(Nq * c);
  if (c === 0) return picks; // nothing to draw: the rows, however many, are empty
  for (let i = 0; i < Nq; i++) picks.set(positionPicks(seed, count, i + Nk - Nq, Nk), i * c);
  return picks;
}

/** Is j among row i's picks? (Binary search in the sorted row.) */
function picked(rule: RandomRule, i: number, j: number): boolean {
  let lo = i * rule.count;
  let hi = lo + rule.count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (rule.picks[mid] < j) lo = mid + 1;
    else hi = mid;
  }
  return lo < (i + 1) * rule.count && rule.picks[lo] === j;
}

// ------------------------------------------------------------ visibility

function isGlobalPosition(rule: GlobalRule, position: number): boolean {
  return position >= 0 && position < rule.isToken.length && rule.isToken[position] === 1;
}

/** Does one rule let query row i (at position p) see key j? The SPEC table, row by row. */
function ruleSees(rule: PatternRule, i: number, p: number, j: number): boolean {
  switch (rule.type) {
    case 'local':
      return p - rule.before <= j && j <= p + rule.after;
    case 'strided': {
      const distance = p - j;
      return distance % rule.stride === 0 && (rule.window === null || Math.abs(distance) <= rule.window * rule.stride);
    }
    case 'global':
      return isGlobalPosition(rule, p) || isGlobalPosition(rule, j);
    case 'random':
      return picked(rule, i, j);
  }
}

/** Does the union of the patterns let query row i see key j (before causal and keyPadding)? */
export function patternSees(set: PatternSet, i: number, j: number): boolean {
  const p = i + set.Nk - set.Nq;
  return set.rules.some((rule) => ruleSees(rule, i, p, j));
}

/** The full visibility rule: the patterns' union intersected with `causal`, `keyPadding` and `mask`. */
export function patternVisibility(set: PatternSet, common: Common & { readonly mask?: MaskView | null }): Visible {
  const allowed = commonVisible(common, set.Nq, set.Nk);
  return (b, h, i, j) => allowed(b, h, i, j) && patternSees(set, i, j);
}

/** The `[Nq, Nk]` visibility pattern (1 = visible) of batch `b`, head 0 (keyPadding and mask may vary by batch). */
export function buildMask(set: PatternSet, common: Common & { readonly mask?: MaskView | null }, b = 0): Uint8Array {
  const { Nq, Nk } = set;
  const visible = patternVisibility(set, common);
  const mask = new Uint8Array(Nq * Nk);
  for (let i = 0; i < Nq; i++) {
    for (let j = 0; j < Nk; j++) mask[i * Nk + j] = visible(b, 0, i, j) ? 1 : 0;
  }
  return mask;
}

// ------------------------------------------------------------- row spans

/** The keys `start, start + step, ..., start + (count - 1) * step`. */
export interface KeySpan {
  readonly start: number;
  readonly step: number;
  readonly count: number;
}

/** First j >= from with `j ≡ p (mod stride)`. */
function alignUp(from: number, p: number, stride: number): number {
  return from + ((((p - from) % stride) + stride) % stride);
}

/**
 * The keys that query row i sees, as disjoint spans sorted by start (every
 * visible key in exactly one span), without building `Nq x Nk`: the local
 * windows (and the whole row for a global query position) as one contiguous
 * range; the strided pattern of smallest stride as progressions in the gaps
 * on either side of it; the remaining keys (global tokens, random picks,
 * other strided patterns) as runs of consecutive keys. `causal` clips keys
 * after the query position; `keyPadding` is per batch and left to the caller.
 */
export function rowSpans(set: PatternSet, i: number, causal: boolean): KeySpan[] {
  const { Nq, Nk, rules } = set;
  const p = i + Nk - Nq;
  const end = causal ? Math.min(Nk, p + 1) : Nk; // keys are [0, end)
  if (end <= 0) return [];

  // 1. The local windows and, at a global position, the whole row. Each holds
  // p (or starts at key 0 when p < 0), so their union is one range [lo, hi).
  let lo = end;
  let hi = 0;
  for (const rule of rules) {
    if (rule.type === 'local') {
      lo = Math.min(lo, Math.max(0, p - rule.before));
      hi = Math.max(hi, Math.min(end, p + rule.after + 1));
    }
    if (rule.type === 'global' && isGlobalPosition(rule, p)) [lo, hi] = [0, end];
  }
  const inRange = (j: number): boolean => lo <= j && j < hi;
  const spans: KeySpan[] = lo < hi ? [{ start: lo, step: 1, count: hi - lo }] : [];
  const gaps: [number, number][] = lo < hi ? [[0, lo], [hi, end]] : [[0, end]];

  // The keys [from, to) of a strided rule (from aligned to p).
  const stridedBounds = (rule: StridedRule): [number, number] => {
    const reach = rule.window === null ? Infinity : rule.window * rule.stride;
    return [alignUp(Math.max(0, p - reach), p, rule.stride), Math.min(end, p + reach + 1)];
  };

  // 2. The densest strided rule: one progression in each gap around the range.
  const strided = rules.filter((rule): rule is StridedRule => rule.type === 'strided').sort((a, b) => a.stride - b.stride);
  const main = strided[0];
  let inMain = (_j: number): boolean => false;
  if (main) {
    const [from, to] = stridedBounds(main);
    inMain = (j) => j >= from && j < to && (j - p) % main.stride === 0;
    for (const [gapStart, gapEnd] of gaps) {
      const first = alignUp(Math.max(gapStart, from), p, main.stride);
      const stop = Math.min(gapEnd, to);
      if (first < stop) spans.push({ start: first, step: main.stride, count: Math.ceil((stop - first) / main.stride) });
    }
  }

  // 3. Every other visible key, once, as runs of consecutive keys.
  const extra = new Set<number>();
  const consider = (j: number): void => {
    if (j >= 0 && j < end && !inRange(j) && !inMain(j)) extra.add(j);
  };
  for (const rule of strided.slice(1)) {
    const [from, to] = stridedBounds(rule);
    for (let j = from; j < to; j += rule.stride) consider(j);
  }
  for (const rule of rules) {
    if (rule.type === 'global') rule.tokens.forEach(consider);
    if (rule.type === 'random') rule.picks.subarray(i * rule.count, (i + 1) * rule.count).forEach(consider);
  }
  const sorted = [...extra].sort((a, b) => a - b);
  for (let at = 0; at < sorted.length; ) {
    let run = 1;
    while (at + run < sorted.length && sorted[at + run] === sorted[at] + run) run++;
    spans.push({ start: sorted[at], step: 1, count: run });
    at += run;
  }
  return spans.sort((a, b) => a.start - b.start);
}

// ------------------------------------------------------ variant plumbing

/**
 * Parsed options of a pattern variant (`local`, `strided`, `global`,
 * `sparse`): the common ones, `mask`, `bias`, `softcap` ({@link LogitOptions})
 * and the pattern.
 */
export interface PatternParsed extends Parsed, Common, LogitOptions {
  readonly patterns: PatternSet;
}

/**
 * A rule whose reach is cut to what an `Nq x Nk` problem can use, seeing the
 * same keys: query position p and key j are less than `span` apart, so a
 * window side of `span` is unbounded and a stride of `span` or more sees
 * only `j = p`. The kernels then never meet a size beyond the problem's
 * (their positions are 32-bit integers).
 */
function boundRule(rule: PatternRule, span: number): PatternRule {
  switch (rule.type) {
    case 'local':
      return { ...rule, before: Math.min(rule.before, span), after: Math.min(rule.after, span) };
    case 'strided': {
      const unbounded = rule.window === null || rule.window * rule.stride >= span;
      return { ...rule, stride: Math.min(rule.stride, span), window: unbounded ? null : rule.window };
    }
    default:
      return rule;
  }
}

/** `parse` of a pattern variant: shapes, common options, mask / bias / softcap, then the variant's own rules. */
export function parsePatternProblem(inputs: Inputs, options: Options, readRules: (problem: Problem) => PatternRule[]): PatternParsed {
  const problem = qkvProblem(inputs);
  const common = parseCommon(options, problem.D, problem.B, problem.Nk);
  // |p - j| < max(Nq, Nk) for every query position p in [Nk - Nq, Nk) and key j in [0, Nk)
  const span = Math.max(1, problem.Nq, problem.Nk);
  const rules = readRules(problem).map((rule) => boundRule(rule, span));
  return { problem, ...common, ...parseLogitOptions(options, problem), patterns: { Nq: problem.Nq, Nk: problem.Nk, rules } };
}

/** Softmax attention over the visible keys: the SPEC formula `out_i = sum_j softmax_j(softcap(scale q_i . k_j) + bias_ij) v_j`. */
export function patternReference(inputs: Inputs, parsed: PatternParsed): Float32Array {
  return softmaxAttention(inputs.q as Heads, inputs.k as Heads, inputs.v as Heads, parsed, patternVisibility(parsed.patterns, parsed));
}

/** `P: [B, H, Nq, Nk]`, the softmax over the visible keys (zero elsewhere). */
export function patternWeights(inputs: Inputs, parsed: PatternParsed): Dense {
  const { B, H, Nq, Nk } = parsed.problem;
  const data = softmaxWeights(inputs.q as Heads, inputs.k as Heads, parsed, patternVisibility(parsed.patterns, parsed));
  return { data, dims: [B, H, Nq, Nk] };
}

/** The logits `[B, H, Nq, Nk]` of the visible keys, -Infinity elsewhere. */
export function patternLogits(inputs: Inputs, parsed: PatternParsed): Dense {
  const { B, H, Nq, Nk } = parsed.problem;
  const data = softmaxLogits(inputs.q as Heads, inputs.k as Heads, parsed, patternVisibility(parsed.patterns, parsed));
  return { data, dims: [B, H, Nq, Nk] };
}

/** `mask()`: the `[Nq, Nk]` pattern of batch 0, head 0 (causal, keyPadding and mask included). */
export function patternMask(parsed: PatternParsed): Uint8Array {
  return buildMask(parsed.patterns, parsed);
}
