/**
 * Kernel work as data, so that one plan runs the same on one thread or on
 * many: a job is a list of export calls that run in order on one thread;
 * the jobs of a plan are independent of each other. Each thread gets its own
 * copy of the plan's scratch buffers, named in calls by {@link scratch}.
 */
import type { FramePart } from './arena.js';

/** The i-th scratch buffer of the thread that runs the call. */
export interface ScratchRef {
  readonly scratch: number;
}

export type Arg = number | ScratchRef;
/** An export's name and its arguments. */
export type KernelCall = readonly [string, ...Arg[]];
export type Job = readonly KernelCall[];

export interface JobPlan {
  /** What the call is, for error messages. */
  readonly what: string;
  /** The frame's buffers: inputs to copy in, byte counts for outputs. */
  readonly parts: readonly FramePart[];
  /** Which part is the output, and its length in floats. */
  readonly output: number;
  readonly length: number;
  /** Byte sizes of the scratch buffers each thread needs (reused from job to job). */
  readonly scratch: readonly number[];
  /** The jobs, given the parts' pointers. */
  jobs(pointers: readonly number[]): Job[];
}

export const scratch = (index: number): ScratchRef => ({ scratch: index });

/** Runs one job against `exports`, scratch references resolved to `scratchPointers`. */
export function runJob(exports: Record<string, unknown>, job: Job, scratchPointers: readonly number[]): void {
  for (const [name, ...args] of job) {
    const fn = exports[name] as (...a: number[]) => unknown;
    fn(...args.map((a) => (typeof a === 'number' ? a : scratchPointers[a.scratch])));
  }
}
