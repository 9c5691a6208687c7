/**
 * Generators shared by the property suites: valid calls of every registered
 * variant, with awkward shapes (N 1-70, D 1-40, Dv != D, odd B and H, Nq !=
 * Nk where allowed, ranks 2-4), causal where allowed, key padding with fully
 * padded rows, custom scales and every form of each variant's parameters.
 * Tensors are drawn from a seed (standard normals of unit scale), so a case
 * is a handful of numbers that fast-check shrinks.
 */
import fc from 'fast-check';
import type { VariantName } from '../dist/index.js';
import { Rng } from '../src/prng.js';
import { randn, type T } from './random.js';

/** One call: `attn.apply(name, q, k, v, options)`. */
export interface Call {
  readonly name: VariantName;
  readonly q: T | null;
  readonly k: T | null;
  readonly v: T;
  readonly options: Record<string, unknown>;
}

/** The sizes of a call; ranks 2 and 3 have B = 1 (and H = 1). */
export interface Shape {
  readonly rank: 2 | 3 | 4;
  readonly B: number;
  readonly H: number;
  readonly Nq: number;
  readonly Nk: number;
  readonly D: number;
  readonly Dv: number;
  readonly seed: number;
}

const int = (min: number, max: number) => fc.integer({ min, max });
const maybe = <V>(arb: fc.Arbitrary<V>) => fc.option(arb, { nil: undefined });
const seedArb = fc.nat({ max: 2 ** 31 - 1 });

/** Options without the keys whose value is undefined (absent). */
function defined(options: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
}

/** How large drawn problems get: the sizes the issue asks for, or small ones (for calls that only have to run). */
export interface Sizes {
  readonly maxN: number;
  readonly maxD: number;
  readonly maxBH: number;
}

export const awkward: Sizes = { maxN: 70, maxD: 40, maxBH: 3 };
export const small: Sizes = { maxN: 12, maxD: 6, maxBH: 2 };

export interface ShapeRule {
  /** Nk = Nq (lsh, sinkhorn). */
  readonly square?: boolean;
  /** Sequence lengths (default 1 to sizes.maxN). */
  readonly N?: fc.Arbitrary<number>;
  readonly sizes?: Sizes;
}

export function shapeArb(rule: ShapeRule = {}): fc.Arbitrary<Shape> {
  const { maxN, maxD, maxBH } = rule.sizes ?? awkward;
  const N = rule.N ?? int(1, maxN);
  return fc
    .record({ rank: fc.constantFrom(2, 3, 4) as fc.Arbitrary<2 | 3 | 4>, B: int(1, maxBH), H: int(1, maxBH), Nq: N, Nk: N, D: int(1, maxD), Dv: int(1, maxD), seed: seedArb })
    .map((s) => ({ ...s, B: s.rank === 4 ? s.B : 1, H: s.rank === 2 ? 1 : s.H, Nk: rule.square ? s.Nq : s.Nk }));
}

/** An attention input of the shape's rank: `[N, D]`, `[H, N, D]` or `[B, H, N, D]`. */
export function input(s: Shape, N: number, D: number, salt: number): T {
  const dims = s.rank === 4 ? [s.B, s.H, N, D] : s.rank === 3 ? [s.H, N, D] : [N, D];
  return randn(dims, s.seed * 31 + salt);
}

/** A parameter `[H|1, ...inner]` (or `[...inner]`): per head, broadcast, or without the head axis. */
function param(s: Shape, lead: 'H' | 1 | 'none', inner: number[], salt: number, scale = 1): T {
  const dims = lead === 'none' ? inner : [lead === 'H' ? s.H : 1, ...inner];
  return randn(dims, s.seed * 37 + salt, scale);
}

const leadArb = fc.constantFrom('H', 1, 'none') as fc.Arbitrary<'H' | 1 | 'none'>;

