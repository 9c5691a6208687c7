/**
 * The WebAssembly backend: the module's exports bound once, the arena over
 * its memory, and the one call shape every kernel shares: copy inputs in,
 * run the kernel, copy the output out. With threads, the memory is shared
 * and a pool of threads runs the jobs of a plan.
 */
import { Arena, MAX_PAGES, type FramePart } from './arena.js';
import type { Exports } from './exports.js';
import { planStages, runJob, type JobPlan } from './jobs.js';
import { instantiateModule, type WasmSource } from './load.js';
import { Pool } from './pool.js';

export class Runtime {
  private pool: Promise<Pool> | null = null;
  private disposed = false;
  /** Runs on the pool, one at a time (their frames must nest). */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly exports: Exports,
    readonly arena: Arena,
    private readonly module: WebAssembly.Module,
    /** Pool threads: 1 means no pool. */
    readonly threads: number,
  ) {}

  /**
   * The default build is the relaxed-SIMD one when `relaxed`; a given
   * `source` is used as it is (with threads it must be a shared-memory build).
   */
  static async create(source?: WasmSource, relaxed = false, threads = 1): Promise<Runtime> {
    const shared = threads > 1;
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared });
    const { exports, module } = await instantiateModule(source, memory, relaxed, shared);
    return new Runtime(exports, new Arena(memory, exports.heapBase()), module, threads);
  }

  /** Whether the loaded build fuses multiply-adds (relaxed SIMD). */
  get relaxedSimd(): boolean {
    return this.exports.relaxedSimd() !== 0;
  }

  /**
   * One kernel call: `parts` are the buffers (inputs to copy in, byte counts
   * for outputs and scratch); `run` gets their pointers. The output is the
   * part at index `output`, `length` floats, copied out.
   */
  call(what: string, parts: readonly FramePart[], output: number, length: number, run: (p: number[]) => void): Float32Array {
    return this.arena.frame(parts, what, (p) => {
      run(p);
      return this.arena.readF32(p[output], length);
    });
  }

  /** Runs a plan's jobs one after the other on this thread, with one set of scratch buffers. */
  execute(plan: JobPlan): Float32Array {
    return this.arena.frame([...plan.parts, ...plan.scratch], frameName(plan), (p) => {
      const scratchPointers = p.slice(plan.parts.length);
      for (const jobs of planStages(plan, p)) for (const job of jobs) runJob(this.exports, job, scratchPointers);
      return this.readOutput(plan, p);
    });
  }

  /**
   * Runs a plan's jobs on the pool, each thread with scratch buffers of its
   * own: the same calls as {@link execute}, so the same bits.
   */
  executeParallel(plan: JobPlan): Promise<Float32Array> {
    const run = async (): Promise<Float32Array> => {
      const pool = await this.startPool();
      const copies = Array.from({ length: pool.size }, () => plan.scratch).flat();
      // the threads' job counter, then each thread's scratch buffers
      return this.arena.frameAsync([...plan.parts, 4, ...copies], frameName(plan), async (p) => {
        const counter = p[plan.parts.length];
        const base = plan.parts.length + 1;
        const per = plan.scratch.length;
        const scratchPointers = Array.from({ length: pool.size }, (_, i) => p.slice(base + i * per, base + (i + 1) * per));
        for (const jobs of planStages(plan, p)) {
          Atomics.store(new Int32Array(this.arena.memory.buffer), counter >> 2, 0);
          await pool.run(jobs, scratchPointers, counter);
        }
        return this.readOutput(plan, p);
      });
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** A copy of the plan's output. */
  private readOutput(plan: JobPlan, pointers: readonly number[]): Float32Array {
    if (!plan.gather) return this.arena.readF32(pointers[plan.output], plan.length);
    const out = new Float32Array(plan.length);
    let at = 0;
    for (const [pointer, floats] of plan.gather(pointers)) {
      out.set(new Float32Array(this.arena.memory.buffer, pointer, floats), at);
      at += floats;
    }
    return out;
  }

  private startPool(): Promise<Pool> {
    if (this.disposed) return Promise.reject(new Error('wasm-attention: run() after dispose(): the threads were stopped'));
    this.pool ??= Pool.create(this.threads, this.module, this.arena.memory);
    return this.pool;
  }

  /** Stops the pool's threads for good (the synchronous kernels keep working). */
  dispose(): void {
    this.disposed = true;
    void this.pool?.then((pool) => pool.dispose());
    this.pool = null;
  }

}

/** A plan's frame in error messages: the inputs whose sizes it follows. */
const frameName = (plan: JobPlan): string => `q, k, v (${plan.what})`;

/** Rows that one job takes at least: re-packing a head per job then costs under 0.2%. */
const JOB_ROWS = 256;

/** A head's rows cut into jobs of whole row chunks (so that every split gives the same bits), each of JOB_ROWS rows or more. */
export function rowJobs(Nq: number, Nk: number, width: number): [number, number][] {
  const jobs: [number, number][] = [];
  forRowChunks(Nq, Nk, width, (start, end) => {
    const last = jobs[jobs.length - 1];
    if (last && last[1] - last[0] < JOB_ROWS) last[1] = end;
    else jobs.push([start, end]);
  });
  return jobs;
}

/**
 * {@link rowJobs} as jobs of one or two row ranges: with a causal mask a
 * row's work grows with its position, so the first range goes with the last,
 * the second with the last but one, and so on: jobs of equal work, so that
 * no thread is left with a long job after the others have finished.
 */
export function balancedRowJobs(Nq: number, Nk: number, width: number, causal: boolean): [number, number][][] {
  const ranges = rowJobs(Nq, Nk, width);
  if (!causal) return ranges.map((range) => [range]);
  const jobs: [number, number][][] = [];
  for (let a = 0, b = ranges.length - 1; a <= b; a++, b--) jobs.push(a === b ? [ranges[a]] : [ranges[a], ranges[b]]);
  return jobs;
}

/** Rows the kernels process together (TILE_GROUP tiles of 8 rows): chunks are multiples of it. */
const ROW_GROUP = 32;

/**
 * Splits a head's rows into calls of about 16 million multiply-adds each
 * (and whole row groups): V8 tiers a WebAssembly function up between calls,
 * never within one, so a long first call would otherwise run entirely in
 * baseline code.
 */
export function forRowChunks(Nq: number, Nk: number, width: number, body: (start: number, end: number) => void): void {
  const rows = ROW_GROUP * Math.max(1, Math.ceil(2 ** 24 / Math.max(1, Nk * width) / ROW_GROUP));
  for (let start = 0; start < Nq; start += rows) body(start, Math.min(Nq, start + rows));
}
