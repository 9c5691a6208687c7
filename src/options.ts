/**
 * Option names, declared once per call. A declaration lists every option a
 * call accepts with its README line; it is checked at compile time against
 * the call's TypeScript interface (both must name the same keys), the README's
 * option tables are generated from it (`scripts/option-tables.mjs`, checked by
 * a test), and {@link rejectUnknown} reads it to refuse a misspelled name
 * instead of silently running with a default.
 */
import type { Options } from './validate.js';

/** One option as the README's tables show it. */
export interface OptionSpec {
  /** The accepted values, e.g. `` `number` `` or `` `'elu' | 'relu'` ``. */
  readonly type: string;
  /** What it does, one line. */
  readonly doc: string;
}

/** The options a call accepts, by name. */
export type OptionTable = Readonly<Record<string, OptionSpec>>;

/**
 * Declares the options of a call whose options interface is `T`: the table
 * must name every key of `T` and nothing else (a compile error otherwise), so
 * the types, the README and the runtime check cannot drift apart.
 */
export function declareOptions<T extends object>() {
  return <D extends { readonly [K in keyof T]-?: OptionSpec }>(table: D & { readonly [K in Exclude<keyof D, keyof T>]: never }): D => table;
}

/** Edit distance with adjacent transpositions (`bais` is one edit from `bias`), for suggestions: names are short. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** `bucket_size`, `BucketSize` and `bucketsize` all fold to `bucketsize`. */
const fold = (name: string): string => name.toLowerCase().replace(/[_-]/g, '');

/**
 * The accepted name closest to `name`: the same name in another case or
 * spelling style (`featuremap`, `bucket_size`), else one within a third of its
 * length in edits (`casual` -> `causal`, `widow` -> `window`).
 */
export function nearestName(name: string, accepted: readonly string[]): string | undefined {
  const same = accepted.find((candidate) => fold(candidate) === fold(name));
  if (same) return same;
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const candidate of accepted) {
    const d = distance(fold(name), fold(candidate));
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/**
 * Throws a TypeError for the first key of `options` that `accepted` does not
 * name; keys set to `undefined` count as absent (spread defaults keep
 * working). `what` names the call (`full`, `a 'local' pattern`), `where` the
 * argument (`options`, `options.patterns[0]`).
 */
export function rejectUnknown(options: Options, accepted: readonly string[], what: string, where: string): void {
  for (const key of Object.keys(options)) {
    if (options[key] === undefined || accepted.includes(key)) continue;
    const near = nearestName(key, accepted);
    const hint = near ? `did you mean '${near}'? ` : '';
    const list = accepted.length ? accepted.join(', ') : 'no options';
    throw new TypeError(`${where}.${key}: unknown option '${key}' (${hint}${what} accepts ${list})`);
  }
}

/** {@link rejectUnknown} against a declaration's names. */
export function rejectUndeclared(options: Options, table: OptionTable, what: string, where: string): void {
  rejectUnknown(options, Object.keys(table), what, where);
}
