/**
 * `mixed`: different attention in different heads. Head h of q (and head
 * `floor(h / (H / Hkv))` of k, v: grouped-query attention) is computed by the
 * variant its spec names, as a one-head problem `[B, 1, N, D]`; the heads'
 * outputs (and `weights()`) are stacked back. `mask()` is per pattern
 * variant, so `mixed` has none.
 */
import { parseLogitOptions, scoringOptions, viewOfHead, type BiasView, type LogitOptions, type ScoringOptions } from '../model.js';
import { describe, type Heads } from '../tensor.js';
import { declareOptions, rejectUnknown } from '../options.js';
import { commonOptions, parseCommon, type CommonOptions, type Options } from '../validate.js';
import { qkvProblem } from './full.js';
import type { Dense, Inputs, Lookup, Parsed, Variant } from './variant.js';
import { combinePlans } from '../runtime/jobs.js';

/** One head's attention: `kind` names a variant, the other keys are that variant's options. */
export interface HeadSpec {
  /** The variant computing this head, e.g. `'local'`. */
  readonly kind: string;
  readonly [option: string]: unknown;
}

/**
 * Options of `mixed`. Every head is a one-head problem: per-head parameter
 * tensors take a head axis of 1 (or none). The common options given here
 * (`scale`, `causal`, `keyPadding`) apply to every head unless its spec sets
 * its own; so do `mask`, `bias` (broadcast to `[B, H, Nq, Nk]`, each head
 * taking its own slice) and `softcap`, which every head must then take
 * (`full` and the pattern family).
 */
export interface MixedOptions extends CommonOptions, ScoringOptions {
  /** One spec per head, `{ kind: name, ...options }`; exactly H of them. */
  heads: readonly HeadSpec[];
}

/** One head's variant and its options, parsed against the one-head view. */
export interface HeadPlan {
  readonly variant: Variant<Parsed>;
  readonly parsed: Parsed;
  /** The head's `bias` is its slice of the top-level one (so its gradient belongs there). */
  readonly inheritsBias: boolean;
}

/** Parsed options of `mixed`: one plan per head. */
export interface MixedParsed extends Parsed {
  readonly heads: readonly HeadPlan[];
  /** The top-level `bias` the heads inherit, or null. */
  readonly bias: BiasView | null;
}

const inherited = ['scale', 'causal', 'keyPadding'] as const;

/** The `heads` lists being parsed, outermost first: a spec list that contains itself would recurse forever. */
const parsing = new Set<unknown>();

/** Head h of `[B, H, N, D]` as a contiguous `[B, 1, N, D]` (a view when B = 1, else a copy). */
function headOf(x: Heads, h: number): Heads {
  const { B, H, N, D } = x;
  if (B === 1) return { ...x, data: x.data.subarray(h * N * D, (h + 1) * N * D), H: 1, rank: 4 };
  const data = new Float32Array(B * N * D);
  for (let b = 0; b < B; b++) {
    const from = (b * H + h) * N * D;
    data.set(x.data.subarray(from, from + N * D), b * N * D);
  }
  return { data, B, H: 1, N, D, rank: 4, layout: 'bhnd' };
}

/** Head h's shape alone, for parsing (parse reads shapes, never data). */
function headShape(x: Heads): Heads {
  return { data: new Float32Array(0), B: x.B, H: 1, N: x.N, D: x.D, rank: 4, layout: 'bhnd' };
}

/**
 * The inputs of each head, following what the head's variant reads (shapes
 * only unless withData): head h of q, and head `floor(h / (H / Hkv))` of k
 * and v (grouped-query attention), each kv head taken once for its group.
 */
export function headSplitter(inputs: Inputs, withData = true): (h: number, variant: Variant<Parsed>) => Inputs {
  const H = (inputs.q as Heads).H;
  const taken = new Map<Heads, Map<number, Heads>>();
  const view = (x: Heads, h: number): Heads => {
    if (!withData) return headShape(x);
    const head = Math.floor(h / (H / x.H));
    const heads = taken.get(x) ?? new Map<number, Heads>();
    taken.set(x, heads);
    if (!heads.has(head)) heads.set(head, headOf(x, head));
    return heads.get(head)!;
  };
  return (h, variant) => {
    const q = variant.inputs.q === 'ignored' ? null : view(inputs.q as Heads, h);
    let k: Heads | null = null;
    if (variant.inputs.k === 'required') k = view(inputs.k as Heads, h);
    else if (variant.inputs.k === 'shared') {
      if (inputs.k !== inputs.q && inputs.k?.data !== inputs.q?.data) {
        throw new TypeError(`k: options.heads[${h}] is ${variant.name}, which shares queries and keys, so k must be q itself, received a different tensor`);
      }
      k = q;
    }
    return { q, k, v: inputs.v ? view(inputs.v, h) : null };
  };
}