/** `[B, Nk]`: per batch all real, about 30% padded, or fully padded. */
function keyPadding(s: Shape, modes: readonly ('real' | 'some' | 'none')[]): Uint8Array {
  const rng = new Rng(s.seed + 5);
  const mask = new Uint8Array(s.B * s.Nk);
  modes.forEach((mode, b) => {
    for (let j = 0; j < s.Nk; j++) mask[b * s.Nk + j] = mode === 'real' || (mode === 'some' && (j === 0 || rng.uniform() > 0.3)) ? 1 : 0;
  });
  return mask;
}

/** `scale`, `causal` (when the variant can be causal) and `keyPadding`. */
function common(s: Shape, canBeCausal: boolean, scale: fc.Arbitrary<number> = fc.double({ min: -1.5, max: 1.5, noNaN: true })) {
  const modes = fc.array(fc.constantFrom('real', 'some', 'none') as fc.Arbitrary<'real' | 'some' | 'none'>, { minLength: s.B, maxLength: s.B });
  return fc.record({
    scale: maybe(scale),
    causal: canBeCausal ? maybe(fc.boolean()) : fc.constant(undefined),
    keyPadding: maybe(modes.map((m) => keyPadding(s, m))),
  });
}

/** Reach options around a sequence of `n`: small, exactly n, and past it. */
const reach = (n: number) => int(0, n + 3);

const localOptions = (s: Shape) =>
  fc.oneof(
    fc.record({ window: reach(s.Nk) }),
    fc.record({ before: maybe(reach(s.Nk)), after: reach(s.Nk) }),
    fc.record({ before: reach(s.Nk) }),
  );
const stridedOptions = (s: Shape) => fc.record({ stride: int(1, Math.max(s.Nq, s.Nk) + 3), window: maybe(reach(s.Nk)) });
const tokens = (s: Shape) => fc.array(int(0, s.Nk - 1), { maxLength: 5 });
const patternArb = (s: Shape) =>
  fc.oneof(
    localOptions(s).map((o) => ({ type: 'local', ...defined(o) })),
    stridedOptions(s).map((o) => ({ type: 'strided', ...defined(o) })),
    tokens(s).map((t) => ({ type: 'global', tokens: t })),
    fc.record({ count: int(0, s.Nk + 3), seed: seedArb }).map((o) => ({ type: 'random', ...o })),
  );

const lshOptions = (s: Shape) =>
  fc.record({
    bucketSize: int(1, s.Nq + 3),
    hash: fc.oneof(
      fc.record({ rounds: int(1, 3), buckets: int(1, 4).map((h) => 2 * h), seed: seedArb }),
      fc.record({ R: int(1, 3), half: int(1, 4), lead: leadArb }).map(({ R, half, lead }) => ({ rotations: param(s, lead, [R, s.D, half], 11) })),
    ),
  }).map(({ bucketSize, hash }) => ({ bucketSize, ...hash }));

const routingOptions = (s: Shape) =>
  fc.record({
    window: int(1, Math.max(s.Nq, s.Nk) + 3),
    route: fc.oneof(
      fc.record({ clusters: int(1, Math.min(6, s.B * (s.Nq + s.Nk))), iterations: maybe(int(0, 6)), seed: seedArb }),
      fc.record({ C: int(1, 6), lead: fc.constantFrom('H', 1) as fc.Arbitrary<'H' | 1> }).map(({ C, lead }) => ({ centroids: param(s, lead, [C, s.D], 12) })),
    ),
  }).map(({ window, route }) => ({ window, ...defined(route) }));

/** Sinkhorn needs N = nb * blockSize: the shape's N is set from these. */
const sinkhornBlocks = (maxN: number) => {
  const longest = Math.floor(Math.sqrt(maxN)) + 2;
  return fc.record({ blockSize: int(1, longest), count: int(1, Math.max(1, Math.floor(maxN / longest))) });
};
const sinkhornOptions = (s: Shape, blockSize: number) => {
  const nb = s.Nq / blockSize;
  return fc.record({
    blockSize: fc.constant(blockSize),
    temperature: maybe(fc.double({ min: 0.5, max: 1.5, noNaN: true })),
    iterations: maybe(int(0, 8)),
    sortLogits: maybe(fc.record({ batches: fc.constantFrom(1, s.B), heads: fc.constantFrom(1, s.H) }).map(({ batches, heads }) => randn([batches, heads, nb, nb], s.seed + 13))),
  });
};

