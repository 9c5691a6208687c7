/**
 * Backward passes against their forward: `attn.backward('linear', ...)` and
 * `attn.linear(...)` at B = 1, H = 8, D = Dv = 64 (N = 4096 by default),
 * causal and not, elu + 1 and FAVOR+ (M = 64); `synthesizer` with given
 * logits `[1, N, N]` shared by the heads (as bench/synthesizer.bench.ts), at
 * N = 1024 by default; on one thread. Calls are
 * interleaved in rounds (forward, backward, forward, ...) in one process and
 * timed in CPU time (process.cpuUsage: steadier than wall time on a shared
 * machine); the ratio is of the medians.
 */
import { createAttention, synthesizerParams, type Attention } from 'wasm-attention';
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

/** `rounds` interleaved (forward, backward) pairs after one warm-up pair: their medians. */
function measure(variant: string, options: string, N: number, forward: () => unknown, backward: () => unknown, rounds: number): GradRow {
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
  return { variant, options, N, 'forward ms': fm, 'backward ms': bm, 'backward / forward': bm / fm };
}

function synthesizerRows(attn: Attention, sizes: number[], rounds: number): GradRow[] {
  return sizes.map((N) => {
    const v = randomTensor([1, H, N, D], 3);
    const g = randomTensor([1, H, N, D], 4);
    const params = synthesizerParams('random', { Nq: N, Nk: N }, 5);
    return measure('synthesizer', 'random (logits [1, N, N])', N, () => attn.synthesizer(null, null, v, params), () => attn.backward('synthesizer', null, null, v, g, params), rounds);
  });
}

/** `rounds` interleaved (forward, backward) pairs per configuration, after one warm-up pair. */
export async function benchGradRest({ sizes = [4096], synthesizerSizes = [1024], rounds = 5 }: { sizes?: number[]; synthesizerSizes?: number[]; rounds?: number } = {}): Promise<GradRow[]> {
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
    for (const [label, options] of configs) rows.push(measure('linear', label, N, () => attn.linear(q, k, v, options), () => attn.backward('linear', q, k, v, g, options), rounds));
  }
  return [...rows, ...synthesizerRows(attn, synthesizerSizes, rounds)];
}
