/**
 * The SIMD kernel of the pattern variants (`local`, `strided`, `global`,
 * `sparse`) as plans: how the passes of assembly/variants/patterns.ts cover
 * a pattern set ({@link kernelPlan}) and the jobs that run them. The rules
 * themselves (parsing, visibility, the float64 reference) are src/patterns.ts.
 */
import type { GlobalRule, LocalRule, PatternParsed, PatternSet, RandomRule, StridedRule } from './patterns.js';
import { headOffset, rowStride, type Heads } from './tensor.js';
import type { Inputs, Problem } from './variants/variant.js';
import { forRowChunks, type Runtime } from './runtime/runtime.js';
import { scratch, type JobPlan, type KernelCall, type ScratchRef } from './runtime/jobs.js';
import type { FramePart } from './runtime/arena.js';
import { termsParts, writeTermsCall } from './engine.js';
import { hasLogitOptions } from './model.js';

/** The pattern kernel's exports (assembly/variants/patterns.ts). */
interface PatternKernels {
  patternStateBytes(Nq: number, Dv: number): number;
  patternStart(rows: number, Nq: number, Dv: number): void;
  patternFinish(rows: number, Nq: number, Dv: number, out: number, oLd: number): void;
  patternWindowRows(
    q: number, Nq: number, Nk: number, D: number, Dv: number, qLd: number, scale: number, causal: number, terms: number,
    A: number, B: number, isToken: number, pack: number, tile: number, rows: number, rowStart: number, rowEnd: number, out: number, oLd: number,
  ): void;
  residuePackBytes(Nk: number, D: number, Dv: number, s: number): number;
  packResidues(k: number, v: number, Nk: number, D: number, Dv: number, kLd: number, vLd: number, s: number, keyPadding: number, pack: number): void;
  patternStrideRows(
    q: number, v: number, Nq: number, Nk: number, D: number, Dv: number, qLd: number, vLd: number, scale: number, causal: number, terms: number,
    s: number, reach: number, A: number, B: number, isToken: number, pack: number, tile: number, rows: number, out: number, oLd: number,
  ): void;
  extraBytes(D: number, Dv: number): number;
  patternExtraRows(
    q: number, k: number, v: number, Nq: number, Nk: number, D: number, Dv: number, qLd: number, kLd: number, vLd: number, scale: number, terms: number,
    offsets: number, keys: number, bits: number, pack: number, gathered: number, tile: number, rows: number,
    tileStart: number, tileEnd: number,
  ): void;
}

/**
 * How the kernel covers a pattern set (see assembly/variants/patterns.ts):
 * the window pass takes the union of the local rules, `[p - A, p + B]`, and
 * whole rows at global positions; the stride pass the strided rule of
 * smallest stride; the extra pass, per query tile of 8 rows, the listed keys
 * (global tokens, random picks, further strided rules) that the other two
 * passes do not take, with a bit per row that sees them.
 */
export interface KernelPlan {
  /** Window sides; -1 when there is no local rule. */
  readonly A: number;
  readonly B: number;
  /** `[Nk]` union of the global rules' tokens, or null. */
  readonly isToken: Uint8Array | null;
  /** The stride pass's stride and reach (`window * stride`, -1 unbounded), or null. */
  readonly stride: { readonly s: number; readonly reach: number } | null;
  /** Extra keys per tile: keys[offsets[t] .. offsets[t + 1]), bits[] the rows of the tile that see each. */
  readonly extra: { readonly offsets: Int32Array; readonly keys: Int32Array; readonly bits: Uint8Array } | null;
}

