/**
 * `sinkhorn`: Sparse Sinkhorn attention (Tay et al. 2020). Each block of b
 * queries attends a learned soft permutation of the key blocks (one sorted
 * block) and its own block. Math: `src/reference/sinkhorn.ts`.
 */
import { sinkhornAttention, sinkhornWeights, sortMatrices, type SinkhornSettings, type SortLogits } from '../reference/sinkhorn.js';
import { declareOptions } from '../options.js';
import { asTensor, headOffset, type Tensor } from '../tensor.js';
import { commonOptions, iterationCount, optionalNumber, parseCommon, requiredNumber, type Common, type CommonOptions } from '../validate.js';
import { qkvProblem } from './full.js';
import { runJob, scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import type { Runtime } from '../runtime/runtime.js';
import type { Dense, Inputs, Parsed, Variant } from './variant.js';

/** Options of `sinkhorn` (needs as many keys as queries, N). */
export interface SinkhornOptions extends CommonOptions {
  /** b >= 1, the block length; N must be a multiple of it (nb = N / b blocks). */
  blockSize: number;
  /** Divides the sort logits before normalisation (> 0); default 0.75. */
  temperature?: number;
  /** Sinkhorn balancing steps (rows then columns, integer from 0 to 1000) when not causal; default 7. */
  iterations?: number;
  /**
   * The sort network's output `[B|1, H|1, nb, nb]`: logits `R_ut` of query
   * block u taking key block t. Default: `scale * qbar_u . kbar_t` with
   * `qbar`, `kbar` the block means of q and k (causal: `qbar_u` is the
   * block's first query).
   */
  sortLogits?: Tensor;
}

/** Parsed `sinkhorn` options. */
export interface SinkhornParsed extends Parsed, SinkhornSettings {}

/** `options.sortLogits`: `[B|1, H|1, nb, nb]`. */
function givenSortLogits(value: unknown, B: number, H: number, nb: number): SortLogits {
  const name = 'options.sortLogits';
  const { data, dims } = asTensor(value, name);
  const [batches, heads, rows, columns] = dims;
  if (dims.length !== 4 || (batches !== 1 && batches !== B) || (heads !== 1 && heads !== H) || rows !== nb || columns !== nb) {
    throw new RangeError(`${name}.dims: expected [B|1, H|1, nb, nb] = [${B}|1, ${H}|1, ${nb}, ${nb}], received [${dims.join(', ')}]`);
  }
  return { data, batchStride: batches === 1 ? 0 : heads * nb * nb, headStride: heads === 1 ? 0 : nb * nb };
}

/**
 * The sort matrices S `[B, H, nb, nb]` a `sinkhorn` call uses (row u: how
 * much of each key block t goes into query block u's sorted block), for
 * tests and pictures. Not causal, S is doubly stochastic up to the
 * Sinkhorn iterations' convergence; causal, row u spreads over t < u.
 */
export function sinkhornSortMatrices(inputs: Inputs, parsed: SinkhornParsed): Dense {
  const { B, H, Nq } = parsed.problem;
  const nb = Nq / parsed.blockSize;
  return { data: Float32Array.from(sortMatrices(inputs.q!, inputs.k!, parsed)), dims: [B, H, nb, nb] };
}

/** The kernel's exports (assembly/variants/sinkhorn.ts), besides the core's packBytes and groupBytes. */
interface SinkhornKernels {
  packBytes(Nk: number, D: number, Dv: number): number;
  groupBytes(D: number, Dv: number): number;
  sinkhornScratchBytes(N: number, b: number, D: number): number;
  sinkhornStripBytes(N: number, b: number): number;
  sinkhornSortMatrix(
    q: number, k: number, N: number, b: number, D: number, scale: number, temperature: number,
    iterations: number, causal: number, logits: number, scratch: number,
  ): void;
  sinkhornStripWidth(): number;
  sinkhornSortColumns(
    x: number, width: number, N: number, b: number, causal: number, scratch: number, strip: number, xs: number, colStart: number, colEnd: number,
  ): void;
  sinkhornAttendBlocks(
    q: number, k: number, v: number, ks: number, vs: number, out: number, N: number, b: number, D: number, Dv: number,
    scale: number, causal: number, keyPadding: number, scratch: number, pack: number, tiles: number, uStart: number, uEnd: number,
  ): void;
}

/**
 * Opt-in phase clock for benchmarks: when `enabled`, each wasm call adds the
 * milliseconds spent sorting (S, sorted keys and values) and attending.
 */
export const sinkhornProfile = { enabled: false, sortMs: 0, attendMs: 0 };

/** About 16 million multiply-adds per export call (V8 tiers functions up between calls). */
const CALL_WORK = 2 ** 24;

/** Splits [0, count) into ranges of about CALL_WORK / perItem items, multiples of `multiple`. */
export function forRanges(count: number, perItem: number, multiple: number, body: (start: number, end: number) => void): void {
  const step = multiple * Math.max(1, Math.floor(CALL_WORK / Math.max(1, perItem) / multiple));
  for (let start = 0; start < count; start += step) body(start, Math.min(count, start + step));
}

/**
 * The SIMD kernel as a plan of one job per (batch, head): S, the sorted key
 * and value blocks, then block attention, all in the thread's own scratch
 * (S and summaries, the strip, the sorted keys and values, pack, tiles).
 * A head is not split further: every query block's sorted block needs the
 * whole of S, whose Sinkhorn balancing spans all the head's blocks.
 */
function sinkhornPlan(runtime: Runtime, inputs: Inputs, p: SinkhornParsed): JobPlan {
  const q = inputs.q!;
  const k = inputs.k!;
  const v = inputs.v!;
  const { B, H, Nq: N, D, Dv } = p.problem;
  const b = p.blockSize;
  const nb = N / b;
  const x = runtime.exports as unknown as SinkhornKernels;
  const outLength = B * H * N * Dv;
  const pad = p.keyPadding;
  const logits = p.sortLogits;
  const causal = p.causal ? 1 : 0;
  const stripWidth = x.sinkhornStripWidth();
  const [work, strip, ks, vs, pack, tiles] = [0, 1, 2, 3, 4, 5].map(scratch);
  return {
    what: 'sinkhorn',
    parts: [q.data, k.data, v.data, outLength * 4, pad ?? 0, logits?.data ?? 0],
    output: 3,
    length: outLength,
    scratch: [x.sinkhornScratchBytes(N, b, D), x.sinkhornStripBytes(N, b), N * D * 4, N * Dv * 4, x.packBytes(2 * b, D, Dv), x.groupBytes(D, Dv)],
    jobs: ([qp, kp, vp, out, padp, logitsp]) =>
      Array.from({ length: B * H }, (_, bh): Job => {
        const batch = Math.floor(bh / H);
        const head = bh % H;
        const qHead = qp + bh * N * D * 4;
        // the kv head that query head h reads (grouped-query attention: shared, in place)
        const kHead = kp + headOffset(k, batch, head, H) * 4;
        const vHead = vp + headOffset(v, batch, head, H) * 4;
        const given = logits ? logitsp + (batch * logits.batchStride + head * logits.headStride) * 4 : 0;
        const job: KernelCall[] = [['sinkhornSortMatrix', qHead, kHead, N, b, D, p.scale, p.temperature, p.iterations, causal, given, work]];
        // whole strips of columns per call, so that results do not depend on the split
        forRanges(b * D, nb * nb, stripWidth, (c0, c1) => job.push(['sinkhornSortColumns', kHead, D, N, b, causal, work, strip, ks, c0, c1]));
        forRanges(b * Dv, nb * nb, stripWidth, (c0, c1) => job.push(['sinkhornSortColumns', vHead, Dv, N, b, causal, work, strip, vs, c0, c1]));
        forRanges(nb, 2 * b * b * (D + Dv), 1, (u0, u1) =>
          job.push([
            'sinkhornAttendBlocks', qHead, kHead, vHead, ks, vs, out + bh * N * Dv * 4, N, b, D, Dv, p.scale, causal,
            pad ? padp + batch * N : 0, work, pack, tiles, u0, u1,
          ]),
        );
        return job;
      }),
  };
}

/**
 * {@link sinkhornPlan} on this thread. With {@link sinkhornProfile} on, the
 * same jobs run with one scratch set as `runtime.execute` runs them, a clock
 * around each call (sorting: S and sorted columns; attending: the blocks).
 */
function sinkhornKernel(runtime: Runtime, inputs: Inputs, p: SinkhornParsed): Float32Array {
  const plan = sinkhornPlan(runtime, inputs, p);
  if (!sinkhornProfile.enabled) return runtime.execute(plan);
  return runtime.arena.frame([...plan.parts, ...plan.scratch], plan.what, (pointers) => {
    const scratchPointers = pointers.slice(plan.parts.length);
    for (const job of plan.jobs(pointers)) {
      for (const call of job) {
        const start = performance.now();
        runJob(runtime.exports, [call], scratchPointers);
        const ms = performance.now() - start;
        if (call[0] === 'sinkhornAttendBlocks') sinkhornProfile.attendMs += ms;
        else sinkhornProfile.sortMs += ms;
      }
    }
    return runtime.arena.readF32(pointers[plan.output], plan.length);
  });
}

/**
 * The sort matrices S `[B, H, nb, nb]` as the wasm kernel computes them
 * (float32, the kernel's own Sinkhorn iterations), for tests and pictures;
 * `sinkhornSortMatrices` gives the float64 reference's.
 */
export function sinkhornKernelSortMatrices(runtime: Runtime, inputs: Inputs, p: SinkhornParsed): Dense {
  const q = inputs.q!;
  const k = inputs.k!;
  const { B, H, Nq: N, D } = p.problem;
  const b = p.blockSize;
  const nb = N / b;
  const nbPad = Math.ceil(nb / 4) * 4;
  const x = runtime.exports as unknown as SinkhornKernels;
  const logits = p.sortLogits;
  const parts = [q.data, k.data, B * H * nb * nb * 4, x.sinkhornScratchBytes(N, b, D), logits?.data ?? 0];
  const data = runtime.call('sinkhorn', parts, 2, B * H * nb * nb, ([qp, kp, out, scratch, logitsp]) => {
    const memory = new Float32Array(runtime.arena.memory.buffer); // kernels never grow memory: the view stays valid
    for (let bh = 0; bh < B * H; bh++) {
      const batch = Math.floor(bh / H);
      const given = logits ? logitsp + (batch * logits.batchStride + (bh % H) * logits.headStride) * 4 : 0;
      const causal = p.causal ? 1 : 0;
      x.sinkhornSortMatrix(qp + bh * N * D * 4, kp + headOffset(k, batch, bh % H, H) * 4, N, b, D, p.scale, p.temperature, p.iterations, causal, given, scratch);
      // S is the scratch's first part, rows nbPad floats apart
      for (let u = 0; u < nb; u++) {
        const from = scratch / 4 + u * nbPad;
        memory.set(memory.subarray(from, from + nb), out / 4 + (bh * nb + u) * nb);
      }
    }
  });
  return { data, dims: [B, H, nb, nb] };
}

export const sinkhorn: Variant<SinkhornParsed> = {
  name: 'sinkhorn',
  inputs: { q: 'required', k: 'required' },
  options: declareOptions<SinkhornOptions>()({
    ...commonOptions,
    blockSize: { type: '`number`', doc: 'block length b; N must be a multiple of it' },
    temperature: { type: '`number`', doc: 'divides the sort logits; default 0.75' },
    iterations: { type: '`number`', doc: 'Sinkhorn balancing steps when not causal; default 7, at most 1000' },
    sortLogits: { type: '`Tensor`', doc: '`[B|1, H|1, nb, nb]`: the sort network\'s output; default from block means of q and k' },
  }),
  parse(inputs, options) {
    const problem = qkvProblem(inputs);
    const { B, H, Nq, Nk, D } = problem;
    if (Nk !== Nq) throw new RangeError(`k.dims: sinkhorn needs as many keys as queries, expected Nk = ${Nq}, received ${Nk}`);
    const common: Common = parseCommon(options, D, B, Nk);
    const given = requiredNumber(options, 'blockSize', { integer: true, min: 1 });
    if (Nq % given !== 0) throw new RangeError(`options.blockSize: expected a divisor of N = ${Nq}, received ${given}`);
    // N = 0 has no block whatever the size divides it: 1 keeps the kernels' sizes small
    const blockSize = Nq === 0 ? 1 : given;
    const temperature = optionalNumber(options, 'temperature', 0.75, { above: 0, float32: true });
    const iterations = optionalNumber(options, 'iterations', 7, iterationCount);
    const sortLogits = options.sortLogits === undefined ? null : givenSortLogits(options.sortLogits, B, H, Nq / blockSize);
    return { problem, ...common, blockSize, temperature, iterations, sortLogits };
  },
  reference({ q, k, v }, p) {
    return sinkhornAttention(q!, k!, v!, p);
  },
  weights({ q, k }, p) {
    const { B, H, Nq, Nk } = p.problem;
    return { data: sinkhornWeights(q!, k!, p), dims: [B, H, Nq, Nk] };
  },
  plan: sinkhornPlan,
  kernel: sinkhornKernel,
};
