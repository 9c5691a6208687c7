/**
 * The model section of the suite: attention as models use it, each
 * comparison measured in one run (its rows in child processes of their own,
 * interleaved in rounds: bench/processes.ts), reported as ratios.
 *
 * - `gqa`: grouped-query attention, B = 1, H = 32 query heads, Hkv = 8 kv
 *   heads, D = 128 (Llama-like): `attn.full(q, k, v)` with k and v of 8 heads,
 *   against the same call with k and v repeated to 32 heads (repeat_interleave:
 *   head h reads kv head floor(h / 4)), and against onnxruntime-web's ONNX
 *   `Attention` op (opset 23, 3D inputs, q_num_heads = 32, kv_num_heads = 8).
 *   Their WebAssembly memory too: grouped-query heads are read in place, so
 *   ours grows with Hkv, not H. `--full` adds our causal call against the
 *   `com.microsoft` GroupQueryAttention op, which is causal by construction.
 * - `terms`: B = 1, H = 8, D = 64: `full` with a BigBird-like block mask
 *   (about 3/4 of its 64 x 64 blocks hidden), with an ALiBi-like `bias`
 *   `[N, N]` and with `softcap: 30`, against plain `full`: the mask's speed-up
 *   and the overhead of the bias and of the cap.
 *
 * Our rows run bench/peers/model.ts (`modelCall` below makes their inputs
 * and options), the onnxruntime-web rows bench/peers/ort.ts.
 */
import type { FullOptions, Tensor } from 'wasm-attention';
import { median, randomTensor } from './measure.js';
import { fmtMs, measureGroup, table, type GroupMember, type TimingRow } from './processes.js';
import { sampleIndices } from './suite.js';

// ---------------------------------------------------------------- the calls

/** Mask and bias as `full` takes them: broadcast to `[B, H, Nq, Nk]` by NumPy rules. */
export interface MaskTensor {
  data: Uint8Array;
  dims: number[];
}

/**
 * The options of these calls. `mask`, `bias` and `softcap` are `full`'s model
 * terms; declared here as well, so that the bench also compiles against a
 * `FullOptions` that does not name them yet.
 */
export type ModelOptions = FullOptions & { mask?: MaskTensor; bias?: Tensor; softcap?: number };

/** Side of the mask's blocks (the flash kernel's key block: a hidden block is skipped whole). */
export const BLOCK = 64;
/** The cap of the softcap row (Gemma 2 caps its attention logits at 50, Grok at 30). */
export const SOFTCAP = 30;
/** ALiBi's slope of the bias row (one head's: ALiBi gives head h of 8 the slope 2^-(h + 1)). */
export const ALIBI_SLOPE = 1 / 16;