const linformerOptions = (s: Shape) =>
  fc.record({ P: int(1, 20), lead: leadArb, separate: fc.boolean() }).map(({ P, lead, separate }) => {
    const e = param(s, lead, [P, s.Nk], 14, 1 / Math.sqrt(s.Nk));
    return defined({ e, f: separate ? param(s, lead, [P, s.Nk], 15, 1 / Math.sqrt(s.Nk)) : undefined });
  });

const convArb = fc.record({ lead: leadArb, bias: fc.boolean() });
const compressedOptions = (s: Shape) =>
  fc.record({ factor: int(1, s.Nk + 3), convK: maybe(convArb), convV: maybe(convArb), nullSlot: fc.option(leadArb, { nil: undefined }) }).map(({ factor, convK, convV, nullSlot }) => {
    const conv = (c: { lead: 'H' | 1 | 'none'; bias: boolean } | undefined, Dx: number, salt: number) =>
      c && {
        weight: param(s, c.lead, [Dx, Dx, factor], salt, 1 / Math.sqrt(Dx * factor)),
        ...(c.bias ? { bias: param(s, c.lead, [Dx], salt + 1, 0.1) } : {}),
      };
    const nulls = nullSlot === undefined ? {} : { nullKey: param(s, nullSlot, [s.D], 18), nullValue: param(s, nullSlot, [s.Dv], 19) };
    return defined({ factor, convK: conv(convK, s.D, 16), convV: conv(convV, s.Dv, 20), ...nulls });
  });

const linearOptions = (s: Shape) =>
  fc.oneof(
    fc.record({ featureMap: fc.constantFrom('elu', 'relu', undefined), eps: maybe(fc.double({ min: 0, max: 1e-3, noNaN: true })) }),
    fc.record({ featureMap: fc.constant('efficient') }),
    fc.record({
      featureMap: fc.constantFrom('favor', 'rfa'),
      M: int(1, 24),
      drawn: fc.boolean(),
      lead: leadArb,
      seed: seedArb,
      sigma: maybe(fc.double({ min: 0.3, max: 1.5, noNaN: true })),
    }).map(({ featureMap, M, drawn, lead, seed, sigma }) =>
      drawn ? defined({ featureMap, numFeatures: M, seed, sigma: featureMap === 'rfa' ? sigma : undefined }) : { featureMap, projection: param(s, lead, [M, s.D], 21) },
    ),
  );

/** Synthesizer's parameters: Nq is theirs, B, H and Nk come from v. */
const synthesizerOptions = (s: Shape) =>
  fc.oneof(
    leadArb.map((lead) => ({ logits: param(s, lead, [s.Nq, s.Nk], 22) })),
    fc.record({ R: int(1, 8), lead: leadArb }).map(({ R, lead }) => ({ factors: { a: param(s, lead, [s.Nq, R], 23, 0.5), b: param(s, lead, [s.Nk, R], 24, 0.5) } })),
    fc.record({ Dm: int(1, 12), Dh: int(1, 12), extra: int(0, 3), lead: leadArb }).map(({ Dm, Dh, extra, lead }) => ({
      dense: {
        x: randn([s.B, s.Nq, Dm], s.seed + 25),
        w1: param(s, lead, [Dm, Dh], 26, 1 / Math.sqrt(Dm)),
        b1: param(s, lead, [Dh], 27, 0.1),
        w2: param(s, lead, [Dh, s.Nk + extra], 28, 1 / Math.sqrt(Dh)),
        b2: param(s, lead, [s.Nk + extra], 29, 0.1),
      },
    })),
  );

/** The kinds a `mixed` head may take here (one-head problems with separate q, k, v). */
const mixedKinds = ['full', 'local', 'strided', 'global', 'sparse', 'linear', 'linformer', 'compressed', 'routing'] as const;

