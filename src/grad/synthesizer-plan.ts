/**
 * The SIMD backward pass of `synthesizer` (SPEC "Gradients") as a plan
 * (assembly/grad/synthesizer.ts, assembly/grad/slots.ts), its output dv
 * then the parameter gradients in {@link paramGradientDims} order:
 *
 * - given logits: one job per head of the logits and range of rows, which
 *   walks the batches and heads that read those rows in order, adding their
 *   logit gradients in place; each (batch, head) gives a range's P^T g as a
 *   partial dv;
 * - factorized and dense: one job per (batch, head), the softmax backward of
 *   slots.ts over the Nk keys with the logits as its product (a b^T, and [h,
 *   1] [w2; b2]^T for dense with h = relu(x w1 + b1)), then dense's way back
 *   through the relu; each gradient a (batch, head) gives is a partial;
 *
 * then a stage sums the partials of each gradient in a fixed order (batch,
 * then head, then range), so the pool gives the bits of one thread.
 */
import { forRowChunks, rowJobs, type Runtime } from '../runtime/runtime.js';
import { sideBySide, scratch, type Arg, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import type { SynthesizerLogits } from '../reference/synthesizer.js';
import type { Heads, Tensor } from '../tensor.js';
import type { Param } from '../validate.js';
import type { Inputs, Problem } from '../variants/variant.js';
import type { SynthesizerParsed } from '../variants/synthesizer.js';
import type { BackwardPlan, GradParams } from './backward.js';

/** The exports of assembly/grad/synthesizer.ts and slots.ts, and the core GEMM and transpose. */
interface SynthesizerGradKernels {
  synthesizerGradRandomBytes(Nk: number): number;
  synthesizerGradRandom(
    logits: number, g: number, vT: number, Nq: number, Nk: number, Dv: number, causal: number, pad: number,
    ws: number, dLogits: number, accumulate: number, dv: number, dvAccumulate: number, i0: number, i1: number,
  ): void;
  synthesizerGradHidden(x: number, w1: number, b1: number, Dm: number, Dh: number, hidden: number, rowStart: number, rowEnd: number): void;
  synthesizerGradKeys(w2: number, b2: number, Dh: number, Nk: number, Nmax: number, keys: number): void;
  synthesizerGradKeysBack(dKeys: number, Dh: number, Nk: number, dw2: number, db2: number): void;
  synthesizerGradRelu(hidden: number, dHidden: number, Nq: number, Dh: number, ld: number, db1: number): void;
  synthesizerGradSum(parts: number, count: number, partStride: number, rows: number, cols: number, ldPart: number, out: number, ldOut: number, outCols: number): void;
  slotGradBytes(P: number, D: number, Dv: number): number;
  slotGradBlock(): number;
  slotGradStart(kRows: number, vRows: number, P: number, D: number, Dv: number, ws: number, dK: number, dV: number): void;
  slotSoftmaxBackward(q: number, g: number, D: number, Dv: number, P: number, scale: number, kRows: number, ws: number, dq: number, dK: number, dV: number, i0: number, i1: number, first: number, real: number, visible: number): void;
  transpose(R: number, C: number, src: number, ldSrc: number, dst: number, ldDst: number): void;
  gemm(M: number, N: number, K: number, a: number, rsA: number, csA: number, b: number, ldb: number, c: number, ldc: number, accumulate: number): void;
}

/** A parameter gradient's name: the option's own (`logits`) or its field's (`factors.a` is `a`). */
export type SynthesizerParamName = 'logits' | 'a' | 'b' | 'x' | 'w1' | 'b1' | 'w2' | 'b2';

/**
 * The parameter gradients of a form in order, each with its dims: `[1|H,
 * ...inner]` as its parameter (1 when the heads share it), dense x `[B, Nq, Dm]`.
 */
export function paramGradientDims(form: SynthesizerLogits, { B, H, Nq, Nk }: Problem): [SynthesizerParamName, number[]][] {
  const heads = (p: Param) => (p.headStride === 0 ? 1 : H);
  if (form.kind === 'random') return [['logits', [heads(form.logits), Nq, Nk]]];
  if (form.kind === 'factorized') return [['a', [heads(form.a), Nq, form.R]], ['b', [heads(form.b), Nk, form.R]]];
  const { Dm, Dh, Nmax } = form;
  return [['x', [B, Nq, Dm]], ['w1', [heads(form.w1), Dm, Dh]], ['b1', [heads(form.b1), Dh]], ['w2', [heads(form.w2), Dh, Nmax]], ['b2', [heads(form.b2), Nmax]]];
}

/** The gradients nested as the options: `logits`, `factors: { a, b }` or `dense: { x, w1, b1, w2, b2 }`. */
export function nestParams(form: SynthesizerLogits, problem: Problem, data: (name: SynthesizerParamName) => Float32Array): GradParams {
  const t = Object.fromEntries(paramGradientDims(form, problem).map(([name, dims]): [string, Tensor] => [name, { data: data(name), dims }]));
  if (form.kind === 'random') return { logits: t.logits };
  if (form.kind === 'factorized') return { factors: { a: t.a, b: t.b } };
  return { dense: { x: t.x, w1: t.w1, b1: t.b1, w2: t.w2, b2: t.b2 } };
}

/** Row ranges of the given logits' jobs at most: each range's dv is a partial (memory: MAX_RANGES dv's). */
const MAX_RANGES = 8;

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** What the plan's parts hold, as pointers, and what every form reads. */
interface Frame {
  readonly v: number;
  readonly g: number;
  readonly out: number;
  readonly pad: number;
  /** Causal: i32 [Nq], the keys each query sees; else 0. */
  readonly visible: number;
  /** Where each gradient starts in out, by name (dv is at out). */
  readonly at: (name: SynthesizerParamName) => number;
  /** The form's own parts. */
  readonly own: readonly number[];
}

/** A form's share of the plan: its parts (inputs, partial gradients), scratch, and jobs. */
interface Wiring {
  readonly parts: JobPlan['parts'];
  readonly scratch: readonly number[];
  jobs(f: Frame): Job[];
  /** The sums of the partials, after every job. */
  sums(f: Frame): Job[];
}

interface Context {
  readonly x: SynthesizerGradKernels;
  readonly p: SynthesizerParsed;
  /** A parameter gradient's heads (1 when shared) by name. */
  readonly heads: (name: SynthesizerParamName) => number;
}

export function synthesizerBackwardPlan(runtime: Runtime, { v }: Inputs, p: SynthesizerParsed, gradOutput: Heads): BackwardPlan {
  const x = runtime.exports as unknown as SynthesizerGradKernels;
  const { B, H, Nq, Nk, Dv } = p.problem;
  const form = p.logits;
  const dims = new Map(paramGradientDims(form, p.problem));
  const names = [...dims.keys()];
  const lengths = [B * H * Nk * Dv, ...names.map((name) => product(dims.get(name)!))];
  const starts = sideBySide(lengths);
  const length = starts[starts.length - 1] + lengths[lengths.length - 1];
  const startOf = (name: SynthesizerParamName) => starts[1 + names.indexOf(name)];
  const context: Context = { x, p, heads: (name) => dims.get(name)![0] };
  const wiring = form.kind === 'random' ? randomWiring(context, form) : form.kind === 'factorized' ? factorizedWiring(context, form) : denseWiring(context, form);
  const visible = p.causal && form.kind !== 'random' ? Int32Array.from({ length: Nq }, (_, i) => Math.min(Nk, Math.max(0, i + Nk - Nq + 1))) : 0;
  const frame = (pointers: readonly number[]): Frame => {
    const [vp, gp, out, pad, visiblep, ...own] = pointers;
    return { v: vp, g: gp, out, pad: p.keyPadding ? pad : 0, visible: visible ? visiblep : 0, at: (name) => out + startOf(name) * 4, own };
  };
  const plan: JobPlan = {
    what: 'synthesizer backward',
    parts: [v!.data, gradOutput.data, length * 4, p.keyPadding ?? 0, visible, ...wiring.parts],
    output: 2,
    length,
    scratch: wiring.scratch,
    jobs: (pointers) => wiring.jobs(frame(pointers)),
    stages: [(pointers) => wiring.sums(frame(pointers))],
  };
  return {
    plan,
    split: (flat) => ({
      q: null,
      k: null,
      v: flat.subarray(0, lengths[0]),
      params: nestParams(form, p.problem, (name) => flat.subarray(startOf(name), startOf(name) + product(dims.get(name)!))),
    }),
  };
}

/** A parameter's head h, as a pointer. */
const headOf = (base: number, param: Param, h: number) => base + h * param.headStride * 4;

/**
 * The sums of a gradient's partials, one job per head of the gradient: its
 * partials are laid out by (batch, head), `floats` each, as `[rows][cols]`;
 * a head of the gradient is `[rows][ldOut]`, zero past cols. A head sums
 * the partials of its batches in order, and a gradient that the heads share
 * those of every (batch, head).
 */
function headSums(ctx: Context, name: SynthesizerParamName, f: Frame, parts: number, floats: number, rows = 1, cols = floats, ldOut = cols): Job[] {
  const { B, H } = ctx.p.problem;
  const heads = ctx.heads(name);
  const [step, count] = heads === 1 ? [1, B * H] : [H, B];
  return Array.from({ length: heads }, (_, h): Job => [
    ['synthesizerGradSum', parts + h * floats * 4, count, step * floats, rows, cols, cols, f.at(name) + h * rows * ldOut * 4, ldOut, ldOut],
  ]);
}

/** Rows of a head in at most MAX_RANGES ranges of whole row chunks (rowJobs' jobs, merged). */
function rowRanges(Nq: number, Nk: number, width: number): [number, number][] {
  const jobs = rowJobs(Nq, Nk, width);
  if (jobs.length === 0) return [];
  const per = Math.ceil(jobs.length / MAX_RANGES);
  return Array.from({ length: Math.ceil(jobs.length / per) }, (_, r): [number, number] => [jobs[r * per][0], jobs[Math.min(jobs.length, (r + 1) * per) - 1][1]]);
}

/** Given logits: jobs by (head of the logits, row range); dv in partials by range unless there is one range. */
function randomWiring(ctx: Context, form: Extract<SynthesizerLogits, { kind: 'random' }>): Wiring {
  const { x, p } = ctx;
  const { B, H, Nq, Nk, Dv } = p.problem;
  const lHeads = ctx.heads('logits');
  // the work of a row per key: dP = g v^T and P^T g
  const width = 2 * Dv;
  const ranges = rowRanges(Nq, Nk, width);
  const direct = ranges.length === 1;
  const dvFloats = B * H * Nk * Dv;
  const [vT, ws] = [0, 1].map(scratch);
  return {
    parts: [form.logits.data, direct ? 0 : ranges.length * dvFloats * 4],
    scratch: [Dv * Nk * 4, x.synthesizerGradRandomBytes(Nk)],
    jobs: (f) => {
      const [logits, dvParts] = f.own;
      const jobs: Job[] = [];
      for (let ph = 0; ph < lHeads; ph++) {
        const dLogits = f.at('logits') + ph * Nq * Nk * 4;
        const readers: [number, number][] = [];
        for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) if (lHeads === 1 || h === ph) readers.push([b, h]);
        ranges.forEach(([from, to], range) => {
          const job: KernelCall[] = [];
          // no batch reads them: zeros
          if (readers.length === 0) job.push(['synthesizerGradSum', 0, 0, 0, to - from, 0, 0, dLogits + from * Nk * 4, Nk, Nk]);
          readers.forEach(([b, h], n) => {
            const bh = b * H + h;
            const dv = direct ? f.out + bh * Nk * Dv * 4 : dvParts + (range * dvFloats + bh * Nk * Dv) * 4;
            job.push(['transpose', Nk, Dv, f.v + bh * Nk * Dv * 4, Dv, vT, Nk]);
            forRowChunks(Nq, Nk, width, (start, end) => {
              if (start < from || end > to) return;
              job.push([
                'synthesizerGradRandom', headOf(logits, form.logits, ph), f.g + bh * Nq * Dv * 4, vT, Nq, Nk, Dv, p.causal ? 1 : 0, f.pad ? f.pad + b * Nk : 0,
                ws, dLogits, n === 0 ? 0 : 1, dv, start === from ? 0 : 1, start, end,
              ]);
            });
          });
          jobs.push(job);
        });
      }
      return jobs;
    },
    // dv of each (batch, head): its ranges in order (none when Nq = 0: zeros)
    sums: (f) => {
      if (direct) return [];
      const [, dvParts] = f.own;
      const floats = Nk * Dv;
      return Array.from({ length: B * H }, (_, bh): Job => [['synthesizerGradSum', dvParts + bh * floats * 4, ranges.length, dvFloats, 1, floats, floats, f.out + bh * floats * 4, floats, floats]]);
    },
  };
}