/** A seeded generator of integers in [0, n) (a linear congruential generator: the picks need no statistics). */
function picker(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

export interface BlockMask extends MaskTensor {
  /** Visible blocks, of `blocks`. */
  visibleBlocks: number;
  blocks: number;
  /** Random blocks picked per block row. */
  randomPerRow: number;
}

/**
 * A BigBird-like block mask `[N, N]` of `block` x `block` blocks: a band of
 * one block each side of the diagonal, the first block row and column global,
 * and a seeded random pick per block row among the blocks still hidden, so
 * that about `visible` of the blocks are seen (1/4 by default; BigBird itself
 * picks 3 random blocks). 1 = seen, 0 = hidden; every row sees its own block.
 */
export function bigBirdMask(N: number, { block = BLOCK, visible = 0.25, seed = 1 } = {}): BlockMask {
  const nb = Math.ceil(N / block);
  const seen = new Uint8Array(nb * nb);
  const pick = picker(seed);
  const band = (r: number, c: number) => Math.abs(r - c) <= 1 || r === 0 || c === 0;
  // band, first block row and column: 4 blocks of most rows; the rest random
  const randomPerRow = Math.max(0, Math.round(visible * nb) - 4);
  for (let r = 0; r < nb; r++) {
    const hidden: number[] = [];
    for (let c = 0; c < nb; c++) {
      if (band(r, c)) seen[r * nb + c] = 1;
      else hidden.push(c);
    }
    // a partial Fisher-Yates shuffle: the first randomPerRow of the hidden blocks
    for (let t = 0; t < Math.min(randomPerRow, hidden.length); t++) {
      const u = t + pick(hidden.length - t);
      [hidden[t], hidden[u]] = [hidden[u], hidden[t]];
      seen[r * nb + hidden[t]] = 1;
    }
  }
  const data = new Uint8Array(N * N);
  for (let i = 0; i < N; i++) {
    const rowBlocks = seen.subarray(Math.floor(i / block) * nb, (Math.floor(i / block) + 1) * nb);
    for (let c = 0; c < nb; c++) if (rowBlocks[c]) data.fill(1, i * N + c * block, Math.min(N, (c + 1) * block) + i * N);
  }
  return { data, dims: [N, N], visibleBlocks: seen.reduce((a, b) => a + b, 0), blocks: nb * nb, randomPerRow };
}

/** An ALiBi-like bias `[N, N]`: `-slope |i - j|` (one slope for every head). */
export function alibiBias(N: number, slope = ALIBI_SLOPE): Tensor {
  const data = new Float32Array(N * N);
  for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) data[i * N + j] = -slope * Math.abs(i - j);
  return { data, dims: [N, N] };
}

/** `[1, Hkv, N, D]` -> `[1, H, N, D]`: head h is kv head floor(h / (H / Hkv)) (repeat_interleave). */
export function repeatKvHeads(x: Tensor, H: number): Tensor {
  const [B, Hkv, N, D] = x.dims;
  const group = H / Hkv;
  const out = new Float32Array(B * H * N * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const from = (b * Hkv + Math.floor(h / group)) * N * D;
      out.set(x.data.subarray(from, from + N * D), (b * H + h) * N * D);
    }
  }
  return { data: out, dims: [B, H, N, D] };
}

/** Our rows, by the `case` parameter of bench/peers/model.ts. */
export type ModelCase = 'gqa' | 'repeated' | 'gqa causal' | 'plain' | 'mask' | 'bias' | 'softcap';

/**
 * The inputs and options of one of our rows: q `[1, H, N, D]` (seed 1), k and
 * v `[1, Hkv, N, D]` (seeds 2 and 3; the onnxruntime-web rows use the same
 * values), repeated to H heads for 'repeated'. Made once, outside the timed calls.
 */
export function modelCall(id: ModelCase, { N, H, D, Hkv = H }: { N: number; H: number; D: number; Hkv?: number }) {
  const q = randomTensor([1, H, N, D], 1);
  let k: Tensor = randomTensor([1, Hkv, N, D], 2);
  let v: Tensor = randomTensor([1, Hkv, N, D], 3);
  const options: ModelOptions = {};
  const info: Record<string, unknown> = { kvHeads: Hkv };
  if (id === 'repeated') {
    [k, v] = [repeatKvHeads(k, H), repeatKvHeads(v, H)];
    info.kvHeads = H;
  }
  if (id === 'gqa causal') options.causal = true;
  if (id === 'mask') {
    const { data, dims, visibleBlocks, blocks, randomPerRow } = bigBirdMask(N);
    options.mask = { data, dims };
    Object.assign(info, { visibleBlocks, blocks, randomPerRow });
  }
  if (id === 'bias') options.bias = alibiBias(N);
  if (id === 'softcap') options.softcap = SOFTCAP;
  return { q, k, v, options, info };
}

// ---------------------------------------------------------------- the section

/** One row of the section. */
export interface ModelMember extends GroupMember {
  /** Largest N it runs at, and why. */
  maxN?: { N: number; why: string };
  /** Only in the full sweep. */
  fullOnly?: boolean;
  note: string;
}

