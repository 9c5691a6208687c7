/**
 * Backward passes against their forward, at B = 1, H = 8, D = Dv = 64 on one
 * thread: `full` at N = 1024 and 4096 (causal and not); at N = 4096 the
 * pattern family (`local` window 128, `strided` 64 window 8, Longformer's
 * window and global tokens), `linear` (elu + 1 and FAVOR+ with M = 64,
 * causal and not), `compressed`, `sinkhorn`, `lsh`, `routing`; `synthesizer`
 * with given logits `[1, N, N]` shared by the heads at 1024.
 * Calls are interleaved in rounds (forward, backward, and for full and local
 * backward given the forward's output, ...) in one process and timed in CPU time (process.cpuUsage: steadier than wall time
 * on a shared machine); the ratio is of the medians. Then the WebAssembly
 * memory that full's backward needs at N = 16384 beyond its tensors (the
 * inputs, gradOutput and the three gradients), in a fresh instance.
 */
import { createAttention, synthesizerParams, type VariantName } from 'wasm-attention';
import { cpuOf, median, randomTensor } from './measure.js';

export interface GradRow {
  variant: string;
  options: string;
  N: number;
  /** Median CPU time of one forward call, ms. */
  'forward ms': number;
  /** Median CPU time of one backward call (every gradient), ms. */
  'backward ms': number;
  'backward / forward': number;
  /** The same given the forward's output (`saved.output`: full and local then skip recomputing it), or '' where it changes nothing. */
  'with output / forward': number | '';
}

export interface GradMemory {
  N: number;
  H: number;
  D: number;
  /** Bytes of the inputs, gradOutput and gradients as they sit in the call's frame. */
  'tensors MiB': number;
  /** Growth of the instance's memory during the call, beyond those tensors. */
  'beyond tensors MiB': number;
}

const H = 8;
const D = 64;

/** Variant, label, options at N, sizes, and whether saved.output spares it work. */
type Config = readonly [VariantName, string, (N: number) => Record<string, unknown>, readonly number[], boolean?];

/** `rounds` interleaved (forward, backward) pairs per configuration, after one warm-up pair. */
export async function benchGrad({ sizes, rounds = 5 }: { sizes?: number[]; rounds?: number } = {}): Promise<GradRow[]> {
  const attn = await createAttention({ backend: 'wasm', threads: 1 });
  const configs: Config[] = [
    ['full', '', () => ({}), sizes ?? [1024, 4096], true],
    ['full', 'causal', () => ({ causal: true }), sizes ?? [1024, 4096], true],
    ['local', 'window 128', () => ({ window: 128 }), sizes ?? [4096], true],
    ['strided', 'stride 64 window 8', () => ({ stride: 64, window: 8 }), sizes ?? [4096]],
    ['sparse', 'window 64 + 4 global tokens', () => ({ patterns: [{ type: 'local', window: 64 }, { type: 'global', tokens: [0, 1, 2, 3] }] }), sizes ?? [4096]],
    ['linear', 'elu', () => ({}), sizes ?? [4096]],
    ['linear', 'elu causal', () => ({ causal: true }), sizes ?? [4096]],
    ['linear', 'favor M64', () => ({ featureMap: 'favor', numFeatures: 64, seed: 1 }), sizes ?? [4096]],
    ['linear', 'favor M64 causal', () => ({ featureMap: 'favor', numFeatures: 64, seed: 1, causal: true }), sizes ?? [4096]],
    ['compressed', 'mean, factor 4', () => ({ factor: 4 }), sizes ?? [4096]],
    ['sinkhorn', 'blocks of 64', () => ({ blockSize: 64 }), sizes ?? [4096]],
    ['lsh', 'chunks of 64, 2 rounds, 64 buckets', () => ({ bucketSize: 64, rounds: 2, buckets: 64, seed: 1 }), sizes ?? [4096]],
    ['routing', 'window 64, 64 given centroids', () => ({ window: 64, centroids: randomTensor([1, 64, D], 9) }), sizes ?? [4096]],
    ['synthesizer', 'random (logits [1, N, N])', (N) => synthesizerParams('random', { Nq: N, Nk: N }, 5), sizes ?? [1024]],
  ];
  const rows: GradRow[] = [];
  for (const [name, label, optionsAt, Ns, usesOutput] of configs) {
    for (const N of Ns) {
      const options = optionsAt(N);
      const [q, k, v, g] = [1, 2, 3, 4].map((seed) => randomTensor([1, H, N, D], seed));
      // synthesizer takes only v; lsh's keys are its queries
      const [qIn, kIn] = name === 'synthesizer' ? [null, null] : name === 'lsh' ? [q, q] : [q, k];
      const forward = () => attn.apply(name, qIn, kIn, v, options);
      const backward = () => attn.backward(name, qIn, kIn, v, g, options);
      const output = forward();
      const backwardGiven = () => attn.backward(name, qIn, kIn, v, g, options, { output });
      backward();
      if (usesOutput) backwardGiven();
      const f: number[] = [];
      const b: number[] = [];
      const bg: number[] = [];
      for (let r = 0; r < rounds; r++) {
        f.push(cpuOf(forward));
        b.push(cpuOf(backward));
        if (usesOutput) bg.push(cpuOf(backwardGiven));
      }
      const fm = median(f);
      const bm = median(b);
      const given: number | '' = usesOutput ? median(bg) / fm : '';
      rows.push({ variant: name, options: label, N, 'forward ms': fm, 'backward ms': bm, 'backward / forward': bm / fm, 'with output / forward': given });
    }
  }
  return rows;
}

/** The memory full's causal backward grows a fresh one-thread instance by at N (H = 8, D = 64), beyond its tensors. */
export async function benchGradMemory(N = 16384): Promise<GradMemory> {
  const attn = await createAttention({ backend: 'wasm', threads: 1 });
  const [q, k, v, g] = [1, 2, 3, 4].map((seed) => randomTensor([1, H, N, D], seed));
  const before = attn.memory.size;
  attn.backward('full', q, k, v, g, { causal: true });
  const tensors = 7 * H * N * D * 4;
  const MiB = 2 ** 20;
  return { N, H, D, 'tensors MiB': tensors / MiB, 'beyond tensors MiB': (attn.memory.size - before - tensors) / MiB };
}
