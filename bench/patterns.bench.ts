/**
 * Pattern attention vs `full`, B=1, H=8, D=64: `local` (window 64) and
 * `sparse` as Longformer (window 64 + 2 global tokens), and `strided`
 * (stride 64, window 8), with the time per visible (query, key) pair.
 */
import { createAttention } from 'wasm-attention';
import { printTable, randomTensor, time } from './measure.js';

const H = 8;
const D = 64;

const configs = [
  ['local', { window: 64 }],
  ['sparse', { patterns: [{ type: 'local', window: 64 }, { type: 'global', tokens: [0, 1] }] }],
  ['strided', { stride: 64, window: 8 }],
] as const;

export interface PatternRow {
  variant: string;
  N: number;
  ms: number;
  'x faster than full': number | string;
  'visible pairs/head': number;
  'ns/pair': number;
}

/** Keys of [p - a, p + b] inside [0, N). */
const windowKeys = (p: number, a: number, b: number, N: number) => Math.min(N - 1, p + b) - Math.max(0, p - a) + 1;

/** Visible pairs per head of each configuration, counted row by row (no N x N mask at large N). */
export function visiblePairs(name: (typeof configs)[number][0], N: number): number {
  let pairs = 0;
  for (let p = 0; p < N; p++) {
    if (name === 'local') pairs += windowKeys(p, 64, 64, N);
    if (name === 'sparse') pairs += p < 2 ? N : windowKeys(p, 64, 64, N) + [0, 1].filter((t) => t < p - 64).length;
    if (name === 'strided') for (let t = -8; t <= 8; t++) pairs += p + 64 * t >= 0 && p + 64 * t < N ? 1 : 0;
  }
  return pairs;
}

/**
 * `sizes` for the patterns; `full` is timed at the sizes in `fullSizes`
 * (O(N^2): 16384 takes about 15 s a call) and the speed-up is reported only there.
 */
export async function benchPatterns({ sizes = [1024, 4096, 16384], fullSizes = [1024, 4096] } = {}): Promise<PatternRow[]> {
  const attn = await createAttention({ backend: 'wasm' });
  const rows: PatternRow[] = [];
  for (const N of sizes) {
    const q = randomTensor([1, H, N, D], 1);
    const k = randomTensor([1, H, N, D], 2);
    const v = randomTensor([1, H, N, D], 3);
    let fullMs: number | null = null;
    if (fullSizes.includes(N)) {
      fullMs = (await time(`full N=${N}`, () => attn.full(q, k, v), { iterations: N > 4096 ? 1 : 3, ms: 0 })).median;
      rows.push({ variant: 'full', N, ms: fullMs, 'x faster than full': 1, 'visible pairs/head': N * N, 'ns/pair': (fullMs * 1e6) / (N * N * H) });
    }
    for (const [name, options] of configs) {
      const t = await time(`${name} N=${N}`, () => attn.apply(name, q, k, v, options), { iterations: 5, ms: 300 });
      const pairs = visiblePairs(name, N);
      rows.push({
        variant: name,
        N,
        ms: t.median,
        'x faster than full': fullMs ? fullMs / t.median : 'full not timed',
        'visible pairs/head': pairs,
        'ns/pair': (t.median * 1e6) / (pairs * H),
      });
    }
  }
  return rows;
}

export function printPatterns(rows: PatternRow[]): void {
  printTable(`pattern attention, B=1 H=${H} D=${D}, one thread (local window 64; Longformer = local 64 + 2 global; strided stride 64 window 8)`, rows as unknown as Record<string, string | number>[]);
}