export interface ModelPart {
  /** What it measures, for the report. */
  title: string;
  H: number;
  Hkv: number;
  D: number;
  /** Its sizes in the quick and the full sweep. */
  sizes: { quick: number[]; full: number[] };
  members: ModelMember[];
}

export type ModelPartName = 'gqa' | 'terms';

const flopsOf = (H: number, D: number) => (N: number) => 4 * H * N * N * D;
/** Causal: the kept pairs only, N (N + 1) / 2 per head. */
const causalFlopsOf = (H: number, D: number) => (N: number) => 2 * H * N * (N + 1) * D;
const GQA = { H: 32, Hkv: 8, D: 128 };
const TERMS = { H: 8, Hkv: 8, D: 64 };
const ours = (id: string, c: ModelCase, part: { H: number; Hkv: number; D: number }, note: string, more: Partial<ModelMember> = {}): ModelMember => ({
  id,
  kind: 'ours',
  worker: 'model',
  params: { case: c, Hkv: part.Hkv },
  flops: flopsOf(part.H, part.D),
  note,
  ...more,
});

/** Row ids, as the report and the JSON name them. */
export const ROW = {
  gqa: `full GQA (Hkv = ${GQA.Hkv})`,
  repeated: `full, k and v repeated to ${GQA.H} heads`,
  ortAttention: 'ort Attention (opset 23)',
  gqaCausal: `full GQA causal (Hkv = ${GQA.Hkv})`,
  ortGqa: 'ort GroupQueryAttention (causal)',
  plain: 'full',
  mask: 'full + block mask',
  bias: 'full + bias',
  softcap: `full + softcap ${SOFTCAP}`,
} as const;

export const modelParts: Record<ModelPartName, ModelPart> = {
  gqa: {
    title: `grouped-query attention, B=1 H=${GQA.H} Hkv=${GQA.Hkv} D=${GQA.D}`,
    ...GQA,
    // a call at N = 4096 is ~275 GFLOP, ~8 s: only in the full sweep
    sizes: { quick: [1024], full: [1024, 4096] },
    members: [
      ours(ROW.gqa, 'gqa', GQA, `attn.full(q, k, v) with q of ${GQA.H} heads, k and v of ${GQA.Hkv} (read in place)`),
      ours(ROW.repeated, 'repeated', GQA, `attn.full(q, k, v) with k and v repeated to ${GQA.H} heads beforehand (repeat_interleave)`),
      {
        id: ROW.ortAttention,
        kind: 'peer',
        worker: 'ort',
        params: { model: 'attention', Hkv: GQA.Hkv },
        flops: flopsOf(GQA.H, GQA.D),
        note: `onnxruntime-web wasm, numThreads 1: the ONNX Attention op (opset 23), 3D inputs [1, N, H*D], q_num_heads ${GQA.H}, kv_num_heads ${GQA.Hkv}`,
      },
      ours(ROW.gqaCausal, 'gqa causal', GQA, `attn.full(q, k, v, { causal: true }) with k and v of ${GQA.Hkv} heads`, {
        fullOnly: true,
        maxN: { N: 2048, why: 'the row it is compared with stops there' },
        flops: causalFlopsOf(GQA.H, GQA.D),
      }),
      {
        id: ROW.ortGqa,
        kind: 'peer',
        worker: 'ort',
        params: { model: 'gqa', Hkv: GQA.Hkv },
        flops: causalFlopsOf(GQA.H, GQA.D),
        fullOnly: true,
        maxN: { N: 2048, why: 'onnxruntime-web 1.30 takes ~170 s a call at N = 4096' },
        note: `onnxruntime-web wasm, numThreads 1: com.microsoft GroupQueryAttention (causal by construction), no past, num_heads ${GQA.H}, kv_num_heads ${GQA.Hkv}`,
      },
    ],
  },
  terms: {
    title: `model terms: mask, bias, softcap, B=1 H=${TERMS.H} D=${TERMS.D}`,
    ...TERMS,
    sizes: { quick: [4096], full: [4096] },
    members: [
      ours(ROW.plain, 'plain', TERMS, 'attn.full(q, k, v)'),
      ours(ROW.mask, 'mask', TERMS, `attn.full(q, k, v, { mask }): BigBird-like ${BLOCK} x ${BLOCK} block mask [N, N] (band of one block each side, first block row and column, seeded random blocks; about 1/4 of the blocks seen)`),
      ours(ROW.bias, 'bias', TERMS, `attn.full(q, k, v, { bias }): ALiBi-like bias [N, N], -${ALIBI_SLOPE} |i - j|`),
      ours(ROW.softcap, 'softcap', TERMS, `attn.full(q, k, v, { softcap: ${SOFTCAP} })`),
    ],
  },
};

