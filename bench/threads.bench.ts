/**
 * The threads section (`--threads`): every case of `benchCases` (full causal
 * included) through `await attn.run(...)` on a pool of 2 threads against the
 * same call on one thread (`attn.apply`, the plain build), B = 1, H = 8,
 * D = 64, N = 1024 by default. Each size runs in a child process of its own
 * (a size measured after another in the same process ran its cheap cases up
 * to 1.4x slower on 2 threads), holding both instances; the rows are
 * interleaved over rounds (order rotated) and timed in wall time (a pool's
 * CPU time counts both threads). Each speed-up is the median over rounds of
 * that round's one-thread time / two-thread time.
 */
import { createAttention, type Tensor } from 'wasm-attention';
import { fmtMs, sectionInChild, serveSection, table } from './processes.js';
import { median, randomTensor } from './measure.js';
import { benchCases, D, H, variantOf } from './suite.js';

export interface ThreadRow {
  N: number;
  row: string;
  /** Median over rounds of wall ms per call, one thread and two. */
  oneMs: number;
  twoMs: number;
  /** Median over rounds of the one-thread time / the two-thread time, and the rounds' min-max. */
  speedup: number;
  speedupRange: [number, number];
  /** Whether the two outputs agree bit for bit (as `attn.run` promises). */
  sameBits: boolean;
}

/** Wall ms per call of `fn`, over enough calls to fill about `ms`. */
async function wallMs(fn: () => unknown, ms: number): Promise<number> {
  let calls = 0;
  const start = performance.now();
  do {
    await fn();
    calls++;
  } while (performance.now() - start < ms);
  return (performance.now() - start) / calls;
}

/** Every case at one size, in this process. */
async function measureSize(N: number, rounds: number, cases: string[], progress: (message: string) => void): Promise<ThreadRow[]> {
  const one = await createAttention({ backend: 'wasm', threads: 1 });
  const two = await createAttention({ backend: 'wasm', threads: 2 });
  try {
    const q = randomTensor([1, H, N, D], 1);
    const k = randomTensor([1, H, N, D], 2);
    const v = randomTensor([1, H, N, D], 3);
    const runnable = cases.filter((id) => (benchCases[id].maxN?.N ?? Infinity) >= N);
    const calls = runnable.map((id) => {
      const c = benchCases[id];
      const options = c.options({ N, H, D, q, k });
      const qIn: Tensor | null = c.nullInputs === 'qk' ? null : q;
      const kIn: Tensor | null = c.nullInputs ? null : k;
      const name = variantOf(id) as Parameters<typeof one.apply>[0];
      return [() => one.apply(name, qIn, kIn, v, options), () => two.run(name, qIn, kIn, v, options)] as const;
    });
    const sameBits = await Promise.all(
      calls.map(async ([oneCall, twoCall]) => {
        const [a, b] = [oneCall().data, (await twoCall()).data];
        return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
      }),
    );
    // warm-up: V8 tiers the kernels up over the first calls
    for (const pair of calls) for (const call of pair) await wallMs(call, 300);
    const times = calls.map(() => [[], []] as [number[], number[]]);
    const jobs = calls.flatMap((pair, i) => pair.map((call, t) => ({ call, times: times[i][t] })));
    for (let round = 0; round < rounds; round++) {
      for (let n = 0; n < jobs.length; n++) {
        const job = jobs[(n + round) % jobs.length];
        job.times.push(await wallMs(job.call, 150));
      }
      progress(`threads N=${N} round ${round + 1}/${rounds}`);
    }
    return runnable.map((id, i) => {
      const [oneTimes, twoTimes] = times[i];
      const ratios = oneTimes.map((t, round) => t / twoTimes[round]);
      return { N, row: id, oneMs: median(oneTimes), twoMs: median(twoTimes), speedup: median(ratios), speedupRange: [Math.min(...ratios), Math.max(...ratios)], sameBits: sameBits[i] };
    });
  } finally {
    one.dispose();
    two.dispose();
  }
}

const CHILD = '--threads-child';

export async function benchThreads({ sizes = [1024], rounds = 7, cases = Object.keys(benchCases), progress = (_: string) => {} } = {}): Promise<ThreadRow[]> {
  const rows: ThreadRow[] = [];
  for (const N of sizes) rows.push(...(await sectionInChild<ThreadRow[]>(import.meta.url, CHILD, { N, rounds, cases }, progress)));
  return rows;
}

serveSection(CHILD, ({ N, rounds, cases }: { N: number; rounds: number; cases: string[] }, progress) => measureSize(N, rounds, cases, progress));

export function printThreads(rows: ThreadRow[]): void {
  if (rows.length === 0) return;
  const body = rows.map((r) => [String(r.N), r.row, fmtMs(r.oneMs), fmtMs(r.twoMs), `${r.speedup.toFixed(2)}x [${r.speedupRange[0].toFixed(2)}-${r.speedupRange[1].toFixed(2)}]`, r.sameBits ? 'yes' : 'NO']);
  table(`threads: await attn.run on 2 threads against one thread, B=1 H=${H} D=${D} (wall time, ratios paired by round)`, ['N', 'case', '1 thread', '2 threads', 'speed-up', 'same bits'], body);
}