/** The softmax backward of slots.ts over the Nk keys of one (batch, head), rows in calls of whole blocks. */
function slotRows(ctx: Context, f: Frame, b: number, rows: Arg, g: number, D: number, keys: Arg, ws: Arg, dRows: Arg, dKeys: Arg, dv: number): KernelCall[] {
  const { x } = ctx;
  const { Nq, Nk, Dv } = ctx.p.problem;
  const block = x.slotGradBlock();
  // whole blocks of about 16M multiply-adds per call (V8 tiers a function up between calls)
  const rowsPerCall = block * Math.max(1, Math.floor(2 ** 24 / (Math.max(1, Nk) * 2 * (D + Dv) * block)));
  const calls: KernelCall[] = [];
  for (let i0 = 0; i0 < Nq; i0 += rowsPerCall) {
    calls.push(['slotSoftmaxBackward', rows, g, D, Dv, Nk, 1, keys, ws, dRows, dKeys, dv, i0, Math.min(Nq, i0 + rowsPerCall), 0, f.pad ? f.pad + b * Nk : 0, f.visible]);
  }
  return calls;
}

/** Factorized: jobs by (batch, head), da and db in partials by (batch, head). */
function factorizedWiring(ctx: Context, form: Extract<SynthesizerLogits, { kind: 'factorized' }>): Wiring {
  const { x, p } = ctx;
  const { B, H, Nq, Nk, Dv } = p.problem;
  const { R } = form;
  const ws = scratch(0);
  return {
    parts: [form.a.data, form.b.data, B * H * Nq * R * 4, B * H * Nk * R * 4],
    scratch: [x.slotGradBytes(Nk, R, Dv)],
    jobs: (f) => {
      const [a, bRows, daParts, dbParts] = f.own;
      return Array.from({ length: B * H }, (_, bh): Job => {
        const b = Math.floor(bh / H);
        const h = bh % H;
        const keys = headOf(bRows, form.b, h);
        const dv = f.out + bh * Nk * Dv * 4;
        const db = dbParts + bh * Nk * R * 4;
        return [
          ['slotGradStart', keys, f.v + bh * Nk * Dv * 4, Nk, R, Dv, ws, db, dv],
          ...slotRows(ctx, f, b, headOf(a, form.a, h), f.g + bh * Nq * Dv * 4, R, keys, ws, daParts + bh * Nq * R * 4, db, dv),
        ];
      });
    },
    sums: (f) => {
      const [, , daParts, dbParts] = f.own;
      return [...headSums(ctx, 'a', f, daParts, Nq * R), ...headSums(ctx, 'b', f, dbParts, Nk * R)];
    },
  };
}