/**
 * A ratio of two rows, `numerator` time / `denominator` time. Both run once
 * in every round, a few seconds apart: the ratio of each round is taken and
 * their median reported (paired by round, so that a slow spell of the shared
 * machine falls on both sides), of CPU time per call (the section's figure:
 * it leaves out time spent descheduled) and of wall time; and for comparison
 * the ratio of the wall-time medians and that of the fastest calls.
 */
export interface ModelRatio {
  part: ModelPartName;
  N: number;
  what: string;
  numerator: string;
  denominator: string;
  /** Median over rounds of the ratio of CPU time per call. */
  cpu?: number;
  /** The smallest and the largest ratio of CPU time of a round. */
  cpuRange?: [number, number];
  /** Median over rounds of the ratio of wall time per call. */
  wall?: number;
  /** Ratio of the medians of wall time over all calls. */
  medians?: number;
  /** Ratio of the fastest calls. */
  fastest?: number;
  rounds: number;
}

/** The ratios a[r] / b[r] of each round (none when the rounds do not pair up). */
function roundRatios(a: number[] | undefined, b: number[] | undefined): number[] {
  return a && b && a.length === b.length ? a.map((x, r) => x / b[r]) : [];
}
const medianOf = (xs: number[]) => (xs.length > 0 ? median(xs) : undefined);

export interface ModelSection {
  rounds: number;
  rows: (TimingRow & { part: ModelPartName; H: number; Hkv: number; D: number })[];
  ratios: ModelRatio[];
  /** Max |difference| of outputs on 64 sampled entries between rows that compute the same thing. */
  agreement: { N: number; a: string; b: string; maxDiff: number }[];
  /** The mask of the 'full + block mask' row, by N. */
  mask: { N: number; visibleBlocks: number; blocks: number; fraction: number; randomPerRow: number }[];
  /** WebAssembly memory of GQA against k and v repeated, by N. */
  memory: { N: number; gqaBytes: number; repeatedBytes: number; kvBytes: number; repeatedKvBytes: number }[];
  notes: Record<string, string>;
  info: Record<string, Record<string, unknown>>;
}

export interface ModelSettings {
  parts: ModelPartName[];
  /** Sizes for every part, instead of each one's (e.g. tiny ones for a smoke test). */
  sizes?: number[];
  full: boolean;
  rounds: number;
  perRound: (ms: number) => number;
  /** A row whose first call takes longer (ms) is measured by that call alone. */
  oneCallAbove: number;
  progress: (message: string) => void;
}

