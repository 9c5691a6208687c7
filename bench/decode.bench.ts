/**
 * The decoding section: one step of a decoder at cache lengths L (H = 32
 * query heads, Hkv = 8 kv heads, D = 128, one thread), every row in one
 * child process (started with relaxed SIMD enabled, so that both builds run
 * in it), interleaved in rounds and timed in CPU time, so that their ratios
 * come from the same spells of the shared machine:
 *
 * - `cache step`: `cache.append(k_t, v_t)` then `cache.attend(q_t)` on an
 *   `attn.kvCache` holding L positions (SPEC "Decoding"), plain SIMD build;
 * - `cache step (relaxed SIMD)`: the same on the relaxed-SIMD build (fused
 *   multiply-add), the default where the runtime has relaxed SIMD;
 * - `copy K, V`: `TypedArray.set` of the cache's keys and values once, the
 *   memory-bound reference (a step must read them all at least once);
 * - `full, no cache`: `attn.full(q_t, K, V)` with K and V already in
 *   WebAssembly memory (`attn.tensor`), which re-packs them every step;
 * - `ort Attention + past`: onnxruntime-web's ONNX `Attention` op (opset 23)
 *   with `past_key` / `past_value` for one new token (it returns the
 *   presents: a copy of the cache per step, as the operator defines).
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createAttention, type Attention, type Tensor } from 'wasm-attention';
import { cpuMs, median, randomTensor, type Refill } from './measure.js';
import { attentionDecodeModel } from './peers/onnx.js';
import { fmtMs, sectionInChild, serveSection, table } from './processes.js';

export const DECODE = { H: 32, Hkv: 8, D: 128 };
export const DECODE_SIZES = [1024, 4096, 16384, 32768];

export interface DecodeRow {
  L: number;
  row: string;
  /** Median over rounds of CPU ms per call. */
  ms: number;
  /** Median over rounds of this row's time / the copy's (paired by round). */
  perCopy: number;
  /** The smallest and largest such ratio of a round. */
  perCopyRange: [number, number];
}

export interface DecodeSection {
  rounds: number;
  rows: DecodeRow[];
  /** max |cache step - full, no cache| (plain and relaxed builds) and |cache step - ort| over the outputs, per L. */
  agreement: { L: number; full: number; relaxed: number; ort: number }[];
  notes: Record<string, string>;
}

export const DECODE_ROWS = {
  step: 'cache step',
  relaxed: 'cache step (relaxed SIMD)',
  copy: 'copy K, V',
  full: 'full, no cache',
  ort: 'ort Attention + past',
} as const;

const notes: Record<string, string> = {
  [DECODE_ROWS.step]: 'cache.append(k_t, v_t) then cache.attend(q_t): attn.kvCache holding L positions, q_t [1, 32, 1, 128], plain SIMD build',
  [DECODE_ROWS.relaxed]: 'the same on the relaxed-SIMD build (fused multiply-add; the default where the runtime has relaxed SIMD)',
  [DECODE_ROWS.copy]: "Float32Array.set of the cache's K and V (2 Hkv L D floats): the memory-bound reference",
  [DECODE_ROWS.full]: 'attn.full(q_t, K, V) with K, V [1, 8, L, 128] in WebAssembly memory (attn.tensor): re-packed every step',
  [DECODE_ROWS.ort]: 'onnxruntime-web wasm, numThreads 1: ONNX Attention (opset 23) with past_key / past_value [1, 8, L, 128] and one new token',
};

interface Runner {
  row: string;
  call: () => unknown;
  out?: () => Promise<Float32Array> | Float32Array;
  refill?: Refill;
}

/** A cache holding K, V on `attn`, its step (append k_t, v_t, then attend q_t) and its refill. */
function cacheStep(attn: Attention, K: Tensor, V: Tensor, qt: Tensor, kt: Tensor, vt: Tensor) {
  const [, Hkv, L, D] = K.dims;
  // refilled before every L / 64 steps (cpuMs): the step's cost stays that of L
  const cache = attn.kvCache({ heads: Hkv, dim: D, capacity: L + L / 64 });
  const refill = () => {
    cache.reset();
    cache.append(K, V);
  };
  refill();
  const step = () => {
    cache.append(kt, vt);
    return cache.attend(qt).data;
  };
  return { cache, refill, step };
}

