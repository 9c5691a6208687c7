/**
 * `linear` on the WebAssembly backend vs `full` at the same N: B=1, H=8,
 * D=Dv=64, causal and not; elu + 1 at every size, FAVOR+ (M = 64 orthogonal
 * features) at N = 4096 (every size with `full: true`). `full` is measured
 * up to `fullUpTo` (it is O(N^2)); above that its cells are empty, never
 * extrapolated. Then the recurrent state: the cost of one `step` (all 8
 * heads) at position ~1k and ~60k.
 */
import { createAttention, type Attention } from 'wasm-attention';
import { createLinearState, type LinearState, type LinearStateOptions } from '../dist/variants/linear-state.js';
import { Runtime } from '../dist/runtime/runtime.js';
import { cpuOf, median, printTable, randomTensor, time } from './measure.js';

export interface LinearRow {
  variant: string;
  N: number;
  causal: string;
  /** Median wall-clock time of a call. */
  ms: number;
  /** Median CPU time of a call (user + system, this process): steadier than wall time on a shared machine. */
  'cpu ms': number;
  /** Measured full (causal when the row is) at the same N, or '-' when not run. */
  'full ms': number | string;
  'x faster than full': number | string;
  /** The same ratio in CPU time. */
  'x (cpu)': number | string;
}

export interface StepRow {
  featureMap: string;
  /** Tokens already in the state when the timed steps start. */
  position: number;
  /** One step of all H heads, microseconds (median of the timed batches). */
  'us per step': number;
  /** The same in CPU time (user + system). */
  'cpu us': number;
}

const H = 8;
const D = 64;
const FAVOR_M = 64;

/** `time` (tinybench, wall clock), and the median CPU time of the same calls. */
async function timeCpu(name: string, fn: () => unknown, options: { iterations: number; ms: number }): Promise<{ ms: number; cpu: number }> {
  const cpu: number[] = [];
  const t = await time(name, () => cpu.push(cpuOf(fn)), options);
  return { ms: t.median, cpu: median(cpu.slice(1)) }; // the first sample is the warm-up call
}

/**
 * sizes: the N swept (65536 and 16384-full with `full: true`); fullUpTo: the
 * largest N at which full is measured.
 */
export async function benchLinear(options: { full?: boolean; sizes?: number[]; fullUpTo?: number } = {}): Promise<LinearRow[]> {
  const full = options.full ?? false;
  const sizes = options.sizes ?? (full ? [1024, 4096, 16384, 65536] : [1024, 4096, 16384]);
  const fullUpTo = options.fullUpTo ?? (full ? 16384 : 4096);
  const attn: Attention = await createAttention({ backend: 'wasm' });
  const rows: LinearRow[] = [];
  for (const N of sizes) {
    const q = randomTensor([1, H, N, D], 1);
    const k = randomTensor([1, H, N, D], 2);
    const v = randomTensor([1, H, N, D], 3);
    for (const causal of [false, true]) {
      let fullMs: { ms: number; cpu: number } | null = null;
      if (N <= fullUpTo) {
        // one warm-up call and two timed ones: enough for a call of a second or more
        fullMs = await timeCpu(`full N=${N}`, () => attn.full(q, k, v, { causal }), { iterations: 2, ms: 0 });
      }
      const cases: [string, object][] = [['elu', { featureMap: 'elu' }]];
      if (full || N === 4096) cases.push([`favor M=${FAVOR_M}`, { featureMap: 'favor', numFeatures: FAVOR_M, seed: 1 }]);
      for (const [name, options] of cases) {
        const t = await timeCpu(`linear ${name} N=${N}`, () => attn.linear(q, k, v, { ...options, causal }), { iterations: 5, ms: 300 });
        rows.push({
          variant: `linear ${name}`,
          N,
          causal: causal ? 'yes' : 'no',
          ms: t.ms,
          'cpu ms': t.cpu,
          'full ms': fullMs ? fullMs.ms : '-',
          'x faster than full': fullMs ? fullMs.ms / t.ms : '-',
          'x (cpu)': fullMs ? fullMs.cpu / t.cpu : '-',
        });
      }
      if (fullMs) rows.push({ variant: 'full', N, causal: causal ? 'yes' : 'no', ms: fullMs.ms, 'cpu ms': fullMs.cpu, 'full ms': fullMs.ms, 'x faster than full': 1, 'x (cpu)': 1 });
    }
  }
  return rows;
}