/** Measures the selected parts of the section, each size of each part as one group. */
export async function runModelSection(settings: ModelSettings): Promise<ModelSection> {
  const section: ModelSection = { rounds: settings.rounds, rows: [], ratios: [], agreement: [], mask: [], memory: [], notes: {}, info: {} };
  for (const name of settings.parts) {
    const part = modelParts[name];
    const members = part.members.filter((m) => settings.full || !m.fullOnly);
    for (const m of members) section.notes[m.id] = m.note;
    for (const N of settings.sizes ?? (settings.full ? part.sizes.full : part.sizes.quick)) {
      const shape = { part: name, H: part.H, Hkv: part.Hkv, D: part.D };
      const group = members.filter((m) => !m.maxN || N <= m.maxN.N);
      const result = await measureGroup(group, {
        N,
        H: part.H,
        D: part.D,
        rounds: settings.rounds,
        perRound: settings.perRound,
        // one extra call at least (V8 optimises between calls), a few when calls are short
        warm: { calls: 1, ms: 300 },
        oneCallAbove: () => settings.oneCallAbove,
        keepRounds: true,
        sampleAt: sampleIndices(N, part.H, part.D),
        label: `${name} N=${N}`,
        progress: settings.progress,
      });
      const order = (id: string) => group.findIndex((m) => m.id === id);
      for (const row of [...result.rows].sort((a, b) => order(a.impl) - order(b.impl))) section.rows.push({ ...row, ...shape });
      for (const m of members.filter((member) => !group.includes(member))) {
        section.rows.push({ impl: m.id, kind: m.kind, N, status: 'skipped', reason: `N > ${m.maxN!.N}: ${m.maxN!.why}`, ...shape });
      }
      for (const [id, info] of result.info) section.info[id] = info;
      const at = (id: string) => result.rows.find((r) => r.impl === id && r.status === 'ok' && r.medianMs);
      const ratio = (what: string, numerator: string, denominator: string) => {
        const [a, b] = [at(numerator), at(denominator)];
        if (!a || !b) return;
        const cpu = roundRatios(a.roundCpuMs, b.roundCpuMs);
        section.ratios.push({
          part: name,
          N,
          what,
          numerator,
          denominator,
          cpu: medianOf(cpu),
          cpuRange: cpu.length > 0 ? [Math.min(...cpu), Math.max(...cpu)] : undefined,
          wall: medianOf(roundRatios(a.roundMs, b.roundMs)),
          medians: a.medianMs! / b.medianMs!,
          fastest: a.minMs! / b.minMs!,
          rounds: Math.min(a.roundMs?.length ?? 0, b.roundMs?.length ?? 0),
        });
      };
      const agree = (a: string, b: string) => {
        const [x, y] = [result.samples.get(a), result.samples.get(b)];
        if (x && y) section.agreement.push({ N, a, b, maxDiff: Math.max(...x.map((value, i) => Math.abs(value - y[i]))) });
      };
      if (name === 'gqa') {
        ratio('k and v repeated / GQA (> 1: GQA is faster)', ROW.repeated, ROW.gqa);
        ratio('onnxruntime-web Attention / our GQA (> 1: ours is faster)', ROW.ortAttention, ROW.gqa);
        ratio('onnxruntime-web GroupQueryAttention / our causal GQA (> 1: ours is faster)', ROW.ortGqa, ROW.gqaCausal);
        agree(ROW.gqa, ROW.repeated);
        agree(ROW.gqa, ROW.ortAttention);
        agree(ROW.repeated, ROW.ortAttention);
        agree(ROW.gqaCausal, ROW.ortGqa);
        const [gqa, repeated] = [result.rows.find((r) => r.impl === ROW.gqa), result.rows.find((r) => r.impl === ROW.repeated)];
        if (gqa?.wasmBytes && repeated?.wasmBytes) {
          const kv = (heads: number) => 2 * heads * N * part.D * 4;
          section.memory.push({ N, gqaBytes: gqa.wasmBytes, repeatedBytes: repeated.wasmBytes, kvBytes: kv(part.Hkv), repeatedKvBytes: kv(part.H) });
        }
      } else {
        ratio('full / full + block mask: the mask\'s speed-up', ROW.plain, ROW.mask);
        ratio('full + bias / full: the overhead of the bias', ROW.bias, ROW.plain);
        ratio(`full + softcap ${SOFTCAP} / full: the overhead of the cap`, ROW.softcap, ROW.plain);
        // the mask's block counts, as its row's process made it
        const m = result.info.get(ROW.mask) as { visibleBlocks: number; blocks: number; randomPerRow: number } | undefined;
        if (m) section.mask.push({ N, visibleBlocks: m.visibleBlocks, blocks: m.blocks, randomPerRow: m.randomPerRow, fraction: m.visibleBlocks / m.blocks });
      }
    }
  }
  return section;
}

