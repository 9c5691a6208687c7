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
  /**
   * Where the output is instead, when it is not one part: segments
   * `[pointer, floats]` read in order (they add up to `length`).
   */
  gather?(pointers: readonly number[]): readonly (readonly [number, number])[];
  /** Byte sizes of the scratch buffers each thread needs (reused from job to job). */
  readonly scratch: readonly number[];
  /** The jobs, given the parts' pointers. */
  jobs(pointers: readonly number[]): Job[];
  /**
   * Later stages (a backward pass's key-block and query-block sweeps after
   * its row statistics): each stage's jobs start once every job before it
   * has finished, and are independent of each other.
   */
  readonly stages?: readonly ((pointers: readonly number[]) => Job[])[];
}

/** Where each of `lengths` starts when they lie side by side (a plan's outputs, scratch buffers). */
export function sideBySide(lengths: readonly number[]): number[] {
  let at = 0;
  return lengths.map((length) => {
    const start = at;
    at += length;
    return start;
  });
}

/** A plan's jobs, stage by stage: its `jobs`, then each of its `stages`. */
export function planStages(plan: JobPlan, pointers: readonly number[]): Job[][] {
  return [plan.jobs(pointers), ...(plan.stages ?? []).map((stage) => stage(pointers))];
}

export const scratch = (index: number): ScratchRef => ({ scratch: index });

/** Runs one job against `exports`, scratch references resolved to `scratchPointers`. */
export function runJob(exports: Record<string, unknown>, job: Job, scratchPointers: readonly number[]): void {
  for (const [name, ...args] of job) {
    const fn = exports[name] as (...a: number[]) => unknown;
    fn(...args.map((a) => (typeof a === 'number' ? a : scratchPointers[a.scratch])));
  }
}

/**
 * Several plans as one (the heads of `mixed`): their parts side by side (an
 * input array that several plans share, such as the kv head of a group of
 * query heads, copied in once), each thread with the scratch buffers of them
 * all, their jobs (and stages, stage by stage) with pointers and scratch
 * references moved to match.
 */
export function combinePlans(what: string, plans: readonly JobPlan[], length: number, gather: (outputs: readonly number[]) => readonly (readonly [number, number])[]): JobPlan {
  const parts: FramePart[] = [];
  const arrayPart = new Map<FramePart, number>();
  // where each plan's parts sit among the combined ones
  const partIndex = plans.map((plan) =>
    plan.parts.map((part) => {
      if (typeof part !== 'number' && arrayPart.has(part)) return arrayPart.get(part)!;
      if (typeof part !== 'number') arrayPart.set(part, parts.length);
      parts.push(part);
      return parts.length - 1;
    }),
  );
  const scratchStart = sideBySide(plans.map((plan) => plan.scratch.length));
  const slice = (pointers: readonly number[], i: number) => partIndex[i].map((at) => pointers[at]);
  const moved = (jobs: Job[], i: number) =>
    jobs.map((job): Job => job.map(([name, ...args]): KernelCall => [name, ...args.map((a) => (typeof a === 'number' ? a : scratch(a.scratch + scratchStart[i])))]));
  // stage s runs every plan's stage s (a plan without one adds nothing), after all of stage s - 1
  const stageCount = Math.max(0, ...plans.map((plan) => plan.stages?.length ?? 0));
  const stages = Array.from({ length: stageCount }, (_, s) => (pointers: readonly number[]) =>
    plans.flatMap((plan, i) => (plan.stages && s < plan.stages.length ? moved(plan.stages[s](slice(pointers, i)), i) : [])),
  );
  return {
    what,
    parts,
    output: 0,
    length,
    scratch: plans.flatMap((p) => p.scratch),
    jobs: (pointers) => plans.flatMap((plan, i) => moved(plan.jobs(slice(pointers, i)), i)),
    ...(stageCount > 0 ? { stages } : {}),
    gather: (pointers) => gather(plans.map((plan, i) => slice(pointers, i)[plan.output])),
  };
}
