/**
 * `attn.recurrent` (SPEC "Recurrent linear attention") on the WebAssembly
 * backend, one thread, B = 1, H = 8, D = Dv = 64: each rule (decay per head,
 * and per key dim for the gated ones) at N = 1k to 64k against our causal
 * `linear` (elu) at the same N and against a plain token-by-token recurrence
 * in JS (float32 arrays; measured up to `jsUpTo`, never extrapolated); the
 * growth from N = 16384 to 65536 (linear time: 4x) from alternating rounds; then `recurrentState`'s
 * step (all 8 heads) at positions ~1k and ~60k. CPU time (user + system of
 * this process), the median of `rounds` calls after a warm-up call.
 */
import { createAttention, type Attention, type RecurrentOptions, type RecurrentState, type Tensor } from 'wasm-attention';
import { cpuOf, median, randomTensor } from './measure.js';

const H = 8;
const D = 64;

export type RecurrentRow = {
  rule: string;
  N: number;
  /** Median CPU ms of one call. */
  'cpu ms': number;
  /** CPU ns per token and head. */
  'ns/token/head': number;
  /** Our causal `linear` (elu + 1) at the same N, CPU ms. */
  'elu ms': number;
  'x elu': number;
  /** The plain JS recurrence at the same N (CPU ms), or '-' above jsUpTo. */
  'js ms': number | string;
  'x faster than js': number | string;
};

export type GrowthRow = {
  rule: string;
  /** CPU time at N = 65536 over N = 16384 (4 for linear time). */
  'N=65536 / N=16384': number;
};

export type RecurrentStepRow = {
  rule: string;
  position: number;
  /** One step of all H heads, CPU microseconds (median of the timed batches). */
  'cpu us': number;
};

interface RuleCase {
  readonly name: string;
  readonly rule: RecurrentOptions['rule'];
  readonly perDim: boolean;
}

const RULE_CASES: readonly RuleCase[] = [
  { name: 'linear', rule: 'linear', perDim: false },
  { name: 'gated', rule: 'gated', perDim: false },
  { name: 'gated (decay per key dim)', rule: 'gated', perDim: true },
  { name: 'delta', rule: 'delta', perDim: false },
  { name: 'gatedDelta', rule: 'gatedDelta', perDim: false },
  { name: 'gatedDelta (decay per key dim)', rule: 'gatedDelta', perDim: true },
];

/** The median CPU ms of `rounds` calls, after one warm-up call. */
function medianCpuMs(fn: () => unknown, rounds: number): number {
  fn();
  return median(cpuRounds(fn, rounds));
}

/** Keys of unit length (the delta rules' contract), a decay of about -0.01 per token, beta in (0, 1). */
function inputsOf(c: RuleCase, N: number): { q: Tensor; k: Tensor; v: Tensor; options: RecurrentOptions } {
  const q = randomTensor([1, H, N, D], 1);
  const k = randomTensor([1, H, N, D], 2);
  for (let r = 0; r < H * N; r++) {
    const row = k.data.subarray(r * D, (r + 1) * D);
    const norm = Math.hypot(...row) || 1;
    for (let d = 0; d < D; d++) row[d] /= norm;
  }
  const v = randomTensor([1, H, N, D], 3);
  const options: RecurrentOptions = { rule: c.rule };
  if (c.rule === 'gated' || c.rule === 'gatedDelta') {
    const decay = randomTensor(c.perDim ? [1, H, N, D] : [1, H, N], 4);
    for (let i = 0; i < decay.data.length; i++) decay.data[i] = -0.01 * (1 + decay.data[i]);
    options.decay = decay;
  }
  if (c.rule === 'delta' || c.rule === 'gatedDelta') {
    const beta = randomTensor([1, H, N], 5);
    for (let i = 0; i < beta.data.length; i++) beta.data[i] = 0.5 + 0.4 * beta.data[i];
    options.beta = beta;
  }
  return { q, k, v, options };
}

/**
 * The plain recurrence a user would write in JS: float32 arrays, per token a
 * decay, a prediction (delta rules), a rank-1 write and a read, per head.
 */
function jsRecurrence(q: Tensor, k: Tensor, v: Tensor, options: RecurrentOptions): Float32Array {
  const N = q.dims[2];
  const out = new Float32Array(q.data.length);
  const S = new Float32Array(D * D);
  const u = new Float32Array(D);
  const scale = 1 / Math.sqrt(D);
  const decay = options.decay?.data;
  const perDim = options.decay ? options.decay.dims.length === 4 : false;
  const beta = options.beta?.data;
  for (let h = 0; h < H; h++) {
    S.fill(0);
    for (let t = 0; t < N; t++) {
      const row = (h * N + t) * D;
      if (decay) {
        for (let i = 0; i < D; i++) {
          const a = Math.exp(perDim ? decay[row + i] : decay[h * N + t]);
          for (let c = 0; c < D; c++) S[i * D + c] *= a;
        }
      }
      if (beta) {
        u.fill(0);
        for (let i = 0; i < D; i++) for (let c = 0; c < D; c++) u[c] += S[i * D + c] * k.data[row + i];
        for (let c = 0; c < D; c++) u[c] = beta[h * N + t] * (v.data[row + c] - u[c]);
      } else u.set(v.data.subarray(row, row + D));
      for (let i = 0; i < D; i++) for (let c = 0; c < D; c++) S[i * D + c] += k.data[row + i] * u[c];
      for (let c = 0; c < D; c++) {
        let sum = 0;
        for (let i = 0; i < D; i++) sum += S[i * D + c] * q.data[row + i];
        out[row + c] = scale * sum;
      }
    }
  }
  return out;
}