/** Plans the kernel's passes for one pattern set (shared by every batch and head). */
export function kernelPlan(set: PatternSet, causal: boolean): KernelPlan {
  const { Nq, Nk, rules } = set;
  const locals = rules.filter((r): r is LocalRule => r.type === 'local');
  const A = locals.length ? Math.max(...locals.map((r) => r.before)) : -1;
  const B = locals.length ? Math.max(...locals.map((r) => r.after)) : -1;
  const globals = rules.filter((r): r is GlobalRule => r.type === 'global');
  let isToken: Uint8Array | null = null;
  if (globals.length) {
    isToken = new Uint8Array(Nk);
    for (const g of globals) for (const t of g.tokens) isToken[t] = 1;
  }
  const strided = rules.filter((r): r is StridedRule => r.type === 'strided').sort((a, b) => a.stride - b.stride);
  const main = strided[0];
  const stride = main ? { s: main.stride, reach: main.window === null ? -1 : main.window * main.stride } : null;
  const shift = Nk - Nq;

  // what the window and stride passes take
  const isGlobalRow = (p: number) => isToken !== null && p >= 0 && p < Nk && isToken[p] === 1;
  const taken = (p: number, j: number): boolean =>
    isGlobalRow(p) ||
    (A >= 0 && p - A <= j && j <= p + B) ||
    (stride !== null && (p - j) % stride.s === 0 && (stride.reach < 0 || Math.abs(p - j) <= stride.reach));

  const randoms = rules.filter((r): r is RandomRule => r.type === 'random');
  const others = strided.slice(1);
  if (!globals.length && !randoms.length && !others.length) return { A, B, isToken, stride, extra: null };

  const tiles = Math.ceil(Nq / 8);
  const offsets = new Int32Array(tiles + 1);
  const keys: number[] = [];
  const bits: number[] = [];
  for (let t = 0; t < tiles; t++) {
    const seen = new Map<number, number>();
    for (let r = 0; r < 8 && t * 8 + r < Nq; r++) {
      const i = t * 8 + r;
      const p = i + shift;
      const end = causal ? Math.min(Nk, p + 1) : Nk;
      const add = (j: number) => {
        if (j >= 0 && j < end && !taken(p, j)) seen.set(j, (seen.get(j) ?? 0) | (1 << r));
      };
      if (isToken) for (const g of globals) g.tokens.forEach(add);
      for (const rule of randoms) rule.picks.subarray(i * rule.count, (i + 1) * rule.count).forEach(add);
      for (const rule of others) {
        const reach = rule.window === null ? Infinity : rule.window * rule.stride;
        const from = Math.max(0, p - reach);
        for (let j = from + ((((p - from) % rule.stride) + rule.stride) % rule.stride); j <= Math.min(end - 1, p + reach); j += rule.stride) add(j);
      }
    }
    for (const j of [...seen.keys()].sort((a, b) => a - b)) {
      keys.push(j);
      bits.push(seen.get(j)!);
    }
    offsets[t + 1] = keys.length;
  }
  return { A, B, isToken, stride, extra: { offsets, keys: Int32Array.from(keys), bits: Uint8Array.from(bits) } };
}

/** The thread's buffers a head's passes work in. */
export interface PassBuffers {
  readonly pack: ScratchRef;
  readonly residues: ScratchRef;
  readonly tile: ScratchRef;
  readonly rows: ScratchRef;
  readonly gathered: ScratchRef;
  readonly record: ScratchRef;
}

/** Whether the plan runs the window pass: a local rule or a global row. */
const hasWindowPass = (plan: KernelPlan): boolean => plan.A >= 0 || plan.isToken !== null;

/** Whether the plan is one window or stride pass alone, which needs no per-row arrays when it writes the output itself. */
const isLonePass = (plan: KernelPlan): boolean => plan.extra === null && hasWindowPass(plan) !== (plan.stride !== null);

/**
 * Byte sizes of {@link PassBuffers}, in its order; `output`: whether the
 * passes write the output (as {@link passCalls} with an output), not the rows' state.
 */
export function passBufferBytes(x: PatternKernels & Runtime['exports'], plan: KernelPlan, { Nq, Nk, D, Dv }: Problem, output = false): number[] {
  return [
    hasWindowPass(plan) || plan.extra ? x.packBytes(Nk, D, Dv) : 0,
    plan.stride ? x.residuePackBytes(Nk, D, Dv, plan.stride.s) : 0,
    x.groupBytes(D, Dv),
    output && isLonePass(plan) ? 0 : x.patternStateBytes(Nq, Dv),
    plan.extra ? x.extraBytes(D, Dv) : 0,
    x.termsBytes(),
  ];
}

/** The frame parts the passes read after q, k, v: the key padding, the plan's tables, the terms. */
export function passParts(plan: KernelPlan, parsed: PatternParsed): FramePart[] {
  return [parsed.keyPadding ?? 0, plan.isToken ?? 0, plan.extra?.offsets ?? 0, plan.extra?.keys ?? 0, plan.extra?.bits ?? 0, ...termsParts(parsed)];
}

/** Where a head's output rows go: the first row's byte address, and the floats from row to row. */
export interface HeadOutput {
  readonly at: number;
  readonly ld: number;
}

/**
 * The calls that run every pass of {@link kernelPlan} for query head h of
 * batch b: with `output`, they end by writing the head's output rows (a lone
 * window or stride pass writes them itself); without, they leave each row's
 * m, l and o in `buffers.rows` (the backward's row statistics).
 * `pointers`: q, k, v, then {@link passParts}'.
 */
