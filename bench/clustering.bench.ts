/**
 * `lsh` and `routing` on the WebAssembly backend against `full` at the same
 * N, B=1, H=8, D=64: median ms, speed-up over full, the share of the time
 * spent hashing and sorting (lsh) or routing (routing: similarities and
 * top-w selections) rather than attending, and the peak WebAssembly memory
 * of a fresh instance.
 *
 * lsh: bucketSize 64, 2 and 4 rounds, buckets = N / 64 (reformer-pytorch's
 * n_buckets = N / bucket_size; the full sweep adds 4 rounds into a fixed 64
 * buckets). routing: C = sqrt(N) clusters of w = N / C
 * members, seeded random centroids (fitting them is timed separately, as
 * `routing fit`: 10 k-means steps over q and k, C = sqrt(N)).
 */
import { createAttention } from 'wasm-attention';
import { readInputs } from '../dist/inputs.js';
import { Runtime } from '../dist/runtime/runtime.js';
import { lsh, lshKernel, type LshPhases } from '../dist/variants/lsh.js';
import { fitCentroidsKernel, routing, routingKernel, type RoutingPhases } from '../dist/variants/routing.js';
import type { Lookup } from '../dist/variants/variant.js';
import { MiB, printTable, randomTensor, time } from './measure.js';

export interface ClusteringRow {
  variant: string;
  N: number;
  setting: string;
  ms: number;
  'x full': number | string;
  /** Share of the time hashing and sorting (lsh) or routing (routing), from one instrumented call. */
  'hash/route %': number | string;
  'wasm MiB': number;
}

const H = 8;
const D = 64;
const BUCKET_SIZE = 64;
/** The bucket count of the full sweep's fixed-buckets lsh rows. */
const FIXED_BUCKETS = 64;

const noLookup: Lookup = (name) => {
  throw new Error(`unexpected lookup of ${name}`);
};

/**
 * Runs the sweep. `full: false` (the quick sweep) times N = 1024 and 4096;
 * `full: true` adds N = 16384, where `full` itself is timed once (~15 s).
 */
