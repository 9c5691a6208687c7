/**
 * `sinkhorn` (b = 64) on the WebAssembly backend vs `full` at the same N,
 * B=1, H=8, D=64: median ms, the time spent sorting (S, sorted keys and
 * values) vs attending (2b keys per query), and the speed-up over full.
 * The quick sweep runs N = 1024, 4096; `full: true` adds N = 16384 (full
 * attention there takes ~15 s: timed once).
 */
import { createAttention } from 'wasm-attention';
import { sinkhornProfile } from '../dist/variants/sinkhorn.js';
import { printTable, randomTensor, time } from './measure.js';

export interface SinkhornRow {
  N: number;
  causal: string;
  'sinkhorn ms': number;
  'sort ms': number;
  'attend ms': number;
  'full ms': number;
  'x faster': number;
}

const H = 8;
const D = 64;
const BLOCK = 64;

export async function benchSinkhorn({ full = false, sizes }: { full?: boolean; sizes?: number[] } = {}): Promise<SinkhornRow[]> {
  sizes ??= full ? [1024, 4096, 16384] : [1024, 4096];
  const attn = await createAttention({ backend: 'wasm' });
  const rows: SinkhornRow[] = [];
  for (const N of sizes) {
    const q = randomTensor([1, H, N, D], 1);
    const k = randomTensor([1, H, N, D], 2);
    const v = randomTensor([1, H, N, D], 3);
    for (const causal of [false, true]) {
      const options = { blockSize: BLOCK, causal };
      const t = await time(`sinkhorn N=${N}`, () => attn.sinkhorn(q, k, v, options), { iterations: 5, ms: 300 });
      // the phase split, from a few separate calls with the clock on (the fastest of each: least disturbed)
      let sortMs = Infinity;
      let attendMs = Infinity;
      sinkhornProfile.enabled = true;
      for (let i = 0; i < 3; i++) {
        sinkhornProfile.sortMs = sinkhornProfile.attendMs = 0;
        attn.sinkhorn(q, k, v, options);
        sortMs = Math.min(sortMs, sinkhornProfile.sortMs);
        attendMs = Math.min(attendMs, sinkhornProfile.attendMs);
      }
      sinkhornProfile.enabled = false;
      // full: one warm-up and few runs at 4096, a single run at 16384
      const long = N >= 16384;
      const f = long
        ? { median: oneRun(() => attn.full(q, k, v, { causal })) }
        : await time(`full N=${N}`, () => attn.full(q, k, v, { causal }), { iterations: N >= 4096 ? 2 : 5, ms: N >= 4096 ? 0 : 300 });
      rows.push({
        N,
        causal: causal ? 'yes' : 'no',
        'sinkhorn ms': t.median,
        'sort ms': sortMs,
        'attend ms': attendMs,
        'full ms': f.median,
        'x faster': f.median / t.median,
      });
    }
  }
  return rows;
}

function oneRun(fn: () => unknown): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

export function printSinkhorn(rows: SinkhornRow[]): void {
  printTable(`sinkhorn (blockSize ${BLOCK}) vs full, wasm, B=1 H=${H} D=${D}, one thread`, rows);
}