/** The rows at cache length L. */
async function runnersAt(L: number): Promise<{ runners: Runner[]; dispose: () => void }> {
  const { H, Hkv, D } = DECODE;
  const attn = await createAttention({ threads: 1, relaxedSimd: false });
  const relaxedAttn = await createAttention({ threads: 1, relaxedSimd: true });
  const K = randomTensor([1, Hkv, L, D], 2);
  const V = randomTensor([1, Hkv, L, D], 3);
  const qt = randomTensor([1, H, 1, D], 1);
  const kt = randomTensor([1, Hkv, 1, D], 4);
  const vt = randomTensor([1, Hkv, 1, D], 5);
  const plain = cacheStep(attn, K, V, qt, kt, vt);
  const relaxed = cacheStep(relaxedAttn, K, V, qt, kt, vt);
  const kw = attn.tensor(K.dims, K.data);
  const vw = attn.tensor(V.dims, V.data);
  // the copy reads real numbers (pages never written would all read as one page of zeros)
  const src = new Float32Array(2 * Hkv * L * D);
  src.set(K.data);
  src.set(V.data, K.data.length);
  const dst = new Float32Array(2 * Hkv * L * D);

  const ort = await import('onnxruntime-web');
  const require = createRequire(import.meta.url);
  ort.env.wasm.wasmPaths = pathToFileURL(`${dirname(require.resolve('onnxruntime-web'))}/`).href;
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  const session = await ort.InferenceSession.create(attentionDecodeModel(H, Hkv, D, 1 / Math.sqrt(D)), {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  /** [1, heads, 1, D] -> [1, 1, heads*D]: the same numbers (one position). */
  const feeds = {
    q: new ort.Tensor('float32', qt.data, [1, 1, H * D]),
    k: new ort.Tensor('float32', kt.data, [1, 1, Hkv * D]),
    v: new ort.Tensor('float32', vt.data, [1, 1, Hkv * D]),
    past_key: new ort.Tensor('float32', K.data, [1, Hkv, L, D]),
    past_value: new ort.Tensor('float32', V.data, [1, Hkv, L, D]),
  };
  const ortStep = async () => (await session.run(feeds)).out.data as Float32Array;
  // the cache's first step appends (k_t, v_t): full and ort see the same L + 1 positions
  const withNew = (x: Tensor, t: Tensor): Tensor => {
    const out = new Float32Array(Hkv * (L + 1) * D);
    for (let h = 0; h < Hkv; h++) {
      out.set(x.data.subarray(h * L * D, (h + 1) * L * D), h * (L + 1) * D);
      out.set(t.data.subarray(h * D, (h + 1) * D), (h * (L + 1) + L) * D);
    }
    return { data: out, dims: [1, Hkv, L + 1, D] };
  };
  const firstStep = plain.step();
  plain.refill();
  const firstRelaxed = relaxed.step();
  relaxed.refill();
  const fullOut = attn.full(qt, withNew(K, kt), withNew(V, vt)).data;
  const runners: Runner[] = [
    { row: DECODE_ROWS.step, call: plain.step, out: () => firstStep, refill: { every: L / 64, prepare: plain.refill } },
    { row: DECODE_ROWS.relaxed, call: relaxed.step, out: () => firstRelaxed, refill: { every: L / 64, prepare: relaxed.refill } },
    { row: DECODE_ROWS.copy, call: () => dst.set(src) },
    { row: DECODE_ROWS.full, call: () => attn.full(qt, kw, vw), out: () => fullOut },
    { row: DECODE_ROWS.ort, call: ortStep, out: ortStep },
  ];
  return {
    runners,
    dispose: () => {
      plain.cache.dispose();
      relaxed.cache.dispose();
      kw.free();
      vw.free();
      void session.release();
      attn.dispose();
      relaxedAttn.dispose();
    },
  };
}

/** Measures the rows at each size, in this process (both builds: relaxed SIMD must be enabled). */
async function measureDecode(sizes: number[], rounds: number, progress: (message: string) => void): Promise<DecodeSection> {
  const section: DecodeSection = { rounds, rows: [], agreement: [], notes };
  for (const L of sizes) {
    progress(`decode L=${L}`);
    const { runners, dispose } = await runnersAt(L);
    // warm-up: V8 tiers the kernels up over the first calls
    for (const r of runners) await cpuMs(r.call, 200, r.refill);
    const times = runners.map(() => [] as number[]);
    for (let round = 0; round < rounds; round++) {
      // the order rotates, so that drift on a shared machine spreads over every row
      for (let n = 0; n < runners.length; n++) {
        const i = (n + round) % runners.length;
        times[i].push(await cpuMs(runners[i].call, 150, runners[i].refill));
      }
      progress(`decode L=${L} round ${round + 1}/${rounds}`);
    }
    const copy = times[runners.findIndex((r) => r.row === DECODE_ROWS.copy)];
    for (const [i, r] of runners.entries()) {
      const ratios = times[i].map((t, round) => t / copy[round]);
      section.rows.push({ L, row: r.row, ms: median(times[i]), perCopy: median(ratios), perCopyRange: [Math.min(...ratios), Math.max(...ratios)] });
    }
    const out = async (row: string) => runners.find((r) => r.row === row)!.out!();
    const diff = async (a: string, b: string) => {
      const [x, y] = [await out(a), await out(b)];
      return Math.max(...Array.from(x, (v, i) => Math.abs(v - y[i])));
    };
    section.agreement.push({
      L,
      full: await diff(DECODE_ROWS.step, DECODE_ROWS.full),
      relaxed: await diff(DECODE_ROWS.relaxed, DECODE_ROWS.full),
      ort: await diff(DECODE_ROWS.step, DECODE_ROWS.ort),
    });
    dispose();
  }
  return section;
}

const CHILD = '--decode-child';

/**
 * The section, measured in a child process started with relaxed SIMD
 * enabled (Node 20 has it behind a flag), so that the plain and relaxed
 * builds, the copy and the peers share one process.
 */
export async function runDecodeSection({ sizes = DECODE_SIZES, rounds = 5, progress = (_: string) => {} } = {}): Promise<DecodeSection> {
  return sectionInChild(import.meta.url, CHILD, { sizes, rounds }, progress, ['--experimental-wasm-relaxed-simd']);
}

serveSection(CHILD, ({ sizes, rounds }: { sizes: number[]; rounds: number }, progress) => measureDecode(sizes, rounds, progress));

export function printDecodeSection(section: DecodeSection): void {
  if (section.rows.length === 0) return;
  const { H, Hkv, D } = DECODE;
  const body = section.rows.map((r) => [
    String(r.L),
    r.row,
    fmtMs(r.ms),
    (1000 / r.ms).toFixed(0),
    `${r.perCopy.toFixed(2)}x [${r.perCopyRange[0].toFixed(2)}-${r.perCopyRange[1].toFixed(2)}]`,
  ]);
  table(`decoding: one step, B=1 H=${H} Hkv=${Hkv} D=${D}, one thread, ${section.rounds} rounds (CPU time; x copy: the step / copying K and V once, paired by round)`, ['L', 'row', 'ms', 'tokens/s', 'x copy'], body);
  for (const a of section.agreement) {
    console.log(`  L=${a.L}: max |cache step - full| ${a.full.toExponential(1)} (relaxed build ${a.relaxed.toExponential(1)}), max |cache step - ort| ${a.ort.toExponential(1)}`);
  }
  for (const [row, note] of Object.entries(section.notes)) console.log(`  ${row}: ${note}`);
}