const MiB = 2 ** 20;
const x = (r: number | undefined) => (r === undefined ? '-' : `${r.toFixed(2)}x`);

/** Prints the section's tables. */
export function printModelSection(section: ModelSection): void {
  if (section.rows.length === 0) return;
  const cell = (r: TimingRow) => {
    if (r.status === 'skipped') return ['skipped', '-', '-'];
    if (r.status === 'error') return ['error', '-', '-'];
    return [fmtMs(r.medianMs), fmtMs(r.cpuMs), r.gflops ? r.gflops.toFixed(1) : '-'];
  };
  for (const name of Object.keys(modelParts) as ModelPartName[]) {
    const rows = section.rows.filter((r) => r.part === name);
    if (rows.length === 0) continue;
    table(
      `Attention as models use it: ${modelParts[name].title}, one thread, ${section.rounds} interleaved round${section.rounds > 1 ? 's' : ''} (median time per call, wall and CPU)`,
      ['row', 'N', 'wall', 'CPU', 'GFLOP/s', 'calls', 'wasm MiB'],
      rows.map((r) => [r.impl, String(r.N), ...cell(r), r.samples ? String(r.samples) : '-', r.wasmBytes ? (r.wasmBytes / MiB).toFixed(0) : '-']),
    );
  }
  if (section.ratios.length > 0) {
    table(
      'Ratios of the model section: median over rounds of each round\'s ratio of CPU time per call (the figure) and of wall time; ratio of the wall-time medians and of the fastest calls for comparison',
      ['N', 'ratio', 'CPU, by round [rounds\' min-max]', 'wall, by round', 'medians', 'fastest'],
      section.ratios.map((r) => [String(r.N), r.what, `${x(r.cpu)}${r.cpuRange ? ` [${r.cpuRange.map((v) => v.toFixed(2)).join('-')}]` : ''}`, x(r.wall), x(r.medians), x(r.fastest)]),
    );
  }
  for (const m of section.mask) {
    console.log(`Block mask at N=${m.N}: ${m.visibleBlocks} of ${m.blocks} blocks of ${BLOCK} x ${BLOCK} seen (${(100 * m.fraction).toFixed(1)}%; band, global first block row and column, ${m.randomPerRow} random per block row)`);
  }
  for (const m of section.memory) {
    console.log(
      `WebAssembly memory at N=${m.N}: GQA ${(m.gqaBytes / MiB).toFixed(1)} MiB, k and v repeated ${(m.repeatedBytes / MiB).toFixed(1)} MiB: ` +
        `${((m.repeatedBytes - m.gqaBytes) / MiB).toFixed(1)} MiB less, the k and v of ${modelParts.gqa.H - modelParts.gqa.Hkv} heads are ${((m.repeatedKvBytes - m.kvBytes) / MiB).toFixed(1)} MiB`,
    );
  }
  for (const a of section.agreement) {
    console.log(`Outputs of ${a.a} and ${a.b} at N=${a.N} on 64 sampled entries: max difference ${a.maxDiff.toExponential(1)}${a.maxDiff > 1e-3 ? ' MISMATCH' : ''}`);
  }
  for (const r of section.rows.filter((row) => row.status !== 'ok' || row.reason)) {
    console.log(`  ${r.impl} N=${r.N}: ${r.status === 'error' ? 'ERROR ' : ''}${r.reason}`);
  }
}
