/**
 * The patterns section (`--patterns`): the pattern family's time per visible
 * (query, key) pair against `full`'s, B = 1, H = 8, D = 64, one thread, at
 * N = 4096 by default: `local` (window 64), Longformer (`sparse`: local 64 +
 * global tokens 0 and 1) and `strided` (stride 64, window 8). Every row in
 * this process, interleaved over rounds (the order rotated), CPU time; each
 * ratio is the median over rounds of that round's ns per pair / full's.
 */
import { createAttention } from 'wasm-attention';
import { fmtMs, table } from './processes.js';
import { cpuMs, median, randomTensor } from './measure.js';

const H = 8;
const D = 64;

const configs = [
  ['full', 'full', {}],
  ['local', 'local window 64', { window: 64 }],
  ['sparse', 'Longformer: local 64 + global [0, 1]', { patterns: [{ type: 'local', window: 64 }, { type: 'global', tokens: [0, 1] }] }],
  ['strided', 'strided 64, window 8', { stride: 64, window: 8 }],
] as const;

export interface PatternRow {
  N: number;
  row: string;
  /** Median over rounds of CPU ms per call. */
  ms: number;
  /** Visible (query, key) pairs of one head. */
  pairs: number;
  nsPerPair: number;
  /** Median over rounds of this row's ns per pair / full's, and the rounds' min-max. */
  perFull: number;
  perFullRange: [number, number];
}

/** Keys of [p - a, p + b] inside [0, N). */
const windowKeys = (p: number, a: number, b: number, N: number) => Math.min(N - 1, p + b) - Math.max(0, p - a) + 1;

/** Visible pairs per head of each configuration, counted row by row (no N x N mask at large N). */
export function visiblePairs(name: (typeof configs)[number][0], N: number): number {
  let pairs = 0;
  for (let p = 0; p < N; p++) {
    if (name === 'full') pairs += N;
    if (name === 'local') pairs += windowKeys(p, 64, 64, N);
    if (name === 'sparse') pairs += p < 2 ? N : windowKeys(p, 64, 64, N) + [0, 1].filter((t) => t < p - 64).length;
    if (name === 'strided') for (let t = -8; t <= 8; t++) pairs += p + 64 * t >= 0 && p + 64 * t < N ? 1 : 0;
  }
  return pairs;
}

export async function benchPatterns({ sizes = [4096], rounds = 7, progress = (_: string) => {} } = {}): Promise<PatternRow[]> {
  const attn = await createAttention({ backend: 'wasm', threads: 1 });
  const rows: PatternRow[] = [];
  for (const N of sizes) {
    const q = randomTensor([1, H, N, D], 1);
    const k = randomTensor([1, H, N, D], 2);
    const v = randomTensor([1, H, N, D], 3);
    const calls = configs.map(([name, , options]) => () => attn.apply(name, q, k, v, options));
    // warm-up: V8 tiers the kernels up over the first calls
    for (const call of calls) await cpuMs(call, 1000);
    const times = configs.map(() => [] as number[]);
    for (let round = 0; round < rounds; round++) {
      for (let n = 0; n < configs.length; n++) {
        const i = (n + round) % configs.length;
        times[i].push(await cpuMs(calls[i], 400));
      }
      progress(`patterns N=${N} round ${round + 1}/${rounds}`);
    }
    const perPair = configs.map(([name], i) => times[i].map((ms) => (ms * 1e6) / (visiblePairs(name, N) * H)));
    configs.forEach(([name, row], i) => {
      const ratios = perPair[i].map((ns, round) => ns / perPair[0][round]);
      rows.push({ N, row, ms: median(times[i]), pairs: visiblePairs(name, N), nsPerPair: median(perPair[i]), perFull: median(ratios), perFullRange: [Math.min(...ratios), Math.max(...ratios)] });
    });
  }
  return rows;
}

export function printPatterns(rows: PatternRow[]): void {
  if (rows.length === 0) return;
  const body = rows.map((r) => [String(r.N), r.row, fmtMs(r.ms), String(r.pairs), r.nsPerPair.toFixed(2), `${r.perFull.toFixed(2)}x [${r.perFullRange[0].toFixed(2)}-${r.perFullRange[1].toFixed(2)}]`]);
  table(`patterns: time per visible pair against full, B=1 H=${H} D=${D}, one thread (CPU time, ratios paired by round)`, ['N', 'row', 'time', 'pairs/head', 'ns/pair', 'x full per pair'], body);
}
