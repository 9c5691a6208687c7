/**
 * `lsh`: Reformer's LSH attention (Kitaev et al. 2020), shared query-key
 * vectors hashed by random rotations into buckets; each query attends its
 * bucket-sorted chunk and the chunk before it. Math: `src/reference/lsh.ts`;
 * SIMD kernel: `assembly/variants/lsh.ts` (hash GEMM, counting sort, the
 * online-softmax engine over gathered chunk pairs).
 */
import { lshAttention, lshWeights, type LshRotations } from '../reference/lsh.js';
import { Rng, seedOf } from '../prng.js';
import { asTensor, describe, type Heads, type Tensor } from '../tensor.js';
import { declareOptions } from '../options.js';
import { checkFits, checkQKV, commonOptions, drawSizes, headParam, parseCommon, requiredNumber, type Common, type CommonOptions, type Options } from '../validate.js';
import type { Parsed, Variant } from './variant.js';
import type { Runtime } from '../runtime/runtime.js';
import type { Exports } from '../runtime/exports.js';
import { runJob, scratch, type Job, type JobPlan, type KernelCall, type ScratchRef } from '../runtime/jobs.js';

/**
 * Options of `lsh`. `k` must be `null` (or q itself): q holds the shared
 * query-key vectors. Give the hash either as `rotations` or as `rounds`,
 * `buckets` and `seed`. `causal` hides future keys (`j <= i`), but the
 * buckets and chunks are computed over the whole sequence, so a future
 * token can still change which past keys a query sees.
 */
export interface LshOptions extends CommonOptions {
  /** c >= 1: the chunk length the bucket-sorted positions are cut into (N or more: one chunk per round). */
  bucketSize: number;
  /**
   * The random rotations `[H|1, R, D, nb/2]` (or `[R, D, nb/2]`, shared by
   * all heads): R hash rounds into nb buckets. Excludes `rounds`, `buckets`
   * and `seed`.
   */
  rotations?: Tensor;
  /** R hash rounds (1 to 1000), when the rotations are drawn from `seed`. */
  rounds?: number;
  /** nb buckets (even, 2 to 65536), when the rotations are drawn from `seed`. */
  buckets?: number;
  /**
   * Integer seed of the drawn rotations: `R * D * nb/2` standard normals of
   * the library's `Rng(seed)` (`normal()`), taken in row-major `[R, D, nb/2]`
   * order, rounded to float32 and shared by all heads. See `drawLshRotations`.
   */
  seed?: number;
}

/** Parsed `lsh` options. */
export interface LshParsed extends Parsed, Common {
  readonly bucketSize: number;
  readonly rotations: LshRotations;
}

/**
 * The rotations `lsh` draws for `{ rounds, buckets, seed }`: a `[R, D, nb/2]`
 * tensor of standard normals from `Rng(seed)`, row-major, shared by all heads.
 */
export function drawLshRotations(seed: number, rounds: number, D: number, buckets: number): Tensor {
  drawSizes({ rounds, D, buckets }, 'lshRotations', ([r, d, nb]) => (r * d * nb) / 2);
  if (buckets % 2 !== 0) throw new RangeError(`lshRotations.buckets: expected an even integer >= 2, received ${buckets}`);
  const rng = new Rng(seedOf(seed, 'lshRotations.seed'));
  const data = new Float32Array(rounds * D * (buckets / 2));
  for (let t = 0; t < data.length; t++) data[t] = rng.normal();
  return { data, dims: [rounds, D, buckets / 2] };
}