/** `attn.linearState` once it is wired into the facade; until then the factory on a runtime of its own. */
async function makeState(options: LinearStateOptions): Promise<LinearState> {
  const attn = (await createAttention({ backend: 'wasm' })) as Attention & { linearState?: (o: LinearStateOptions) => LinearState };
  if (typeof attn.linearState === 'function') return attn.linearState(options);
  return createLinearState(await Runtime.create(), options);
}

/**
 * The recurrent state's `step` (B=1, H=8, D=Dv=64), timed in batches of
 * `batch` tokens starting at each of `positions`: O(1) per token means the
 * same time at every position.
 */
export async function benchLinearStep({ positions = [1000, 60000], batch = 1000, featureMaps = ['elu', 'favor'] } = {}): Promise<StepRow[]> {
  const rows: StepRow[] = [];
  // a pool of tokens to cycle through
  const pool = 64;
  const tokens = randomTensor([pool, 3, H * D], 7).data;
  const token = (t: number, which: number) => tokens.subarray(((t % pool) * 3 + which) * H * D, ((t % pool) * 3 + which + 1) * H * D);
  const step = (state: LinearState, t: number) => state.step({ data: token(t, 0), dims: [1, H, D] }, { data: token(t, 1), dims: [1, H, D] }, { data: token(t, 2), dims: [1, H, D] });
  for (const featureMap of featureMaps) {
    const options: LinearStateOptions = { heads: H, dim: D, featureMap: featureMap as LinearStateOptions['featureMap'], ...(featureMap === 'favor' ? { numFeatures: FAVOR_M, seed: 1 } : {}) };
    const state = await makeState(options);
    // warm up (V8 tiers the step kernel up between calls), then start over
    for (let i = 0; i < 2000; i++) step(state, i);
    state.reset();
    let t = 0;
    for (const position of [...positions].sort((a, b) => a - b)) {
      while (t < position) step(state, t++);
      const times: number[] = [];
      const cpu: number[] = [];
      const per = Math.max(1, Math.floor(batch / 5));
      for (let r = 0; r < 5; r++) {
        const start = performance.now();
        const used = cpuOf(() => {
          for (let i = 0; i < per; i++) step(state, t++);
        });
        times.push(((performance.now() - start) * 1000) / per);
        cpu.push((used * 1000) / per);
      }
      rows.push({ featureMap, position, 'us per step': median(times), 'cpu us': median(cpu) });
    }
    state.dispose();
  }
  return rows;
}

export function printLinear(rows: LinearRow[], steps: StepRow[] = []): void {
  printTable(`linear vs full (causal rows vs full causal), B=1 H=${H} D=Dv=${D}, one thread; full measured, never extrapolated`, rows);
  const row = (variant: string, N: number, causal: string) => rows.find((r) => r.variant === variant && r.N === N && r.causal === causal);
  for (const variant of new Set(rows.filter((r) => r.variant !== 'full').map((r) => r.variant))) {
    for (const causal of ['no', 'yes']) {
      const big = row(variant, 65536, causal);
      const mid = row(variant, 16384, causal);
      if (big && mid) {
        console.log(`${variant}, causal ${causal}: N=65536 takes ${(big.ms / mid.ms).toFixed(2)}x N=16384 (${(big['cpu ms'] / mid['cpu ms']).toFixed(2)}x in CPU time; linear time: 4x)`);
      }
    }
  }
  if (steps.length > 0) {
    printTable(`linear recurrent state: one step of all ${H} heads, D=Dv=${D}`, steps);
    for (const featureMap of new Set(steps.map((s) => s.featureMap))) {
      const of = steps.filter((s) => s.featureMap === featureMap);
      const [first, last] = [of[0], of[of.length - 1]];
      if (of.length >= 2) {
        console.log(`${featureMap}: a step at position ${last.position} costs ${(last['us per step'] / first['us per step']).toFixed(2)}x (CPU time ${(last['cpu us'] / first['cpu us']).toFixed(2)}x) a step at ${first.position}`);
      }
    }
  }
}