/** A valid call of `name` with shape `s` (sinkhorn's N and synthesizer's Nq are the shape's). */
function callArb(name: VariantName, s: Shape): fc.Arbitrary<Call> {
  const q = input(s, s.Nq, s.D, 1);
  const k = input(s, s.Nk, s.D, 2);
  const v = input(s, s.Nk, s.Dv, 3);
  const withCommon = (own: fc.Arbitrary<Record<string, unknown>>, canBeCausal = true, scale?: fc.Arbitrary<number>) =>
    fc.tuple(common(s, canBeCausal, scale), own).map(([c, o]): Call => ({ name, q, k, v, options: defined({ ...c, ...o }) }));
  switch (name) {
    case 'full':
      return withCommon(fc.constant({}));
    case 'local':
      return withCommon(localOptions(s));
    case 'strided':
      return withCommon(stridedOptions(s));
    case 'global':
      return withCommon(tokens(s).map((t) => ({ tokens: t })));
    case 'sparse':
      return withCommon(fc.array(patternArb(s), { minLength: 1, maxLength: 3 }).map((patterns) => ({ patterns })));
    case 'lsh':
      return withCommon(lshOptions(s)).map((c) => ({ ...c, k: null }));
    case 'routing':
      return withCommon(routingOptions(s));
    case 'sinkhorn':
      return fc.constantFrom(...divisors(s.Nq)).chain((b) => withCommon(sinkhornOptions(s, b)));
    case 'linformer':
      return withCommon(linformerOptions(s), false);
    case 'compressed':
      return withCommon(compressedOptions(s));
    case 'linear':
      return linearOptions(s).chain((o) =>
        withCommon(fc.constant(o), o.featureMap !== 'efficient', o.featureMap === 'favor' ? fc.double({ min: 0.05, max: 1.2, noNaN: true }) : undefined),
      );
    case 'synthesizer':
      return withCommon(synthesizerOptions(s)).map((c) => ({ ...c, q: null, k: null }));
    case 'mixed': {
      const one: Shape = { ...s, rank: 4, B: s.B, H: 1 };
      const head = fc.constantFrom(...mixedKinds).chain((kind) => callArb(kind, one).map((c) => ({ kind, ...c.options })));
      // heads inherit scale: positive, as favor heads need
      return fc.tuple(fc.array(head, { minLength: s.H, maxLength: s.H }), common(s, false, fc.double({ min: 0.05, max: 1.2, noNaN: true }))).map(([heads, c]): Call => ({ name, q, k, v, options: defined({ ...c, heads }) }));
    }
  }
}

function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((b) => n % b === 0);
}

/** The variants that take mask, bias and softcap (SPEC "Masks, bias and soft-capping"). */
const takesTerms = new Set<VariantName>(['full', 'local', 'strided', 'global', 'sparse']);
/** The variants whose k and v are separate inputs, so they may have fewer heads (grouped-query attention). */
const takesGqa = new Set<VariantName>(['full', 'local', 'strided', 'global', 'sparse', 'mixed', 'routing', 'sinkhorn', 'linformer', 'compressed', 'linear']);

/** dims of a mask or bias broadcasting to `[B, H, Nq, Nk]`, in each of the accepted forms. */
function broadcastDims(s: Shape): fc.Arbitrary<number[]> {
  return fc.constantFrom([s.Nq, s.Nk], [1, s.Nk], [s.Nq, 1], [s.H, s.Nq, s.Nk], [1, s.Nq, s.Nk], [s.B, s.H, s.Nq, s.Nk], [s.B, 1, 1, s.Nk]);
}