/** CPU ms of each call of `fn`, one per round. */
function cpuRounds(fn: () => unknown, rounds: number): number[] {
  return Array.from({ length: rounds }, () => cpuOf(fn));
}

/**
 * Each rule at each N, against elu linear and (up to jsUpTo) the plain JS
 * recurrence. The growth from N = 16384 to 65536 comes from rounds that
 * alternate the two sizes (the median of the per-round ratios), so that a
 * busy spell of the machine weighs on both alike.
 */
export async function benchRecurrent({ sizes = [1024, 4096, 16384, 65536], jsUpTo = 1024, rounds = 3, progress = (_: string) => {} } = {}): Promise<{ rows: RecurrentRow[]; growth: GrowthRow[] }> {
  const attn: Attention = await createAttention({ backend: 'wasm', threads: 1 });
  const eluMs = new Map<number, number>();
  for (const N of sizes) {
    progress(`recurrent: elu linear at N=${N}`);
    const x = randomTensor([1, H, N, D], 6);
    eluMs.set(N, medianCpuMs(() => attn.linear(x, x, x, { causal: true }), rounds));
  }
  const rows: RecurrentRow[] = [];
  const growth: GrowthRow[] = [];
  for (const c of RULE_CASES) {
    const times = new Map<number, number[]>();
    const calls = new Map(sizes.map((N) => {
      const { q, k, v, options } = inputsOf(c, N);
      return [N, { run: () => attn.recurrent(q, k, v, options), js: N <= jsUpTo ? () => jsRecurrence(q, k, v, options) : null }] as const;
    }));
    const paired = sizes.includes(16384) && sizes.includes(65536);
    for (const N of sizes) {
      if (paired && (N === 16384 || N === 65536)) continue;
      progress(`recurrent: ${c.name} at N=${N}`);
      const call = calls.get(N)!;
      call.run();
      times.set(N, cpuRounds(call.run, rounds));
    }
    if (paired) {
      progress(`recurrent: ${c.name} at N=16384 and 65536, alternating`);
      const [small, large] = [calls.get(16384)!.run, calls.get(65536)!.run];
      small();
      large();
      times.set(16384, []);
      times.set(65536, []);
      const ratios: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const [a] = cpuRounds(small, 1);
        const [b] = cpuRounds(large, 1);
        times.get(16384)!.push(a);
        times.get(65536)!.push(b);
        ratios.push(b / a);
      }
      growth.push({ rule: c.name, 'N=65536 / N=16384': median(ratios) });
    }
    for (const N of sizes) {
      const ms = median(times.get(N)!);
      const js = calls.get(N)!.js;
      const jsMs = js ? medianCpuMs(js, 1) : null;
      const elu = eluMs.get(N)!;
      rows.push({
        rule: c.name,
        N,
        'cpu ms': ms,
        'ns/token/head': (ms * 1e6) / (N * H),
        'elu ms': elu,
        'x elu': ms / elu,
        'js ms': jsMs ?? '-',
        'x faster than js': jsMs ? jsMs / ms : '-',
      });
    }
  }
  rows.sort((a, b) => a.N - b.N);
  attn.dispose();
  return { rows, growth };
}

/**
 * `recurrentState`'s step (H = 8, D = Dv = 64): one state advanced to each
 * of `positions`, then batches of `batch` tokens timed on each in turn
 * (`rounds` times, the median), so that tiering up and a busy machine weigh
 * on every position alike.
 */
export async function benchRecurrentStep({ positions = [1000, 60000], batch = 200, rounds = 5 } = {}): Promise<RecurrentStepRow[]> {
  const attn: Attention = await createAttention({ backend: 'wasm', threads: 1 });
  const rows: RecurrentStepRow[] = [];
  const tokens = randomTensor([64, 3, H * D], 7).data;
  const token = (t: number, which: number) => tokens.subarray(((t % 64) * 3 + which) * H * D, ((t % 64) * 3 + which + 1) * H * D);
  const decay = new Float32Array(H).fill(-0.01);
  const beta = new Float32Array(H).fill(0.5);
  for (const c of RULE_CASES.filter((x) => !x.perDim)) {
    const inputs = { decay: c.rule === 'gated' || c.rule === 'gatedDelta' ? decay : undefined, beta: c.rule === 'delta' || c.rule === 'gatedDelta' ? beta : undefined };
    const states: RecurrentState[] = positions.map(() => attn.recurrentState({ rule: c.rule, heads: H, dim: D }));
    const step = (state: RecurrentState) => state.step(token(state.position, 0), token(state.position, 1), token(state.position, 2), inputs);
    states.forEach((state, i) => {
      while (state.position < positions[i]) step(state);
    });
    const times = states.map((): number[] => []);
    for (let r = 0; r < rounds; r++) {
      states.forEach((state, i) => {
        const used = cpuOf(() => {
          for (let s = 0; s < batch; s++) step(state);
        });
        times[i].push((used * 1000) / batch);
      });
    }
    positions.forEach((position, i) => rows.push({ rule: c.name, position, 'cpu us': median(times[i]) }));
    for (const state of states) state.dispose();
  }
  attn.dispose();
  return rows;
}