/**
 * Reruns a head variant's own check, with its `options.x` messages renamed
 * `options.heads[h].x`, or, for an option the head inherited, `options.x
 * (given to options.heads[h])`: the name of the place where it was given.
 */
function renamed<T>(h: number, inheritedKeys: readonly string[], run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (!(error instanceof TypeError || error instanceof RangeError) || !error.message.startsWith('options')) throw error;
    const names = (key: string) => error.message.startsWith(`options.${key}`) && /^[:. ]/.test(error.message.slice(`options.${key}`.length));
    const key = inheritedKeys.find(names);
    const message = key
      ? `options.${key} (given to options.heads[${h}])${error.message.slice(`options.${key}`.length)}`
      : `options.heads[${h}]${error.message.slice('options'.length)}`;
    throw error instanceof TypeError ? new TypeError(message, { cause: error }) : new RangeError(message, { cause: error });
  }
}

/**
 * Head h's parsed options with the top-level mask, bias and softcap that its
 * spec does not set itself (the head's slice of the mask and bias).
 */
function inheritLogitOptions(parsed: Parsed, shared: LogitOptions, own: Options, h: number, kind: string): Parsed {
  const inherited: Partial<Record<keyof LogitOptions, unknown>> = {};
  for (const key of Object.keys(scoringOptions) as (keyof LogitOptions)[]) {
    const value = shared[key];
    if (value === null || own[key] !== undefined) continue;
    if (!(key in parsed)) throw new TypeError(`options.${key}: mixed applies it to every head, but options.heads[${h}].kind is '${kind}', which takes no ${key}`);
    inherited[key] = typeof value === 'number' ? value : viewOfHead<Uint8Array | Float32Array>(value, h);
  }
  return { ...parsed, ...inherited };
}

function readHead(inputs: Inputs, options: Options, shared: LogitOptions, spec: unknown, h: number, lookup: Lookup): HeadPlan {
  const name = `options.heads[${h}]`;
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new TypeError(`${name}: expected a spec { kind, ...options }, received ${describe(spec)}`);
  }
  const { kind, ...own } = spec as Options;
  if (kind === undefined) throw new TypeError(`${name}.kind: required option is missing`);
  if (typeof kind !== 'string') throw new TypeError(`${name}.kind: expected a variant name, received ${describe(kind)}`);
  const variant = lookup(kind, `${name}.kind`);
  rejectUnknown(own, ['kind', ...Object.keys(variant.options)], `a '${kind}' head`, name);
  const headOptions: Record<string, unknown> = {};
  for (const key of inherited) if (options[key] !== undefined) headOptions[key] = options[key];
  // a head's option set to undefined is absent: it inherits
  for (const [key, value] of Object.entries(own)) if (value !== undefined) headOptions[key] = value;
  const inheritedKeys = inherited.filter((key) => options[key] !== undefined && own[key] === undefined);
  const parsed = renamed(h, inheritedKeys, () => variant.parse(headSplitter(inputs, false)(h, variant), headOptions, lookup));
  return { variant, parsed: inheritLogitOptions(parsed, shared, own, h, kind), inheritsBias: shared.bias !== null && own.bias === undefined };
}

/** Head h of the output is head h's variant (run by `run`) applied to head h of q, k, v. */
function stackHeads(inputs: Inputs, { problem, heads }: MixedParsed, run: (variant: Variant<Parsed>, head: Inputs, parsed: Parsed) => Float32Array): Float32Array {
  const { B, H, Nq, Dv } = problem;
  const out = new Float32Array(B * H * Nq * Dv);
  const headInputs = headSplitter(inputs);
  heads.forEach(({ variant, parsed }, h) => {
    const headOut = run(variant, headInputs(h, variant), parsed);
    for (let b = 0; b < B; b++) out.set(headOut.subarray(b * Nq * Dv, (b + 1) * Nq * Dv), (b * H + h) * Nq * Dv);
  });
  return out;
}