export function passCalls(
  plan: KernelPlan, parsed: PatternParsed, inputs: Inputs, pointers: readonly number[], buffers: PassBuffers, b: number, h: number,
  output: HeadOutput | null = null,
): KernelCall[] {
  const q = inputs.q as Heads;
  const k = inputs.k as Heads;
  const v = inputs.v as Heads;
  const { H, Nq, Nk, D, Dv } = parsed.problem;
  const { keyPadding, scale } = parsed;
  const terms = parsed;
  const causal = parsed.causal ? 1 : 0;
  const [qp, kp, vp, padp, tokens, offsets, keys, bits, maskp, biasp] = pointers;
  const { pack, residues, tile, rows, gathered, record } = buffers;
  const windowPass = hasWindowPass(plan);
  const isToken = plan.isToken ? tokens : 0;
  const pad = keyPadding ? padp + b * Nk : 0;
  const [qh, kh, vh] = [q, k, v].map((x) => ({ offset: headOffset(x, b, h, H) * 4, ld: rowStride(x) }));
  const [qHead, kHead, vHead] = [qp + qh.offset, kp + kh.offset, vp + vh.offset];
  const lone = output !== null && isLonePass(plan);
  const [out, oLd] = lone ? [output.at, output.ld] : [0, 0];
  const job: KernelCall[] = lone ? [] : [['patternStart', rows, Nq, Dv]];
  if (hasLogitOptions(terms)) job.push(writeTermsCall(terms, maskp, biasp, b, h, record));
  const termsArg = hasLogitOptions(terms) ? record : 0;
  if (windowPass || plan.extra) job.push(['packHead', kHead, vHead, Nk, D, Dv, kh.ld, vh.ld, pad, pack]);
  if (windowPass) {
    const window = Math.max(1, Math.min(Nk, plan.A + plan.B + 9));
    forRowChunks(Nq, window, D + Dv, (start, end) =>
      job.push(['patternWindowRows', qHead, Nq, Nk, D, Dv, qh.ld, scale, causal, termsArg, plan.A, plan.B, isToken, pack, tile, rows, start, end, out, oLd]),
    );
  }
  if (plan.stride) {
    const { s, reach } = plan.stride;
    job.push(['packResidues', kHead, vHead, Nk, D, Dv, kh.ld, vh.ld, s, pad, residues]);
    job.push(['patternStrideRows', qHead, vHead, Nq, Nk, D, Dv, qh.ld, vh.ld, scale, causal, termsArg, s, reach, plan.A, plan.B, isToken, residues, tile, rows, out, oLd]);
  }
  if (plan.extra) {
    job.push(['patternExtraRows', qHead, kHead, vHead, Nq, Nk, D, Dv, qh.ld, kh.ld, vh.ld, scale, termsArg, offsets, keys, bits, pack, gathered, tile, rows, 0, Math.ceil(Nq / 8)]);
  }
  if (output && !lone) job.push(['patternFinish', rows, Nq, Dv, output.at, output.ld]);
  return job;
}

/**
 * The SIMD kernel of every pattern variant as a plan: the passes of
 * {@link kernelPlan}, one job per query head, reading the kv head it shares
 * (grouped-query attention) and every tensor in place in either layout, with
 * the head's model terms (mask, bias, softcap).
 */
export function patternPlan(runtime: Runtime, inputs: Inputs, parsed: PatternParsed): JobPlan {
  const q = inputs.q as Heads;
  const { B, H, Nq, Dv } = parsed.problem;
  const plan = kernelPlan(parsed.patterns, parsed.causal);
  const x = runtime.exports as unknown as PatternKernels & Runtime['exports'];
  const out = { H, N: Nq, D: Dv, layout: q.layout };
  const [pack, residues, tile, rows, gathered, record] = [0, 1, 2, 3, 4, 5].map(scratch);
  const buffers = { pack, residues, tile, rows, gathered, record };
  return {
    what: parsed.patterns.rules.map((r) => r.type).join('+'),
    parts: [inputs.q!.data, inputs.k!.data, inputs.v!.data, B * H * Nq * Dv * 4, ...passParts(plan, parsed)],
    output: 3,
    length: B * H * Nq * Dv,
    scratch: passBufferBytes(x, plan, parsed.problem, true),
    jobs: ([qp, kp, vp, op, ...rest]) =>
      Array.from({ length: B * H }, (_, bh) => {
        const [b, h] = [Math.floor(bh / H), bh % H];
        return passCalls(plan, parsed, inputs, [qp, kp, vp, ...rest], buffers, b, h, { at: op + headOffset(out, b, h, H) * 4, ld: rowStride(out) });
      }),
  };
}

/** The SIMD kernel of every pattern variant: {@link patternPlan} on this thread. */
export function patternKernel(runtime: Runtime, inputs: Inputs, parsed: PatternParsed): Float32Array {
  return runtime.execute(patternPlan(runtime, inputs, parsed));
}
