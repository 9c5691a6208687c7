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

/** Prints rows as an aligned table. */
export function printTable(title: string, rows: Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const keys = Object.keys(rows[0]);
  const cell = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v);
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => cell(r[k]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i])).join('  ');
  console.log(`\n${title}\n${line(keys)}\n${line(widths.map((w) => '-'.repeat(w)))}`);
  for (const r of rows) console.log(line(keys.map((k) => cell(r[k]))));
}

export const MiB = 2 ** 20;

/** CPU ms per call of `fn`, over enough calls to fill about `ms` (at most `maxCalls`). */
export async function cpuMs(fn: () => unknown, ms: number, maxCalls = Infinity): Promise<number> {
  let calls = 0;
  const wall = performance.now();
  const start = process.cpuUsage();
  do {
    await fn();
    calls++;
  } while (performance.now() - wall < ms && calls < maxCalls);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000 / calls;
}
