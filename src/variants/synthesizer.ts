/**
 * `synthesizer` — Synthesizer (Tay et al. 2021, "Synthesizer: Rethinking
 * Self-Attention for Transformer Models"): `out = softmax(B) v` with the
 * logits B given as parameters (random), as a low-rank product (factorized),
 * or computed from each token alone by a two-layer network (dense). q and k
 * are ignored.
 */
import { synthesizerAttention, synthesizerWeights, type SynthesizerLogits, type SynthesizerMath } from '../reference/synthesizer.js';
import { Rng, seedOf } from '../prng.js';
import { asTensor, describe, type Heads, type Tensor } from '../tensor.js';
import { declareOptions, rejectUnknown } from '../options.js';
import { asOptions, checkFits, commonOptions, headParam, parseCommon, requiredNumber, type CommonOptions, type Options, type Param } from '../validate.js';
import type { Parsed, Problem, Variant } from './variant.js';
import { forRowChunks, rowJobs, type Runtime } from '../runtime/runtime.js';
import { scratch, type Arg, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import type { Exports } from '../runtime/exports.js';

/** The exports of assembly/variants/synthesizer.ts. */
interface SynthesizerKernels extends Exports {
  /** Packs one head: keys (factorized b / dense w2 columns / none), values, key bias (b2 or 0, -inf for padding). */
  synthesizerPackHead(
    form: number, keys: number, ldKeys: number, keyBias: number, v: number, Nk: number, Dk: number, Dv: number, keyPadding: number, pack: number,
  ): void;
  /** Rows [rowStart, rowEnd) of hidden [Nq][Dh] = relu(x w1 + b1). */
  synthesizerHidden(x: number, w1: number, b1: number, Dm: number, Dh: number, hidden: number, rowStart: number, rowEnd: number): void;
  /** Rows [rowStart, rowEnd) of one head's softmax(B) v, the logits made a block at a time. */
  synthesizerRows(
    form: number, src: number, out: number, Nq: number, Nk: number, Dk: number, Dv: number,
    causal: number, pack: number, tiles: number, rowStart: number, rowEnd: number,
  ): void;
}

/** The kernel's form codes (assembly/variants/synthesizer.ts). */
const FORM_CODE = { random: 0, factorized: 1, dense: 2 } as const;

/** Factorized logits `B = a · b^T`. */
export interface SynthesizerFactors {
  /** `[H|1, Nq, R]` (or `[Nq, R]`). */
  a: Tensor;
  /** `[H|1, Nk, R]` (or `[Nk, R]`). */
  b: Tensor;
}

/** Dense logits `B_i = (relu(x_i w1 + b1) w2 + b2)[0 .. Nk)`, per head. */
export interface SynthesizerDense {
  /** `[B, Nq, Dm]`: the tokens the logits are computed from (each row alone). */
  x: Tensor;
  /** `[H|1, Dm, Dh]` (or `[Dm, Dh]`). */
  w1: Tensor;
  /** `[H|1, Dh]` (or `[Dh]`). */
  b1: Tensor;
  /** `[H|1, Dh, Nmax]` (or `[Dh, Nmax]`), `Nmax >= Nk`: only the first Nk logits are used. */
  w2: Tensor;
  /** `[H|1, Nmax]` (or `[Nmax]`). */
  b2: Tensor;
}

/**
 * Options of `attn.synthesizer(null, null, v, options)`: exactly one of
 * `logits`, `factors`, `dense`. B, H and Nk come from v and Nq from the
 * parameters. For `weights()` (no v), H is the parameters' head axis when
 * one of them has H > 1 heads (else 1), B is `dense.x`'s batch (else 1) and
 * Nk is the parameters' key axis (`Nmax` for dense).
 *
 * q and k are ignored, so D is reported as Dv (0 for `weights()`).
 */
export interface SynthesizerOptions extends CommonOptions {
  /** Random Synthesizer: the logits themselves, `[H|1, Nq, Nk]` (or `[Nq, Nk]`). */
  logits?: Tensor;
  /** Factorized random Synthesizer: `B = a · b^T`. */
  factors?: SynthesizerFactors;
  /** Dense Synthesizer: logits computed from each token alone. */
  dense?: SynthesizerDense;
  /**
   * Does not apply (as for linear's `'rfa'`): the logits are used as they
   * are. Accepted, so that `mixed` can pass its common `scale` to every head.
   */
  scale?: number;
  /** Key j visible to query i only if `j <= i + (Nk - Nq)`. */
  causal?: boolean;
  /** `[B, Nk]`, 1 = real key, 0 = padding never attended. */
  keyPadding?: Uint8Array;
}

/** Parsed `synthesizer` options (`scale` is always 1: the logits are not scaled). */
export interface SynthesizerParsed extends Parsed, SynthesizerMath {}

const FORMS = ['logits', 'factors', 'dense'] as const;

function given(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** A parameter `[H|1, ...inner]` or `[...inner]` whose sizes are read before they can be checked. */
interface Shaped {
  readonly value: unknown;
  readonly name: string;
  readonly innerNames: string;
  /** The head axis (1 when left out). */
  readonly lead: number;
  readonly inner: readonly number[];
}

function shaped(value: unknown, name: string, innerNames: readonly string[]): Shaped {
  const names = innerNames.join(', ');
  if (!given(value)) throw new TypeError(`${name}: required option is missing ([H|1, ${names}])`);
  const { dims } = asTensor(value, name);
  const rank = innerNames.length;
  if (dims.length !== rank && dims.length !== rank + 1) {
    throw new RangeError(`${name}.dims: expected [H|1, ${names}] or [${names}], received [${dims.join(', ')}]`);
  }
  return { value, name, innerNames: names, lead: dims.length === rank ? 1 : dims[0], inner: dims.slice(-rank) };
}

function checked(p: Shaped, H: number, inner: readonly number[]): Param {
  return headParam(p.value, p.name, H, inner, p.innerNames);
}

/** A nested option object `{ ...fields }`, refusing names it does not have. */
function group(value: unknown, name: string, fields: readonly string[]): Options {
  if (typeof value !== 'object' || Array.isArray(value)) throw new TypeError(`${name}: expected { ${fields.join(', ')} }, received ${describe(value)}`);
  const options = asOptions(value, name);
  rejectUnknown(options, fields, name.slice('options.'.length), name);
  return options;
}

/** Runs a check of the parameters against sizes taken from `source`, whose RangeError then says so: either may be the one that is wrong. */
function sizedBy<T>(source: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new RangeError(`${error.message} (B, H and Nk are those of ${source})`, { cause: error });
  }
}

export const synthesizer: Variant<SynthesizerParsed> = {
  name: 'synthesizer',
  inputs: { q: 'ignored', k: 'ignored' },
  options: declareOptions<SynthesizerOptions>()({
    ...commonOptions,
    scale: { type: '`number`', doc: 'does not apply: the logits are used as they are (accepted so that `mixed` can pass its common scale)' },
    logits: { type: '`Tensor`', doc: 'random: the logits `[H|1, Nq, Nk]`' },
    factors: { type: '`{ a, b }`', doc: 'factorized: `a [H|1, Nq, R]`, `b [H|1, Nk, R]`, logits `a b^T`' },
    dense: { type: '`{ x, w1, b1, w2, b2 }`', doc: 'dense: logits `relu(x w1 + b1) w2 + b2` from each token alone' },
  }),
  parse({ v }, options) {
    const forms = FORMS.filter((form) => given(options[form]));
    if (forms.length === 0) throw new TypeError('options.logits: required option is missing (synthesizer takes exactly one of options.logits, options.factors, options.dense)');
    if (forms.length > 1) {
      throw new RangeError(`options.${forms[1]}: cannot be combined with options.${forms[0]} (synthesizer takes exactly one of options.logits, options.factors, options.dense)`);
    }
    // Read the sizes first (Nq from the parameters; B, H, Nk from v when given), then check every dims.
    let Nq: number;
    let ownNk: number;
    let ownB = 1;
    let heads: Shaped[];
    let build: (B: number, H: number, Nk: number) => SynthesizerLogits;
    if (forms[0] === 'logits') {
      const logits = shaped(options.logits, 'options.logits', ['Nq', 'Nk']);
      [Nq, ownNk] = logits.inner as [number, number];
      heads = [logits];
      build = (_B, H, Nk) => ({ kind: 'random', logits: checked(logits, H, [Nq, Nk]) });
    } else if (forms[0] === 'factors') {
      const factors = group(options.factors, 'options.factors', ['a', 'b']);
      const a = shaped(factors.a, 'options.factors.a', ['Nq', 'R']);
      const b = shaped(factors.b, 'options.factors.b', ['Nk', 'R']);
      const R = a.inner[1];
      Nq = a.inner[0];
      ownNk = b.inner[0];
      heads = [a, b];
      build = (_B, H, Nk) => ({ kind: 'factorized', a: checked(a, H, [Nq, R]), b: checked(b, H, [Nk, R]), R });
    } else {
      const dense = group(options.dense, 'options.dense', ['x', 'w1', 'b1', 'w2', 'b2']);
      if (!given(dense.x)) throw new TypeError('options.dense.x: required option is missing ([B, Nq, Dm])');
      const x = asTensor(dense.x, 'options.dense.x');
      if (x.dims.length !== 3) throw new RangeError(`options.dense.x.dims: expected [B, Nq, Dm], received [${x.dims.join(', ')}]`);
      const [xB, xNq, Dm] = x.dims as [number, number, number];
      const w1 = shaped(dense.w1, 'options.dense.w1', ['Dm', 'Dh']);
      const b1 = shaped(dense.b1, 'options.dense.b1', ['Dh']);
      const w2 = shaped(dense.w2, 'options.dense.w2', ['Dh', 'Nmax']);
      const b2 = shaped(dense.b2, 'options.dense.b2', ['Nmax']);
      const Dh = w1.inner[1];
      const Nmax = w2.inner[1];
      Nq = xNq;
      ownNk = Nmax;
      ownB = xB;
      heads = [w1, b1, w2, b2];
      build = (B, H, Nk) => {
        if (xB !== B) throw new RangeError(`options.dense.x.dims: expected [B, Nq, Dm] = [${B}, ${Nq}, ${Dm}], received [${x.dims.join(', ')}]`);
        if (Nmax < Nk) {
          throw new RangeError(`options.dense.w2.dims: expected Nmax >= Nk = ${Nk} logits per row ([H|1, Dh, Nmax]), received [${(dense.w2 as Tensor).dims.join(', ')}]`);
        }
        return {
          kind: 'dense',
          x: x.data,
          w1: checked(w1, H, [Dm, Dh]),
          b1: checked(b1, H, [Dh]),
          w2: checked(w2, H, [Dh, Nmax]),
          b2: checked(b2, H, [Nmax]),
          Dm,
          Dh,
          Nmax,
        };
      };
    }
    const B = v ? v.B : ownB;
    const H = v ? v.H : Math.max(...heads.map((p) => p.lead));
    const Nk = v ? v.N : ownNk;
    const Dv = v ? v.D : 0;
    const logits = v ? sizedBy('v.dims', () => build(B, H, Nk)) : build(B, H, Nk);
    // scale is checked like everywhere, then set to 1: the logits are used as they are
    const common = parseCommon(options, 1, B, Nk);
    const problem: Problem = { B, H, Hkv: H, Nq, Nk, D: Dv, Dv };
    return { problem, ...common, scale: 1, logits };
  },
  reference({ v }, p) {
    return synthesizerAttention(v!, p, p.problem);
  },
  weights(_inputs, p) {
    const { B, H, Nq, Nk } = p.problem;
    return { data: synthesizerWeights(p, p.problem), dims: [B, H, Nq, Nk] };
  },
  plan(runtime, { v }, p) {
    return synthesizerPlan(runtime, v!, p);
  },
  kernel(runtime, { v }, p) {
    return runtime.execute(synthesizerPlan(runtime, v!, p));
  },
};

/**
 * The SIMD kernel as a plan: per batch and head, the head is packed (values,
 * key bias and, for factorized and dense, the key-side factor as key tiles),
 * then the rows walk the flash engine with the logits made one block at a
 * time. The packing costs about one row's work, so a head is cut into row
 * jobs (as `full`) that each pack it again; a dense job makes the hidden rows
 * of the row chunks its rows lie in (whole chunks, as one call for the whole
 * head would).
 */
function synthesizerPlan(runtime: Runtime, v: Heads, p: SynthesizerParsed): JobPlan {
  const { B, H, Nq, Nk, Dv } = p.problem;
  const form = p.logits;
  const x = runtime.exports as unknown as SynthesizerKernels;
  const pad = p.keyPadding;
  // Dk: the inner size of the logits' product (0 for given logits)
  const Dk = form.kind === 'random' ? 0 : form.kind === 'factorized' ? form.R : form.Dh;
  const outLength = B * H * Nq * Dv;
  // the form's parameters: [row-side source, key-side factor, key bias, dense: w1, b1]
  const params =
    form.kind === 'random' ? [form.logits.data, 0, 0, 0, 0]
    : form.kind === 'factorized' ? [form.a.data, form.b.data, 0, 0, 0]
    : [form.x, form.w2.data, form.b2.data, form.w1.data, form.b1.data];
  const code = FORM_CODE[form.kind];
  // each thread's own buffers
  const [pack, tiles, hidden] = [0, 1, 2].map(scratch);
  return {
    what: 'synthesizer',
    parts: [v.data, outLength * 4, pad ?? 0, ...params],
    output: 1,
    length: outLength,
    scratch: [x.packBytes(Nk, Dk, Dv), x.groupBytes(Dk, Dv), form.kind === 'dense' ? Nq * Dk * 4 : 0],
    jobs: ([vp, out, padp, rowSide, keySide, keyBias, w1, b1]) => {
      const at = (base: number, param: Param, h: number) => base + h * param.headStride * 4;
      return Array.from({ length: B * H }, (_, bh) => {
        const b = Math.floor(bh / H);
        const h = bh % H;
        const vHead = vp + bh * Nk * Dv * 4;
        const padRow = pad ? padp + b * Nk : 0;
        const outHead = out + bh * Nq * Dv * 4;
        let src: Arg;
        let packCall: KernelCall;
        if (form.kind === 'random') {
          src = at(rowSide, form.logits, h);
          packCall = ['synthesizerPackHead', code, 0, 0, 0, vHead, Nk, 0, Dv, padRow, pack];
        } else if (form.kind === 'factorized') {
          src = at(rowSide, form.a, h);
          packCall = ['synthesizerPackHead', code, at(keySide, form.b, h), Dk, 0, vHead, Nk, Dk, Dv, padRow, pack];
        } else {
          src = hidden;
          packCall = ['synthesizerPackHead', code, at(keySide, form.w2, h), form.Nmax, at(keyBias, form.b2, h), vHead, Nk, Dk, Dv, padRow, pack];
        }
        return rowJobs(Nq, Nk, Dk + Dv).map(([from, to]): Job => {
          const job: KernelCall[] = [];
          if (form.kind === 'dense') {
            const { Dm } = form;
            const xRows = rowSide + b * Nq * Dm * 4;
            forRowChunks(Nq, Dm, Dk, (start, end) => {
              if (start < to && end > from) job.push(['synthesizerHidden', xRows, at(w1, form.w1, h), at(b1, form.b1, h), Dm, Dk, hidden, start, end]);
            });
          }
          job.push(packCall);
          // the same row chunks as one call per chunk of the whole head
          forRowChunks(Nq, Nk, Dk + Dv, (start, end) => {
            if (start >= from && end <= to) job.push(['synthesizerRows', code, src, outHead, Nq, Nk, Dk, Dv, p.causal ? 1 : 0, pack, tiles, start, end]);
          });
          return job;
        });
      }).flat();
    },
  };
}

/** Sizes for `synthesizerParams('random', ...)`. */
export interface RandomSizes {
  /** Heads; default 1 (one matrix broadcast over heads). */
  H?: number;
  Nq: number;
  Nk: number;
}

/** Sizes for `synthesizerParams('factorized', ...)`. */
export interface FactorizedSizes extends RandomSizes {
  /** Rank of the factorization. */
  R: number;
}

/** Sizes for `synthesizerParams('dense', ...)`: the tokens x `[B, Nq, Dm]` themselves and the layer sizes. */
export interface DenseSizes {
  /** Heads; default 1 (one network broadcast over heads). */
  H?: number;
  /** `[B, Nq, Dm]`: passed through to `dense.x`. */
  x: Tensor;
  /** Hidden width. */
  Dh: number;
  /** Logits per row, at least the Nk of the calls the options will be used with. */
  Nmax: number;
}

const sizeNames = {
  random: ['H', 'Nq', 'Nk'],
  factorized: ['H', 'Nq', 'Nk', 'R'],
  dense: ['H', 'x', 'Dh', 'Nmax'],
} as const satisfies { random: readonly (keyof RandomSizes)[]; factorized: readonly (keyof FactorizedSizes)[]; dense: readonly (keyof DenseSizes)[] };

/**
 * Seeded Synthesizer parameters, ready to pass as options. Every matrix is
 * Xavier (Glorot) normal: `N(0, 2 / (rows + columns))` with rows x columns
 * its per-head shape (`logits` `[Nq, Nk]`, `a` `[Nq, R]`, `b` `[Nk, R]`, `w1`
 * `[Dm, Dh]`, `w2` `[Dh, Nmax]`); biases are zero. Draw order: one
 * `Rng(seed)`, standard normals for the matrices in the order just listed
 * (`a` before `b`, `w1` before `w2`), each `[H, rows, columns]` row-major.
 */
export function synthesizerParams(kind: 'random', sizes: RandomSizes, seed: number): { logits: Tensor };
export function synthesizerParams(kind: 'factorized', sizes: FactorizedSizes, seed: number): { factors: SynthesizerFactors };
export function synthesizerParams(kind: 'dense', sizes: DenseSizes, seed: number): { dense: SynthesizerDense };
export function synthesizerParams(
  kind: 'random' | 'factorized' | 'dense',
  sizes: RandomSizes | FactorizedSizes | DenseSizes,
  seed: number,
): { logits: Tensor } | { factors: SynthesizerFactors } | { dense: SynthesizerDense } {
  const prefix = 'synthesizerParams.sizes';
  if (!Object.hasOwn(sizeNames, kind)) {
    throw new RangeError(`synthesizerParams.kind: expected "random", "factorized" or "dense", received ${describe(kind)}`);
  }
  const opts = asOptions(sizes, prefix);
  rejectUnknown(opts, sizeNames[kind], `synthesizerParams('${kind}')`, prefix);
  const size = (key: string): number => requiredNumber(opts, key, { integer: true, min: 1 }, prefix);
  const H = opts.H === undefined ? 1 : size('H');
  const rng = new Rng(seedOf(seed, 'synthesizerParams.seed'));
  const xavier = (rows: number, columns: number): Tensor => {
    checkFits(H * rows * columns * 4, prefix, `a matrix [H, rows, columns] = [${H}, ${rows}, ${columns}]`);
    const data = new Float32Array(H * rows * columns);
    const std = Math.sqrt(2 / (rows + columns));
    for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
    return { data, dims: [H, rows, columns] };
  };
  const zeros = (n: number): Tensor => ({ data: new Float32Array(H * n), dims: [H, n] });
  switch (kind) {
    case 'random':
      return { logits: xavier(size('Nq'), size('Nk')) };
    case 'factorized': {
      const [Nq, Nk, R] = [size('Nq'), size('Nk'), size('R')];
      const a = xavier(Nq, R);
      return { factors: { a, b: xavier(Nk, R) } };
    }
    case 'dense': {
      const x = asTensor(opts.x, `${prefix}.x`);
      if (x.dims.length !== 3) throw new RangeError(`${prefix}.x.dims: expected [B, Nq, Dm], received [${x.dims.join(', ')}]`);
      const [Dm, Dh, Nmax] = [x.dims[2], size('Dh'), size('Nmax')];
      const w1 = xavier(Dm, Dh);
      return { dense: { x, w1, b1: zeros(Dh), w2: xavier(Dh, Nmax), b2: zeros(Nmax) } };
    }
  }
}
