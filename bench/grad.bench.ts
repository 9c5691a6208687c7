/**
 * Backward passes against their forward: `attn.backward('linear', ...)` and
 * `attn.linear(...)` at B = 1, H = 8, D = Dv = 64 (N = 4096 by default),
 * causal and not, elu + 1 and FAVOR+ (M = 64), on one thread. Calls are
 * interleaved in rounds (forward, backward, forward, ...) in one process and
 * timed in CPU time (process.cpuUsage: steadier than wall time on a shared
 * machine); the ratio is of the medians.
 */
import { createAttention } from 'wasm-attention';
import { randomTensor } from './measure.js';

export interface GradRow {
  variant: string;
  options: string;
  N: number;
  /** Median CPU time of one forward call, ms. */
  'forward ms': number;
  /** Median CPU time of one backward call (every gradient), ms. */
  'backward ms': number;
  'backward / forward': number;
}

const H = 8;
const D = 64;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

function cpuMs(fn: () => unknown): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

/** `rounds` interleaved (forward, backward) pairs per configuration, after one warm-up pair. */
export async function benchGradRest({ sizes = [4096], rounds = 5 }: { sizes?: number[]; rounds?: number } = {}): Promise<GradRow[]> {
  const attn = await createAttention({ backend: 'wasm', threads: 1 });
  const configs: [string, Record<string, unknown>][] = [
    ['elu', {}],
    ['elu causal', { causal: true }],
    ['favor M64', { featureMap: 'favor', numFeatures: 64, seed: 1 }],
    ['favor M64 causal', { featureMap: 'favor', numFeatures: 64, seed: 1, causal: true }],
  ];
  const rows: GradRow[] = [];
  for (const N of sizes) {
    const q = randomTensor([1, H, N, D], 1);
    const k = randomTensor([1, H, N, D], 2);
    const v = randomTensor([1, H, N, D], 3);
    const g = randomTensor([1, H, N, D], 4);
    for (const [label, options] of configs) {
      const forward = () => attn.linear(q, k, v, options);
      const backward = () => attn.backward('linear', q, k, v, g, options);
      forward();
      backward();
      const f: number[] = [];
      const b: number[] = [];
      for (let r = 0; r < rounds; r++) {
        f.push(cpuMs(forward));
        b.push(cpuMs(backward));
      }
      const fm = median(f);
      const bm = median(b);
      rows.push({ variant: 'linear', options: label, N, 'forward ms': fm, 'backward ms': bm, 'backward / forward': bm / fm });
    }
  }
  return rows;
}