/** `options.rotations`: `[H|1, R, D, nb/2]` or `[R, D, nb/2]`, with D the input's. */
function givenRotations(value: unknown, H: number, D: number): LshRotations {
  const name = 'options.rotations';
  const { dims } = asTensor(value, name);
  if (dims.length !== 3 && dims.length !== 4) {
    throw new RangeError(`${name}.dims: expected [H|1, R, D, nb/2] = [${H}|1, R, ${D}, nb/2] or [R, D, nb/2], received [${dims.join(', ')}]`);
  }
  const [R, rowD, half] = dims.slice(-3) as [number, number, number];
  if (rowD !== D || R < 1 || half < 1) {
    throw new RangeError(`${name}.dims: expected [H|1, R, D, nb/2] with R >= 1, D = ${D} (the feature size of q) and nb/2 >= 1, received [${dims.join(', ')}]`);
  }
  const { data, headStride } = headParam(value, name, H, [R, D, half], 'R, D, nb/2');
  return { data, headStride, rounds: R, buckets: 2 * half };
}

/**
 * The most drawn rounds and buckets: the hash costs R N D nb, and no value
 * stands for a larger one (each round and bucket changes the result), so
 * past these a count is refused rather than left to scale the work.
 */
export const MAX_LSH_ROUNDS = 1000;
export const MAX_LSH_BUCKETS = 2 ** 16;

/** `{ rounds, buckets, seed }`: rotations drawn by `drawLshRotations`. */
function drawnRotations(options: Options, D: number): LshRotations {
  const rounds = requiredNumber(options, 'rounds', { integer: true, min: 1, max: MAX_LSH_ROUNDS });
  const buckets = requiredNumber(options, 'buckets', { integer: true, min: 2, max: MAX_LSH_BUCKETS });
  if (buckets % 2 !== 0) throw new RangeError(`options.buckets: expected an even integer >= 2, received ${buckets}`);
  if (options.seed === undefined) throw new TypeError('options.seed: required option is missing (or give options.rotations)');
  checkFits(rounds * D * (buckets / 2) * 4, 'options.rounds, options.buckets', `the rotations [R, D, nb/2] = [${rounds}, ${D}, ${buckets / 2}]`);
  const seed = seedOf(options.seed, 'options.seed');
  return { data: drawLshRotations(seed, rounds, D, buckets).data, headStride: 0, rounds, buckets };
}

/** The kernel's exports (assembly/variants/lsh.ts). */
interface LshKernels extends Exports {
  lshHashBytes(D: number, R: number, half: number): number;
  lshPackRotations(rot: number, D: number, R: number, half: number, hash: number): void;
  lshHashRows(x: number, N: number, D: number, R: number, half: number, hash: number, buckets: number, rowStart: number, rowEnd: number): void;
  lshSortRound(buckets: number, N: number, nb: number, r: number, counts: number, sorted: number): void;
  lshWorkBytes(c: number, N: number, D: number, Dv: number): number;
  lshAccBytes(N: number, Dv: number): number;
  lshStart(acc: number, N: number, Dv: number): void;
  lshChunks(
    x: number, v: number, N: number, D: number, Dv: number, scale: number, causal: number, keyPadding: number,
    inv: number, sorted: number, R: number, c: number, work: number, acc: number, chunkStart: number, chunkEnd: number,
  ): void;
  lshFinish(acc: number, N: number, Dv: number, out: number): void;
}

/** Milliseconds spent in each phase of `lshKernel`, summed over heads (for the benchmark). */
export interface LshPhases {
  /** Hashing (GEMM and argmax), the counting sorts and the key norms. */
  hash: number;
  /** Attention over the chunk pairs and the merge of the rounds. */
  attend: number;
  /** The clock, in ms (default `performance.now`). */
  clock?: () => number;
}

/** Multiply-adds per export call: V8 tiers a WebAssembly function up between calls, not within one. */
const CALL_WORK = 2 ** 24;

/** The scratch buffers of one head's forward calls, from scratch index `first` on (lshWorkBytes' work, the merge state acc). */
export interface LshBuffers {
  readonly hash: ScratchRef;
  readonly buckets: ScratchRef;
  readonly sorted: ScratchRef;
  readonly counts: ScratchRef;
  readonly inv: ScratchRef;
  readonly work: ScratchRef;
  readonly acc: ScratchRef;
}