/**
 * Dense: jobs by (batch, head): the hidden rows [h, 1] and keys [w2; b2]^T
 * (Nk of its Nmax columns), the softmax backward, then back through the
 * relu; dx, dw1, db1, dw2, db2 in partials by (batch, head).
 */
function denseWiring(ctx: Context, form: Extract<SynthesizerLogits, { kind: 'dense' }>): Wiring {
  const { x, p } = ctx;
  const { B, H, Nq, Nk, Dv } = p.problem;
  const { Dm, Dh, Nmax } = form;
  const D = Dh + 1;
  const [ws, hidden, keys, dKeys, dHidden, w1T] = [0, 1, 2, 3, 4, 5].map(scratch);
  // each (batch, head)'s partials
  const floats = { x: Nq * Dm, w1: Dm * Dh, b1: Dh, w2: Dh * Nk, b2: Nk };
  return {
    parts: [form.x, form.w1.data, form.b1.data, form.w2.data, form.b2.data, ...Object.values(floats).map((n) => B * H * n * 4)],
    scratch: [x.slotGradBytes(Nk, D, Dv), Nq * D * 4, Nk * D * 4, Nk * D * 4, Nq * D * 4, Dh * Dm * 4],
    jobs: (f) => {
      const [xp, w1, b1, w2, b2, dxParts, dw1Parts, db1Parts, dw2Parts, db2Parts] = f.own;
      return Array.from({ length: B * H }, (_, bh): Job => {
        const b = Math.floor(bh / H);
        const h = bh % H;
        const xRows = xp + b * Nq * Dm * 4;
        const w1h = headOf(w1, form.w1, h);
        const dv = f.out + bh * Nk * Dv * 4;
        const job: KernelCall[] = [];
        forRowChunks(Nq, Dm, Dh, (start, end) => job.push(['synthesizerGradHidden', xRows, w1h, headOf(b1, form.b1, h), Dm, Dh, hidden, start, end]));
        job.push(['synthesizerGradKeys', headOf(w2, form.w2, h), headOf(b2, form.b2, h), Dh, Nk, Nmax, keys]);
        job.push(['slotGradStart', keys, f.v + bh * Nk * Dv * 4, Nk, D, Dv, ws, dKeys, dv]);
        job.push(...slotRows(ctx, f, b, hidden, f.g + bh * Nq * Dv * 4, D, keys, ws, dHidden, dKeys, dv));
        // dHidden's first Dh columns: back through the relu, then into w1, b1 and x
        job.push(['synthesizerGradRelu', hidden, dHidden, Nq, Dh, D, db1Parts + bh * floats.b1 * 4]);
        job.push(['gemm', Dm, Dh, Nq, xRows, 1, Dm, dHidden, D, dw1Parts + bh * floats.w1 * 4, Dh, 0]);
        job.push(['transpose', Dm, Dh, w1h, Dh, w1T, Dm]);
        job.push(['gemm', Nq, Dm, Dh, dHidden, D, 1, w1T, Dm, dxParts + bh * floats.x * 4, Dm, 0]);
        job.push(['synthesizerGradKeysBack', dKeys, Dh, Nk, dw2Parts + bh * floats.w2 * 4, db2Parts + bh * floats.b2 * 4]);
        return job;
      });
    },
    sums: (f) => {
      const [, , , , , dxParts, dw1Parts, db1Parts, dw2Parts, db2Parts] = f.own;
      // dx of each batch: its heads in order
      const dx = Array.from({ length: B }, (_, b): Job => [['synthesizerGradSum', dxParts + b * H * floats.x * 4, H, floats.x, 1, floats.x, floats.x, f.at('x') + b * floats.x * 4, floats.x, floats.x]]);
      return [
        ...dx,
        ...headSums(ctx, 'w1', f, dw1Parts, floats.w1),
        ...headSums(ctx, 'b1', f, db1Parts, floats.b1),
        ...headSums(ctx, 'w2', f, dw2Parts, floats.w2, Dh, Nk, Nmax),
        ...headSums(ctx, 'b2', f, db2Parts, floats.b2, 1, Nk, Nmax),
      ];
    },
  };
}