export async function benchClustering({ full = false, sizes }: { full?: boolean; sizes?: number[] } = {}): Promise<ClusteringRow[]> {
  sizes ??= full ? [1024, 4096, 16384] : [1024, 4096];
  const rows: ClusteringRow[] = [];
  const runtime = await Runtime.create();
  for (const N of sizes) {
    const q = randomTensor([1, H, N, D], 1);
    const k = randomTensor([1, H, N, D], 2);
    const v = randomTensor([1, H, N, D], 3);

    // full: the baseline; above 4096 one call, no warm-up (the kernel splits long heads into calls, so it tiers up early)
    let attn = await createAttention({ backend: 'wasm' });
    const big = N > 4096;
    let fullMs: number;
    if (big) {
      const start = performance.now();
      attn.full(q, k, v);
      fullMs = performance.now() - start;
    } else {
      fullMs = (await time(`full N=${N}`, () => attn.full(q, k, v), { iterations: N > 1024 ? 2 : 5, ms: N > 1024 ? 0 : 300 })).median;
    }
    const fullTime = { median: fullMs };
    rows.push({ variant: 'full', N, setting: '', ms: fullMs, 'x full': 1, 'hash/route %': '', 'wasm MiB': attn.memory.size / MiB });

    // buckets = N / c; the full sweep adds a fixed 64 buckets, whose hash costs O(N) instead of O(N^2 / c)
    const settings = [[2, N / BUCKET_SIZE], [4, N / BUCKET_SIZE], ...(full && N / BUCKET_SIZE !== FIXED_BUCKETS ? [[4, FIXED_BUCKETS]] : [])];
    for (const [rounds, buckets] of settings) {
      const options = { bucketSize: BUCKET_SIZE, rounds, buckets, seed: 1 };
      attn = await createAttention({ backend: 'wasm' });
      const t = await time(`lsh N=${N} R=${rounds}`, () => attn.lsh(q, null, v, options), { iterations: 5, ms: 300 });
      const inputs = readInputs(lsh, q, null, v, true);
      const phases: LshPhases = { hash: 0, attend: 0 };
      lshKernel(runtime, inputs.q!, inputs.v!, lsh.parse(inputs, options, noLookup), phases);
      rows.push({
        variant: 'lsh', N, setting: `c=${BUCKET_SIZE} R=${rounds} nb=${buckets}`, ms: t.median, 'x full': fullTime.median / t.median,
        'hash/route %': (100 * phases.hash) / (phases.hash + phases.attend), 'wasm MiB': attn.memory.size / MiB,
      });
    }

    const C = Math.round(Math.sqrt(N));
    const window = Math.round(N / C);
    const centroids = randomTensor([H, C, D], 4);
    const options = { window, centroids };
    attn = await createAttention({ backend: 'wasm' });
    const t = await time(`routing N=${N}`, () => attn.routing(q, k, v, options), { iterations: 5, ms: 300 });
    const inputs = readInputs(routing, q, k, v, true);
    const phases: RoutingPhases = { fit: 0, route: 0, attend: 0 };
    routingKernel(runtime, inputs.q!, inputs.k!, inputs.v!, routing.parse(inputs, options, noLookup), phases);
    rows.push({
      variant: 'routing', N, setting: `C=${C} w=${window}`, ms: t.median, 'x full': fullTime.median / t.median,
      'hash/route %': (100 * phases.route) / (phases.route + phases.attend), 'wasm MiB': attn.memory.size / MiB,
    });

    // fitting the centroids (k-means on the GEMM, exact float64 assignments), on a fresh instance
    const fitRuntime = await Runtime.create();
    const fit = await time(`routing fit N=${N}`, () => fitCentroidsKernel(fitRuntime, inputs.q!, inputs.k!, C, 10, 5), { iterations: big ? 1 : 3, ms: 0 });
    rows.push({
      variant: 'routing fit', N, setting: `C=${C}, 10 steps`, ms: fit.median, 'x full': '', 'hash/route %': '',
      'wasm MiB': fitRuntime.arena.memory.buffer.byteLength / MiB,
    });
  }
  return rows;
}

/** Time ratio between two sizes against N log N and N^1.5. */
function growth(rows: ClusteringRow[], variant: string, setting: (N: number) => string): string[] {
  const lines: string[] = [];
  const at = (N: number) => rows.find((r) => r.variant === variant && r.N === N && r.setting === setting(N));
  const sizes = [...new Set(rows.map((r) => r.N))];
  for (let s = 1; s < sizes.length; s++) {
    const [a, b] = [at(sizes[s - 1]), at(sizes[s])];
    if (!a || !b) continue;
    const n = b.N / a.N;
    const nLogN = (b.N * Math.log(b.N)) / (a.N * Math.log(a.N));
    lines.push(`${variant} ${setting(b.N)}: N ${a.N} -> ${b.N}: time x${(b.ms / a.ms).toFixed(2)} (N x${n}, N log N x${nLogN.toFixed(2)}, N^1.5 x${(n ** 1.5).toFixed(2)})`);
  }
  return lines;
}

export function printClustering(rows: ClusteringRow[]): void {
  printTable(`lsh and routing vs full, B=1 H=${H} D=${D}, one thread`, rows);
  const lines = [
    ...growth(rows, 'lsh', (N) => `c=${BUCKET_SIZE} R=2 nb=${N / BUCKET_SIZE}`),
    ...growth(rows, 'lsh', (N) => `c=${BUCKET_SIZE} R=4 nb=${N / BUCKET_SIZE}`),
    ...growth(rows, 'lsh', () => `c=${BUCKET_SIZE} R=4 nb=${FIXED_BUCKETS}`),
    ...growth(rows, 'routing', (N) => {
      const C = Math.round(Math.sqrt(N));
      return `C=${C} w=${Math.round(N / C)}`;
    }),
  ];
  for (const line of lines) console.log(line);
}