export function lshBuffers(first: number): LshBuffers {
  const [hash, buckets, sorted, counts, inv, work, acc] = [0, 1, 2, 3, 4, 5, 6].map((i) => scratch(first + i));
  return { hash, buckets, sorted, counts, inv, work, acc };
}

/** Bytes of the {@link LshBuffers}, in their order. */
export function lshBufferBytes(x: Exports, N: number, D: number, Dv: number, p: LshParsed): number[] {
  const k = x as LshKernels;
  const { rounds: R, buckets: nb } = p.rotations;
  return [k.lshHashBytes(D, R, nb / 2), R * N * 4, R * N * 4, (nb + 1) * 4, N * 4, k.lshWorkBytes(p.bucketSize, N, D, Dv), k.lshAccBytes(N, Dv)];
}

/**
 * The calls of one head's forward up to its merge state (shared with the
 * backward pass, so that both see the same buckets and chunks): pack the
 * head's rotations (at `rot`), hash, sort every round, the key norms, then
 * every chunk's attention merged into `acc`. x, v: the head's rows; pad: its
 * key padding or 0.
 */
export function lshHeadCalls(xHead: number, vHead: number, pad: number, rot: number, N: number, D: number, Dv: number, p: LshParsed, b: LshBuffers): KernelCall[] {
  const { rounds: R, buckets: nb } = p.rotations;
  const half = nb / 2;
  const c = p.bucketSize;
  const chunkCount = R * Math.ceil(N / c);
  const cEff = Math.min(c, N);
  const chunksPerCall = Math.max(1, Math.floor(CALL_WORK / (2 * cEff * cEff * (D + Dv))));
  const rowsPerCall = 64 * Math.max(1, Math.floor(CALL_WORK / (64 * D * R * half)));
  const job: KernelCall[] = [['lshPackRotations', rot, D, R, half, b.hash]];
  for (let start = 0; start < N; start += rowsPerCall) job.push(['lshHashRows', xHead, N, D, R, half, b.hash, b.buckets, start, Math.min(N, start + rowsPerCall)]);
  for (let r = 0; r < R; r++) job.push(['lshSortRound', b.buckets, N, nb, r, b.counts, b.sorted]);
  job.push(['inverseNorms', xHead, N, D, b.inv], ['lshStart', b.acc, N, Dv]);
  for (let start = 0; start < chunkCount; start += chunksPerCall) {
    job.push([
      'lshChunks', xHead, vHead, N, D, Dv, p.scale, p.causal ? 1 : 0, pad,
      b.inv, b.sorted, R, c, b.work, b.acc, start, Math.min(chunkCount, start + chunksPerCall),
    ]);
  }
  return job;
}

/**
 * The SIMD kernel of `lsh` as a plan, x `[B, H, N, D]` (queries and keys), v
 * `[B, H, N, Dv]`: one job per batch and head, which packs the head's
 * rotations, hashes, sorts and attends in its thread's scratch. (A head is
 * not split: each position merges its rounds in chunk order.)
 */
export function lshPlan(runtime: Runtime, x: Heads, v: Heads, p: LshParsed): JobPlan {
  const { B, H, N, D } = x;
  const Dv = v.D;
  const outLength = B * H * N * Dv;
  const pad = p.keyPadding;
  const buffers = lshBuffers(0);
  return {
    what: 'lsh',
    parts: [x.data, v.data, p.rotations.data, outLength * 4, pad ?? 0],
    output: 3,
    length: outLength,
    scratch: lshBufferBytes(runtime.exports, N, D, Dv, p),
    jobs: ([xp, vp, rotp, out, padp]) => {
      if (outLength === 0) return [];
      return Array.from({ length: B * H }, (_, bh): Job => {
        const b = Math.floor(bh / H);
        const h = bh % H;
        const rot = rotp + h * p.rotations.headStride * 4;
        const job = lshHeadCalls(xp + bh * N * D * 4, vp + bh * N * Dv * 4, pad ? padp + b * N : 0, rot, N, D, Dv, p, buffers);
        job.push(['lshFinish', buffers.acc, N, Dv, out + bh * N * Dv * 4]);
        return job;
      });
    },
  };
}

