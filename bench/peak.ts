/**
 * The machine's multiply-add peak on one thread, measured in the run whose
 * figures are read against it: the engine's 4 x 8 register tile alone over
 * panels that stay in L1 (assembly/bench/peak.ts), compiled here twice, with
 * f32x4 mul + add and with relaxed SIMD's fused multiply-add. Both run in a
 * child process started with relaxed SIMD enabled (behind a flag in Node 20);
 * the peak is the best of several runs, since noise only lowers it.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';
import { sectionInChild, serveSection } from './processes.js';

export interface Peaks {
  /** GFLOP/s of the tile with f32x4.mul and f32x4.add (the plain build's). */
  mulAdd: number;
  /** GFLOP/s with f32x4.relaxed_madd (the relaxed build's); null where the runtime has no relaxed SIMD. */
  fused: number | null;
}

const CHILD = '--peak-child';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Steps of the tile per pass: a [K][4] and b [K][8] floats, 12 KiB in all. */
const K = 256;

/** Compiles the tile with or without relaxed SIMD (under a second each). */
async function compile(relaxed: boolean): Promise<Uint8Array<ArrayBuffer>> {
  let binary: Uint8Array<ArrayBuffer> | undefined;
  const flags = ['--enable', 'simd', ...(relaxed ? ['--enable', 'relaxed-simd'] : [])];
  const { error } = await asc.main(['assembly/bench/peak.ts', '--baseDir', root, '--outFile', 'peak.wasm', '-O3', '--runtime', 'stub', '--noAssert', ...flags], {
    writeFile: (name: string, contents: string | Uint8Array) => {
      if (name.endsWith('.wasm')) binary = new Uint8Array(contents as Uint8Array);
    },
  });
  if (error || !binary) throw new Error(`assembly/bench/peak.ts: ${error?.message ?? 'no binary'}`);
  return binary;
}

/** The best GFLOP/s of `runs` runs of about 100 ms each. */
function gflops(binary: Uint8Array<ArrayBuffer>, runs = 11): number {
  // the project's asconfig.json imports memory
  const memory = new WebAssembly.Memory({ initial: 1 });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(binary), { env: { memory, abort: () => {} } });
  const { tile } = instance.exports as { tile: (a: number, b: number, c: number, K: number, reps: number) => void };
  const floats = new Float32Array(memory.buffer, 0, 12 * K + 32);
  for (let i = 0; i < floats.length; i++) floats[i] = ((i % 17) - 8) / 64;
  const [a, b, c] = [0, 4 * K * 4, 12 * K * 4];
  const flopsPerRep = 64 * K;
  // calibrate (and let V8 optimise the loop) on a first pass
  let reps = 1000;
  for (let start = performance.now(); performance.now() - start < 50; ) tile(a, b, c, K, reps);
  const start = performance.now();
  tile(a, b, c, K, reps);
  reps = Math.max(1, Math.round((reps * 100) / Math.max(performance.now() - start, 1e-3)));
  let best = 0;
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    tile(a, b, c, K, reps);
    best = Math.max(best, (flopsPerRep * reps) / (performance.now() - t) / 1e6);
  }
  return best;
}

serveSection(CHILD, async () => {
  const relaxed = await compile(true);
  return { mulAdd: gflops(await compile(false)), fused: WebAssembly.validate(relaxed) ? gflops(relaxed) : null } satisfies Peaks;
});

/** Measures the peaks in a child process of their own. */
export function measurePeaks(progress: (message: string) => void): Promise<Peaks> {
  progress('peaks: the register tile in L1');
  return sectionInChild(import.meta.url, CHILD, {}, progress, ['--experimental-wasm-relaxed-simd']);
}
