/**
 * `linformer` (P projected rows) and `compressed` (slots of s keys, mean or
 * Conv1d) on the WebAssembly backend vs `full` at the same N: B=1, H=8,
 * D=64, P=256, s=4. Linformer's cost is O(N P D), linear in N; compressed
 * attention's is O(N^2 D / s), still quadratic but s times smaller.
 */
import { createAttention, linformerProjection, type Attention } from 'wasm-attention';
import { printTable, randomTensor, time } from './measure.js';

export interface FewerKeysRow {
  variant: string;
  N: number;
  ms: number;
  /** full's time at the same N (causal for the causal rows) over this one's. */
  'x faster than full': number;
}

const H = 8;
const D = 64;
const P = 256;
const S = 4;

/** One timing: tinybench for calls under a second, a single call (after a warm-up at a smaller N) above. */
async function measure(name: string, fn: () => unknown, slow: boolean): Promise<number> {
  if (!slow) return (await time(name, fn, { iterations: 3, ms: 300 })).median;
  const start = performance.now();
  fn();
  return performance.now() - start;
}

/**
 * sizes: the N swept (quick: 1024 and 4096; `full: true` adds 16384, where
 * full attention alone takes about 15 s and is timed once).
 */
export async function benchFewerKeys({ full = false, sizes }: { full?: boolean; sizes?: number[] } = {}): Promise<FewerKeysRow[]> {
  sizes ??= full ? [1024, 4096, 16384] : [1024, 4096];
  const attn: Attention = await createAttention({ backend: 'wasm' });
  const rows: FewerKeysRow[] = [];
  const convWeight = (seed: number) => {
    const w = randomTensor([D, D, S], seed);
    for (let i = 0; i < w.data.length; i++) w.data[i] /= Math.sqrt(D * S);
    return w;
  };
  const convK = { weight: convWeight(5) };
  const convV = { weight: convWeight(6) };
  for (const N of sizes) {
    const q = randomTensor([1, H, N, D], 1);
    const k = randomTensor([1, H, N, D], 2);
    const v = randomTensor([1, H, N, D], 3);
    const e = linformerProjection(P, N, 4);
    const slow = N > 4096;
    const fullMs = await measure(`full N=${N}`, () => attn.full(q, k, v), slow);
    rows.push({ variant: 'full', N, ms: fullMs, 'x faster than full': 1 });
    // [name, call, compared with full causal]
    const cases: [string, () => unknown, boolean][] = [
      [`linformer P=${P}`, () => attn.linformer(q, k, v, { e }), false],
      [`compressed s=${S} mean`, () => attn.compressed(q, k, v, { factor: S }), false],
      [`compressed s=${S} conv`, () => attn.compressed(q, k, v, { factor: S, convK, convV }), false],
      ['full causal', () => attn.full(q, k, v, { causal: true }), false],
      [`compressed s=${S} mean causal`, () => attn.compressed(q, k, v, { factor: S, causal: true }), true],
    ];
    let causalMs = fullMs;
    for (const [variant, fn, vsCausal] of cases) {
      const ms = await measure(`${variant} N=${N}`, fn, slow && !variant.startsWith('linformer'));
      if (variant === 'full causal') causalMs = ms;
      rows.push({ variant, N, ms, 'x faster than full': (vsCausal ? causalMs : fullMs) / ms });
    }
  }
  return rows;
}

export function printFewerKeys(rows: FewerKeysRow[]): void {
  printTable(`linformer and compressed vs full, B=1 H=${H} D=${D}, one thread`, rows);
  const sizes = [...new Set(rows.map((r) => r.N))].sort((a, b) => a - b);
  for (const variant of new Set(rows.map((r) => r.variant))) {
    const growth: string[] = [];
    for (let i = 1; i < sizes.length; i++) {
      const a = rows.find((r) => r.variant === variant && r.N === sizes[i - 1]);
      const b = rows.find((r) => r.variant === variant && r.N === sizes[i]);
      if (a && b) growth.push(`N ${sizes[i - 1]} -> ${sizes[i]}: ${(b.ms / a.ms).toFixed(2)}x time`);
    }
    if (growth.length > 0) console.log(`${variant}: ${growth.join(', ')}`);
  }
}