/** Calls of the hashing phase (the rest is attention). */
const HASH_CALLS = new Set(['lshPackRotations', 'lshHashRows', 'lshSortRound', 'inverseNorms']);

/**
 * The SIMD kernel of `lsh`: {@link lshPlan} on this thread; `phases`, when
 * given, accumulates the time per phase (the same calls, timed one by one).
 */
export function lshKernel(runtime: Runtime, x: Heads, v: Heads, p: LshParsed, phases?: LshPhases): Float32Array {
  const plan = lshPlan(runtime, x, v, p);
  if (!phases) return runtime.execute(plan);
  const clock = phases.clock ?? (() => performance.now());
  return runtime.arena.frame([...plan.parts, ...plan.scratch], plan.what, (pointers) => {
    const scratchPointers = pointers.slice(plan.parts.length);
    for (const job of plan.jobs(pointers)) {
      for (const call of job) {
        const t0 = clock();
        runJob(runtime.exports, [call], scratchPointers);
        phases[HASH_CALLS.has(call[0]) ? 'hash' : 'attend'] += clock() - t0;
      }
    }
    return runtime.arena.readF32(pointers[plan.output], plan.length);
  });
}

export const lsh: Variant<LshParsed> = {
  name: 'lsh',
  inputs: { q: 'required', k: 'shared' },
  options: declareOptions<LshOptions>()({
    ...commonOptions,
    bucketSize: { type: '`number`', doc: 'chunk length c the bucket-sorted positions are cut into' },
    rotations: { type: '`Tensor`', doc: '`[H|1, R, D, nb/2]`: R hash rounds into nb buckets (or `rounds`, `buckets`, `seed`)' },
    rounds: { type: '`number`', doc: 'hash rounds R, with `seed`' },
    buckets: { type: '`number`', doc: 'buckets nb (even), with `seed`' },
    seed: { type: '`number`', doc: 'seed of the drawn rotations' },
  }),
  parse(inputs, options) {
    const x = inputs.q as Heads;
    checkQKV(x, x, inputs.v, 'q');
    const problem = { B: x.B, H: x.H, Hkv: x.H, Nq: x.N, Nk: x.N, D: x.D, Dv: inputs.v ? inputs.v.D : x.D };
    const common = parseCommon(options, x.D, x.B, x.N);
    // a chunk of N or more positions holds the whole round: the same chunks as c = N
    const bucketSize = Math.min(requiredNumber(options, 'bucketSize', { integer: true, min: 1 }), Math.max(1, x.N));
    let rotations: LshRotations;
    if (options.rotations !== undefined) {
      for (const drawOnly of ['rounds', 'buckets', 'seed']) {
        if (options[drawOnly] !== undefined) {
          throw new TypeError(`options.${drawOnly}: not used when options.rotations is given, expected undefined, received ${describe(options[drawOnly])}`);
        }
      }
      rotations = givenRotations(options.rotations, x.H, x.D);
    } else {
      rotations = drawnRotations(options, x.D);
    }
    return { problem, ...common, bucketSize, rotations };
  },
  reference({ q, v }, p) {
    return lshAttention(q!, v!, p);
  },
  weights({ q }, p) {
    const { B, H, Nq, Nk } = p.problem;
    return { data: lshWeights(q!, p), dims: [B, H, Nq, Nk] };
  },
  plan(runtime, { q, v }, p) {
    return lshPlan(runtime, q!, v!, p);
  },
  kernel(runtime, { q, v }, p) {
    return runtime.execute(lshPlan(runtime, q!, v!, p));
  },
};
