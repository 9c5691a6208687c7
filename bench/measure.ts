/** Timing with tinybench, and the small helpers every bench suite shares. */
import { Bench } from 'tinybench';

export interface Timing {
  /** Median latency, ms. */
  median: number;
  min: number;
  max: number;
  samples: number;
}

/**
 * Times `fn` with tinybench: at least `iterations` runs and `time` ms, after
 * one warm-up run (compiles the code paths, grows memory once).
 */
export async function time(name: string, fn: () => unknown, { iterations = 5, ms = 300 } = {}): Promise<Timing> {
  fn();
  const bench = new Bench({ name, time: ms, iterations, warmup: false, throws: true });
  bench.add(name, fn);
  await bench.run();
  const result = bench.tasks[0].result;
  if (!('latency' in result)) throw new Error(`${name}: benchmark did not complete (${result.state})`);
  const { p50, min, max, samplesCount } = result.latency;
  return { median: p50, min, max, samples: samplesCount };
}

/** A tensor of uniform values in [-1, 1), seeded (a linear congruential generator: benches need no statistics). */
export function randomTensor(dims: number[], seed: number): { data: Float32Array; dims: number[] } {
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2147483648 - 1;
  }
  return { data, dims };
}

/** Prints rows (objects of strings and numbers) as an aligned table. */
export function printTable(title: string, objects: readonly object[]): void {
  const rows = objects as readonly Record<string, string | number>[];
  if (rows.length === 0) return;
  const keys = Object.keys(rows[0]);
  const cell = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v);
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => cell(r[k]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i])).join('  ');
  console.log(`\n${title}\n${line(keys)}\n${line(widths.map((w) => '-'.repeat(w)))}`);
  for (const r of rows) console.log(line(keys.map((k) => cell(r[k]))));
}

export const MiB = 2 ** 20;

/** The median (of an even count, the mean of the middle two). */
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** The CPU ms (user + system, every thread of the process) of one call of `fn`. */
export function cpuOf(fn: () => unknown): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

/** A state a timed function uses up: `prepare` restores it, untimed, before every `every` calls. */
export interface Refill {
  every: number;
  prepare: () => void;
}

/**
 * CPU ms per call of `fn`, over enough calls to fill about `ms` of wall time.
 * With `refill`, the calls run in spells of at most `refill.every`, each
 * after an untimed `refill.prepare()`: a decoding step lengthens its cache,
 * and a row at cache length L must stay a row at L however fast it runs.
 */
export async function cpuMs(fn: () => unknown, ms: number, refill?: Refill): Promise<number> {
  const spell = refill?.every ?? Infinity;
  let calls = 0;
  let cpu = 0;
  let wall = 0;
  do {
    refill?.prepare();
    const started = performance.now();
    const start = process.cpuUsage();
    let n = 0;
    do {
      await fn();
      n++;
    } while (wall + performance.now() - started < ms && n < spell);
    const used = process.cpuUsage(start);
    cpu += (used.user + used.system) / 1000;
    wall += performance.now() - started;
    calls += n;
  } while (wall < ms);
  return cpu / calls;
}