export const mixed: Variant<MixedParsed> = {
  name: 'mixed',
  inputs: { q: 'required', k: 'required' },
  options: declareOptions<MixedOptions>()({
    ...commonOptions,
    ...scoringOptions,
    heads: { type: '`HeadSpec[]`', doc: 'one `{ kind, ...options }` per head, `kind` any variant; the common options here apply to heads that do not set their own' },
  }),
  parse(inputs, options, lookup) {
    const problem = qkvProblem(inputs);
    // the options every head inherits are checked here, so that their errors name them where they were given
    parseCommon(options, problem.D, problem.B, problem.Nk);
    const specs = options.heads;
    if (specs === undefined) throw new TypeError('options.heads: required option is missing');
    if (!Array.isArray(specs)) throw new TypeError(`options.heads: expected an array of head specs, received ${describe(specs)}`);
    if (specs.length !== problem.H) {
      throw new RangeError(`options.heads: expected one spec per head (H = ${problem.H}), received ${specs.length}`);
    }
    const shared = parseLogitOptions(options, problem);
    if (parsing.has(specs)) throw new TypeError('options.heads: expected specs that do not contain themselves, received a list that holds a mixed spec with this very list');
    parsing.add(specs);
    try {
      return { problem, heads: specs.map((spec, h) => readHead(inputs, options, shared, spec, h, lookup)), bias: shared.bias };
    } finally {
      parsing.delete(specs);
    }
  },
  reference(inputs, parsed) {
    return stackHeads(inputs, parsed, (variant, head, headParsed) => variant.reference(head, headParsed));
  },
  plan(runtime, inputs, parsed) {
    // every head's plan (each head a one-head problem), side by side; the output gathered back as [B, H, Nq, Dv]
    const { B, H, Nq, Dv } = parsed.problem;
    const headInputs = headSplitter(inputs);
    const plans = parsed.heads.map(({ variant, parsed: headParsed }, h) => {
      if (!variant.plan) throw new TypeError(`options.heads[${h}].kind: ${variant.name} has no kernel plan`);
      return variant.plan(runtime, headInputs(h, variant), headParsed);
    });
    const rows = Nq * Dv;
    return combinePlans('mixed', plans, B * H * rows, (outputs) =>
      Array.from({ length: B * H }, (_, bh): [number, number] => [outputs[bh % H] + Math.floor(bh / H) * rows * 4, rows]),
    );
  },
  kernel(runtime, inputs, parsed) {
    // a head with no kernel plan (a mixed head inside mixed) makes the heads run one by one
    if (parsed.heads.some(({ variant }) => !variant.plan)) {
      return stackHeads(inputs, parsed, (variant, head, headParsed) =>
        variant.kernel ? variant.kernel(runtime, head, headParsed) : variant.reference(head, headParsed),
      );
    }
    return runtime.execute(this.plan!(runtime, inputs, parsed));
  },
  weights(inputs, { problem, heads }): Dense {
    const { B, H, Nq, Nk } = problem;
    const data = new Float32Array(B * H * Nq * Nk);
    const headInputs = headSplitter(inputs);
    heads.forEach(({ variant, parsed }, h) => {
      const headWeights = variant.weights(headInputs(h, variant), parsed);
      const [hb, hh, hq, hk] = headWeights.dims;
      if (headWeights.dims.length !== 4 || hb !== B || hh !== 1 || hq !== Nq || hk !== Nk) {
        throw new RangeError(`options.heads[${h}]: weights() of ${variant.name} has dims [${headWeights.dims.join(', ')}], not [B, 1, Nq, Nk] = [${B}, 1, ${Nq}, ${Nk}], so mixed cannot stack it`);
      }
      for (let b = 0; b < B; b++) data.set(headWeights.data.subarray(b * Nq * Nk, (b + 1) * Nq * Nk), (b * H + h) * Nq * Nk);
    });
    return { data, dims: [B, H, Nq, Nk] };
  },
};