/** mask, bias (with some -Infinity) and softcap, each present or not. */
function termsArb(s: Shape): fc.Arbitrary<Record<string, unknown>> {
  const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
  const mask = broadcastDims(s).map((dims) => {
    const rng = new Rng(s.seed + 11);
    return { data: Uint8Array.from({ length: size(dims) }, () => (rng.uniform() < 0.75 ? 1 : 0)), dims };
  });
  const bias = broadcastDims(s).map((dims) => {
    const rng = new Rng(s.seed + 12);
    return { data: Float32Array.from({ length: size(dims) }, () => (rng.uniform() < 0.1 ? -Infinity : rng.normal())), dims };
  });
  return fc.record({ mask: maybe(mask), bias: maybe(bias), softcap: maybe(fc.double({ min: 0.3, max: 50, noNaN: true })) }).map(defined);
}

/** The sequence length of an input of a call, in either layout. */
export function lengthOf(call: Call, x: T): number {
  return call.options.layout === 'bnhd' ? x.dims[1] : x.dims[x.dims.length - 2];
}

/** A call's inputs in the `[B, N, H, D]` layout (the same values, read the other way). */
function inBnhd(call: Call): Call {
  const swap = (x: T | null) => (x && x.dims.length === 4 ? { data: x.data, dims: [x.dims[0], x.dims[2], x.dims[1], x.dims[3]] } : x);
  return { ...call, q: swap(call.q), k: swap(call.k), v: swap(call.v)!, options: { ...call.options, layout: 'bnhd' } };
}

/**
 * The model features on top of a variant's own call (SPEC "Attention as
 * models use it"): k and v of fewer heads, mask / bias / softcap, and the
 * `'bnhd'` layout, each where the variant takes it.
 */
function withModelFeatures(name: VariantName, s: Shape, call: Call): fc.Arbitrary<Call> {
  const kvHeads = takesGqa.has(name) && s.rank !== 2 ? fc.constantFrom(...divisors(s.H)) : fc.constant(s.H);
  return fc.record({ Hkv: kvHeads, terms: takesTerms.has(name) ? termsArb(s) : fc.constant({}), bnhd: s.rank === 4 ? fc.boolean() : fc.constant(false) }).map(({ Hkv, terms, bnhd }) => {
    const grouped: Call = Hkv === s.H ? call : { ...call, k: call.k && input({ ...s, H: Hkv }, s.Nk, s.D, 2), v: input({ ...s, H: Hkv }, s.Nk, s.Dv, 3) };
    const withTerms = { ...grouped, options: { ...grouped.options, ...terms } };
    return bnhd ? inBnhd(withTerms) : withTerms;
  });
}

/** Valid calls of one variant. */
export function validCall(name: VariantName, sizes: Sizes = awkward, square = name === 'lsh' || name === 'sinkhorn'): fc.Arbitrary<Call> {
  const blocks = sinkhornBlocks(sizes.maxN);
  const N = name === 'sinkhorn' ? blocks.map(({ blockSize, count }) => blockSize * count) : undefined;
  return shapeArb({ square, N, sizes }).chain((s) => callArb(name, s).chain((call) => withModelFeatures(name, s, call)));
}

/**
 * Whether weights() takes the call's options: mixed stacks its heads'
 * matrices, which compressed's slot probabilities are not, and a dense
 * synthesizer's weights() (no v, so no Nk) spans all its Nmax logits.
 */
export function takesWeights({ name, options }: Call): boolean {
  if (name === 'mixed') return !(options.heads as { kind: string }[]).some((head) => head.kind === 'compressed');
  if (name !== 'synthesizer' || !options.keyPadding) return true;
  // synthesizer's weights() has B from dense.x (else 1) and Nk from the parameters: keyPadding must be [B, Nk] of those
  type Dims = { dims: number[] };
  const { logits, factors, dense } = options as { logits?: Dims; factors?: { b: Dims }; dense?: { x: Dims; w2: Dims } };
  const last = (t: Dims, fromEnd = 1) => t.dims[t.dims.length - fromEnd];
  const B = dense ? dense.x.dims[0] : 1;
  const Nk = logits ? last(logits) : factors ? last(factors.b, 2) : last(dense!.w2);
  return (options.keyPadding as Uint8Array).length === B * Nk;
}
