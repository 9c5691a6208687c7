/**
 * `npm run bench`: the micro-benchmark suite (bench/suite.ts) — every
 * registered variant side by side with tfjs-backend-wasm and
 * onnxruntime-web, each implementation in a child process of its own per
 * size, configurations interleaved in rounds; then the accuracy of every
 * approximate variant against exact attention. Writes a table on stdout,
 * `<out>/latest.json` and SVG charts.
 *
 * Then the model section (bench/model.bench.ts): grouped-query attention and
 * full with a mask, a bias and a cap, as ratios measured in the same run.
 * Then the decoding section and, when asked, the patterns, threads,
 * families, recurrent and backward sections. The options: bench/args.ts (`--help`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { createAttention, hasSimd, variantNames } from 'wasm-attention';
import { DATASETS, accuracyCases, measureAccuracy, type AccuracyRow } from './accuracy.js';
import { printModelSection, runModelSection, type ModelPartName, type ModelSection } from './model.bench.js';
import { benchLongSequence } from './long-sequence.bench.js';
import { printDecodeSection, runDecodeSection, type DecodeSection } from './decode.bench.js';
import { benchFamilies, printFamilies, type FamiliesSection } from './families.js';
import { measurePeaks, type Peaks } from './peak.js';
import { median, printTable } from './measure.js';
import { benchGrad, benchGradMemory, type GradMemory, type GradRow } from './grad.bench.js';
import { benchPatterns, printPatterns, type PatternRow } from './patterns.bench.js';
import { benchThreads, printThreads, type ThreadRow } from './threads.bench.js';
import { benchRecurrent, benchRecurrentStep, type GrowthRow, type RecurrentRow, type RecurrentStepRow } from './recurrent.bench.js';
import { fmtMs, measureGroup, table, type TimingRow } from './processes.js';
import { D, H, benchCases, peerImpls, sampleIndices, selectImpls, sizesOf, type Impl } from './suite.js';
import { writeCharts } from './charts.js';
import {
  accuracyBudgetS, accuracyN, args, baseSizes, budgetMs, chartDir, decodeSizes, essentialBudgetMs, explicitSizes, fullSweep, jsonPath, list, mode,
  modelRounds, modelSelected, modelSizes, noVariants, peerNames, rounds, roundMs, timingBudgetS,
} from './args.js';

const MiB = 2 ** 20;
const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;

// ---------------------------------------------------------------- progress

const tty = process.stderr.isTTY;
function progress(message: string): void {
  const line = `[${elapsed().toFixed(0).padStart(3)} s] ${message}`;
  if (tty) process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 100) - 1)}`);
  else process.stderr.write(`${line}\n`);
}
const progressDone = () => tty && process.stderr.write('\r\x1b[K');

// ---------------------------------------------------------------- timing

// --variants none: the peers alone (or nothing, with --peers none: the model section alone)
const { impls, missing, unknown } = selectImpls(noVariants ? [] : list(args.variants), peerNames);
if (noVariants) impls.splice(0, impls.length, ...impls.filter((i) => i.kind === 'peer' || i.kind === 'ours-js'));
if (unknown.length > 0) throw new RangeError(`--variants: unknown ${unknown.map((u) => `'${u}'`).join(', ')}; registered: ${variantNames.join(', ')}`);
for (const name of missing) console.log(`${name}: no benchmark options (add a case to benchCases in bench/suite.ts)`);

const rows: TimingRow[] = [];
const samplesOf = new Map<string, number[]>(); // `${impl}@${N}` -> output samples
/** Last measured median per implementation, to predict the next size. */
const last = new Map<string, { N: number; ms: number }>();
/** Implementations that failed: not tried at larger sizes. */
const failed = new Map<string, string>();
const infoOf = new Map<string, Record<string, unknown>>();

const allSizes = [...new Set(impls.flatMap((i) => sizesOf(i, baseSizes, explicitSizes)))].sort((a, b) => a - b);
const essential = (impl: Impl) => impl.id === 'full' || impl.kind === 'peer';
/** Calls per round for a call of `ms`. */
const perRound = (ms: number) => Math.max(1, Math.min(50, Math.floor(roundMs / Math.max(ms, 1e-3))));
function predict(impl: Impl, N: number): number | undefined {
  const prev = last.get(impl.id);
  return prev ? prev.ms * (N / prev.N) ** impl.growth : undefined;
}
/** Predicted seconds of an implementation's calls at size N: the first call and the rounds. */
function predictedCost(impl: Impl, N: number): number {
  const ms = predict(impl, N) ?? 1;
  return (ms + rounds * perRound(ms) * ms) / 1000;
}
/** Seconds the last group spent starting its processes and making inputs (in parallel). */
let lastSetupS = 3;

// the machine's peaks, which full's GFLOP/s are read against
const peaks: Peaks | null = impls.some((i) => i.id === 'full') ? await measurePeaks(progress) : null;

for (const N of allSizes) {
  const group: Impl[] = [];
  for (const impl of impls) {
    if (!sizesOf(impl, baseSizes, explicitSizes).includes(N)) continue;
    const skip = (reason: string) => rows.push({ impl: impl.id, kind: impl.kind, family: impl.family, N, status: 'skipped', reason });
    if (impl.maxN && N > impl.maxN.N) skip(`N > ${impl.maxN.N}: ${impl.maxN.why}`);
    else if (impl.kind === 'ours-js' && !fullSweep && !explicitSizes && N > 256) skip('our JS backend runs ~0.9 GFLOP/s: N > 256 only with --full');
    else if (failed.has(impl.id)) skip(`not run: ${failed.get(impl.id)}`);
    else {
      const p = predict(impl, N);
      const budget = essential(impl) ? essentialBudgetMs : budgetMs;
      if (p !== undefined && p > budget) skip(`too slow: ~${fmtMs(p)}/call predicted (budget ${fmtMs(budget)}${fullSweep ? '' : '; --full runs it'})`);
      else group.push(impl);
    }
  }
  // the quick sweep's time guard: drop the costliest non-essential rows that would overrun it
  // (setup: starting processes is constant, making inputs grows with N); rows under half a second stay
  let cost = lastSetupS * (1 + N / 16384) + group.reduce((s, impl) => s + predictedCost(impl, N), 0);
  const droppable = group
    .filter((i) => !essential(i) && predictedCost(i, N) > 0.5)
    .sort((a, b) => (predict(b, N) ?? 0) - (predict(a, N) ?? 0));
  while (elapsed() + cost > timingBudgetS && droppable.length > 0) {
    const impl = droppable.shift()!;
    const p = predict(impl, N) ?? 1;
    group.splice(group.indexOf(impl), 1);
    cost -= predictedCost(impl, N);
    rows.push({ impl: impl.id, kind: impl.kind, family: impl.family, N, status: 'skipped', reason: `quick sweep time budget (~${fmtMs(p)}/call predicted; --full runs it)` });
  }
  if (group.length > 0) await runGroup(N, group);
}

/** Measures a group of implementations at size N (bench/processes.ts), records their rows, checks exact ones against full. */
async function runGroup(N: number, group: Impl[]): Promise<void> {
  const result = await measureGroup(group, {
    N,
    H,
    D,
    rounds,
    perRound,
    // far slower than predicted: the first call is its one measurement
    oneCallAbove: (impl) => 2 * (essential(impl) ? essentialBudgetMs : budgetMs),
    // V8 tiers a WebAssembly function up between calls: 2 more calls and a second of them before timing
    warm: { calls: 2, ms: 1000 },
    keepRounds: true,
    sampleAt: sampleIndices(N),
    label: `N=${N}`,
    progress,
  });
  lastSetupS = result.setupS;
  for (const [id, info] of result.info) infoOf.set(id, info);
  for (const [id, sample] of result.samples) samplesOf.set(`${id}@${N}`, sample);
  for (const row of result.rows) {
    if (row.status === 'error') failed.set(row.impl, `failed at N=${N}`);
    else if (row.medianMs) last.set(row.impl, { N, ms: row.medianMs });
    rows.push(row);
  }
  // exact implementations must agree with full
  const reference = samplesOf.get(`full@${N}`);
  if (reference) {
    for (const row of rows.filter((r) => r.N === N && r.status === 'ok' && r.kind !== 'ours')) {
      const s = samplesOf.get(`${row.impl}@${N}`);
      if (s) row.maxDiffVsFull = Math.max(...s.map((x, i) => Math.abs(x - reference[i])));
    }
  }
}

// speed-up of every row against full at the same N
for (const row of rows) {
  const full = rows.find((r) => r.impl === 'full' && r.N === row.N && r.status === 'ok');
  if (full && row.medianMs) row.speedupVsFull = full.medianMs! / row.medianMs;
}

// ---------------------------------------------------------------- accuracy

let accuracy: AccuracyRow[] = [];
if (accuracyN > 0) {
  progress(`accuracy at N=${accuracyN}`);
  const attn = await createAttention({ backend: 'wasm' });
  const ids = [...new Set(impls.filter((i) => i.kind === 'ours').map((i) => i.params.case as string))];
  // the quick sweep's time guard: the cheapest cases first, until the predicted time runs out
  const skip = new Map<string, string>();
  if (!fullSweep) {
    const callMs = (id: string) => {
      const impl = impls.find((i) => i.id === id)!;
      const measured = rows.filter((r) => r.impl === id && r.medianMs && r.N <= accuracyN).sort((a, b) => b.N - a.N)[0];
      return measured ? measured.medianMs! * (accuracyN / measured.N) ** impl.growth : 0;
    };
    let total = (3 * callMs('full')) / 1000;
    for (const id of accuracyCases(ids).sort((a, b) => callMs(a) - callMs(b))) {
      // three datasets, the exact counterpart when it is not full, and making parameters (x 1.5)
      const seconds = (1.5 * 3 * callMs(id) * (benchCases[id].exact ? 2 : 1)) / 1000;
      if (total + seconds > accuracyBudgetS) skip.set(id, `quick sweep time budget (~${fmtMs(callMs(id))}/call at N=${accuracyN}; --full runs it)`);
      else total += seconds;
    }
  }
  accuracy = measureAccuracy(attn, ids, { N: accuracyN, H, D, progress, skip });
}

// ---------------------------------------------------------------- the model section

let model: ModelSection | null = null;
if (modelSelected.length > 0) {
  model = await runModelSection({
    parts: modelSelected as ModelPartName[],
    sizes: modelSizes,
    full: fullSweep,
    rounds: modelRounds,
    perRound,
    oneCallAbove: 2 * (fullSweep ? 60_000 : essentialBudgetMs),
    progress,
  });
}

// ---------------------------------------------------------------- the decoding section

const decode: DecodeSection | null = decodeSizes.length > 0 ? await runDecodeSection({ sizes: decodeSizes, rounds: modelRounds, progress }) : null;

// ---------------------------------------------------------------- full at a long sequence (--full)

let longSequence: Record<string, number> | null = null;
if (fullSweep && impls.some((i) => i.id === 'full') && !explicitSizes) {
  progress('full at N = 32768, H = 1');
  longSequence = await benchLongSequence(32768);
}
// ---------------------------------------------------------------- the pattern family per visible pair (--patterns)

const patterns: PatternRow[] | null = args.patterns ? await benchPatterns({ ...(explicitSizes ? { sizes: baseSizes } : {}), progress }) : null;

// ---------------------------------------------------------------- every case on 2 threads against one (--threads)

const threads: ThreadRow[] | null = args.threads ? await benchThreads({ ...(explicitSizes ? { sizes: baseSizes } : {}), ...(args.rounds ? { rounds } : {}), progress }) : null;

// ---------------------------------------------------------------- each family's own table (--families)

const families: FamiliesSection | null = args.families ? await benchFamilies({ full: fullSweep, ...(explicitSizes ? { sizes: baseSizes } : {}), progress }) : null;

// ---------------------------------------------------------------- recurrent linear attention (--recurrent)

let recurrent: { rows: RecurrentRow[]; growth: GrowthRow[]; steps: RecurrentStepRow[] } | null = null;
if (args.recurrent) {
  const sweep = await benchRecurrent({ progress });
  progress('recurrent: steps at positions 1k and 60k');
  recurrent = { ...sweep, steps: await benchRecurrentStep() };
}

// ---------------------------------------------------------------- backward passes (--grad)

let grad: { rows: GradRow[]; memory: GradMemory } | null = null;
if (args.grad) {
  progress('backward against forward');
  const rows = await benchGrad(explicitSizes ? { sizes: baseSizes } : {});
  progress('backward memory at N = 16384');
  grad = { rows, memory: await benchGradMemory() };
}
progressDone();

// ---------------------------------------------------------------- report


const implIds = impls.map((i) => i.id).filter((id) => rows.some((r) => r.impl === id));
const sizesRun = [...new Set(rows.map((r) => r.N))].sort((a, b) => a - b);
const at = (impl: string, N: number) => rows.find((r) => r.impl === impl && r.N === N);
const cell = (impl: string, N: number, show: (r: TimingRow) => string) => {
  const r = at(impl, N);
  if (!r) return '';
  if (r.status === 'skipped') return 'skipped';
  if (r.status === 'error') return 'error';
  return show(r);
};
const spread = (r: TimingRow) => {
  if (r.samples === 1) return ' [1 call]';
  const [unit, div] = r.maxMs! >= 1000 ? ['s', 1000] : ['ms', 1];
  const num = (ms: number) => Number((ms / div).toPrecision(3)).toString();
  return ` [${num(r.minMs!)}-${num(r.maxMs!)} ${unit}]`;
};

const cpu = cpus();
console.log(
  `\nwasm-attention bench, ${mode} sweep: B=1 H=${H} D=${D}, one thread, Node ${process.version}, ${cpu[0]?.model ?? 'unknown CPU'} (${cpu.length} cores)${hasSimd() ? '' : ', NO WebAssembly SIMD'}`,
);
if (implIds.length > 0) table(
  'Time per call: median of all rounds [min-max]',
  ['implementation', ...sizesRun.map((N) => `N=${N}`)],
  implIds.map((id) => [id, ...sizesRun.map((N) => cell(id, N, (r) => fmtMs(r.medianMs) + spread(r)))]),
);
if (rows.some((r) => r.impl === 'full' && r.status === 'ok')) table(
  'Speed-up against full at the same N (x)',
  ['implementation', ...sizesRun.map((N) => `N=${N}`)],
  implIds.filter((id) => id !== 'full').map((id) => [id, ...sizesRun.map((N) => cell(id, N, (r) => (r.speedupVsFull ? r.speedupVsFull.toFixed(2) : '-')))]),
);

interface PeerRatio {
  N: number;
  family: string;
  peer: string;
  peerMs: number;
  fullMs: number;
  /** peer time / our full's time (medians): > 1 means ours is faster. */
  ratio: number;
  /** The same with each side's fastest call (less sensitive to a busy machine). */
  ratioOfFastest: number;
  /** The same with CPU time per call (insensitive to time spent descheduled). */
  ratioOfCpu?: number;
  /**
   * The median over rounds of the ratio of CPU time per call in that round
   * (both sides run in every round, seconds apart: a slow spell of the
   * shared machine falls on both): the figure the README quotes.
   */
  paired?: number;
}
const ratios: PeerRatio[] = [];
for (const N of sizesRun) {
  const full = at('full', N);
  if (!full?.medianMs) continue;
  for (const family of new Set(rows.filter((r) => r.family).map((r) => r.family!))) {
    const best = rows.filter((r) => r.family === family && r.N === N && r.medianMs).sort((a, b) => a.medianMs! - b.medianMs!)[0];
    if (best) {
      const ratioOfCpu = best.cpuMs && full.cpuMs ? best.cpuMs / full.cpuMs : undefined;
      const [a, b] = [best.roundCpuMs, full.roundCpuMs];
      const paired = a && b && a.length === b.length && a.length > 0 ? median(a.map((x, r) => x / b[r])) : undefined;
      ratios.push({ N, family, peer: best.impl, peerMs: best.medianMs!, fullMs: full.medianMs, ratio: best.medianMs! / full.medianMs, ratioOfFastest: best.minMs! / full.minMs!, ratioOfCpu, paired });
    }
  }
}
// threads: our full on 2 threads against itself on one and against onnxruntime-web on 2
const threadRows = sizesRun
  .map((N) => ({ N, one: at('full', N), relaxed: at('full (relaxed SIMD)', N), two: at('full (2 threads)', N), ort: at('ort MatMul-Softmax-MatMul (2 threads)', N) }))
  .filter((r) => r.one?.medianMs && (r.two?.medianMs || r.relaxed?.medianMs));
const timeOf = (r: TimingRow | undefined) => (r?.medianMs ? fmtMs(r.medianMs) : '-');
const ratioOf = (a: TimingRow | undefined, b: TimingRow | undefined) => (a?.medianMs && b?.medianMs ? `${(a.medianMs / b.medianMs).toFixed(2)}x` : '-');
if (threadRows.length > 0) {
  table(
    'Builds and threads: our full on the relaxed-SIMD build (speed-up over the plain build) and on 2 threads (time / its 1-thread time), onnxruntime-web on 2 threads (its time / ours on 2)',
    ['N', 'full', 'relaxed SIMD', 'speed-up', '2 threads', '2 / 1', 'ort graph, 2 threads', 'ort / ours'],
    threadRows.map(({ N, one, relaxed, two, ort }) => [
      String(N),
      timeOf(one),
      timeOf(relaxed),
      ratioOf(one, relaxed),
      timeOf(two),
      ratioOf(two, one),
      timeOf(ort),
      ratioOf(ort, two),
    ]),
  );
}
/** The peaks, and the share of them that full reaches on each build over the sizes run. */
function printPeaks({ mulAdd, fused }: Peaks): void {
  const share = (id: string, peak: number) => {
    const measured = sizesRun.flatMap((N) => {
      const gflops = at(id, N)?.gflops;
      return gflops ? [{ N, gflops }] : [];
    });
    if (measured.length === 0) return '';
    return `; ${id} reaches ${measured.map((m) => `${((100 * m.gflops) / peak).toFixed(0)}%`).join(', ')} of it (N = ${measured.map((m) => m.N).join(', ')})`;
  };
  console.log(`Peak of the engine's 4 x 8 register tile in L1, one thread (assembly/bench/peak.ts, best of 11 runs): f32x4 mul + add ${mulAdd.toFixed(1)} GFLOP/s${share('full', mulAdd)}`);
  if (fused !== null) console.log(`  fused multiply-add (relaxed SIMD) ${fused.toFixed(1)} GFLOP/s${share('full (relaxed SIMD)', fused)}`);
}
const exactIds = implIds.filter((id) => rows.some((r) => r.impl === id && r.gflops !== undefined) || id === 'full');
if (exactIds.length > 1) {
  table(
    'Exact attention, GFLOP/s (4 H N^2 D per call; full causal counts the kept pairs)',
    ['implementation', ...sizesRun.map((N) => `N=${N}`)],
    exactIds.map((id) => [id, ...sizesRun.map((N) => cell(id, N, (r) => (r.gflops ? r.gflops.toFixed(1) : '-')))]),
  );
  if (peaks) printPeaks(peaks);
  if (ratios.length > 0) {
    table(
      'Our full against the peers: peer time / our time, > 1: ours is faster (CPU time paired by round: the figure; medians of wall time; fastest calls; medians of CPU time). A peer family is its faster row',
      ['N', 'peer', 'peer row', 'peer time', 'our full', 'paired CPU', 'ratio', 'fastest calls', 'CPU time'],
      ratios.map((r) => [
        String(r.N),
        r.family,
        r.peer,
        fmtMs(r.peerMs),
        fmtMs(r.fullMs),
        r.paired ? `${r.paired.toFixed(2)}x` : '-',
        `${r.ratio.toFixed(2)}x`,
        `${r.ratioOfFastest.toFixed(2)}x`,
        r.ratioOfCpu ? `${r.ratioOfCpu.toFixed(2)}x` : '-',
      ]),
    );
  }
}
const firstCalls = rows.filter((r) => r.impl === 'full' && r.firstCallMs && r.medianMs);
if (firstCalls.length > 0) {
  table(
    "First call: our full's first call of the process (V8 compiles a WebAssembly function with its baseline compiler first and moves it to optimised code between calls) against its median once warm",
    ['N', 'first call', 'warm', 'first / warm'],
    firstCalls.map((r) => [String(r.N), fmtMs(r.firstCallMs), fmtMs(r.medianMs), `${(r.firstCallMs! / r.medianMs!).toFixed(2)}x`]),
  );
}
if (implIds.length > 0) table(
  'Peak memory: max RSS of the process, MiB (WebAssembly memory, MiB)',
  ['implementation', ...sizesRun.map((N) => `N=${N}`)],
  implIds.map((id) => [id, ...sizesRun.map((N) => cell(id, N, (r) => (r.maxRssBytes ? `${(r.maxRssBytes / MiB).toFixed(0)} (${((r.wasmBytes ?? 0) / MiB).toFixed(0)})` : '-')))]),
);
const mismatches = rows.filter((r) => r.maxDiffVsFull !== undefined && r.maxDiffVsFull > 1e-3);
const checked = rows.filter((r) => r.maxDiffVsFull !== undefined);
if (checked.length > 0) {
  console.log(
    `\nOutputs checked against our full on 64 sampled entries: ${checked.length - mismatches.length}/${checked.length} agree within 1e-3 (largest difference ${Math.max(...checked.map((r) => r.maxDiffVsFull!)).toExponential(1)})`,
  );
  for (const r of mismatches) console.log(`  MISMATCH ${r.impl} N=${r.N}: max difference ${r.maxDiffVsFull}`);
}
if (accuracy.length > 0) {
  const accIds = [...new Set(accuracy.map((a) => a.variant))];
  const accOf = (id: string, ds: string) => accuracy.find((a) => a.variant === id && a.dataset === ds)!;
  const fmtE = (x: number) => (Number.isFinite(x) ? x.toExponential(1) : 'error');
  table(
    `Accuracy against exact attention, N=${accuracyN} H=${H} D=${D}: mean abs error / max abs error / mean row cosine`,
    ['variant', ...DATASETS, 'speed-up'],
    accIds.map((id) => [
      id,
      ...DATASETS.map((ds) => {
        const a = accOf(id, ds);
        return a.skipped ? 'skipped' : a.error ? 'error' : `${fmtE(a.meanAbs)} / ${fmtE(a.maxAbs)} / ${a.cosine.toFixed(3)}`;
      }),
      (() => {
        const r = at(id, accuracyN);
        return r?.speedupVsFull ? `${r.speedupVsFull.toFixed(1)}x` : '-';
      })(),
    ]),
  );
  const refScale = DATASETS.map((ds) => `${ds} ${accuracy.find((a) => a.dataset === ds && Number.isFinite(a.refMeanAbs))?.refMeanAbs.toFixed(2) ?? '-'}`).join(', ');
  console.log(`Mean |output| of exact attention: ${refScale}. lsh is compared with ${benchCases.lsh?.exact?.label ?? 'its exact counterpart'}.`);
  for (const a of accuracy.filter((x) => x.error)) console.log(`  ${a.variant} (${a.dataset}): ERROR ${a.error}`);
  for (const a of accuracy.filter((x) => x.skipped && x.dataset === DATASETS[0])) console.log(`  ${a.variant}: accuracy skipped: ${a.skipped}`);
}
if (longSequence) {
  console.log(`\nfull at a long sequence (B=1 H=1 D=${D}, N=${longSequence.N}): ${fmtMs(longSequence.ms)}, ${longSequence['GFLOP/s'].toFixed(1)} GFLOP/s, ${longSequence['MiB beyond tensors'].toFixed(1)} MiB of WebAssembly memory beyond its tensors`);
}
const notes = rows.filter((r) => r.status !== 'ok' || r.reason);
if (notes.length > 0) {
  console.log('\nNot measured, or measured once:');
  for (const r of notes) {
    // a peer row that fails where another row of its family runs: say which one stands for it
    const stand = r.status === 'error' && r.family ? rows.find((o) => o.family === r.family && o.N === r.N && o.status === 'ok') : undefined;
    console.log(`  ${r.impl} N=${r.N}: ${r.status === 'error' ? 'ERROR ' : ''}${r.reason}${stand ? ` (${stand.impl} stands for ${r.family} at N=${r.N})` : ''}`);
  }
}

if (model) printModelSection(model);
if (decode) printDecodeSection(decode);
if (patterns) printPatterns(patterns);
if (threads) printThreads(threads);
if (families) printFamilies(families);
if (recurrent) {
  printTable('Recurrent linear attention (B=1 H=8 D=Dv=64, one thread, CPU time)', recurrent.rows);
  printTable('Growth from N = 16384 to N = 65536 (linear time: 4)', recurrent.growth);
  printTable('recurrentState step, all 8 heads', recurrent.steps);
}
if (grad) {
  printTable('Backward against forward (CPU time, medians of interleaved rounds, one thread)', grad.rows);
  printTable("Memory of full's backward (causal, one thread, fresh instance)", [grad.memory]);
}

// ---------------------------------------------------------------- JSON

const meta = {
  date: new Date().toISOString(),
  mode,
  argv: process.argv.slice(2),
  node: process.version,
  cpu: cpu[0]?.model ?? 'unknown',
  cores: cpu.length,
  B: 1,
  H,
  D,
  threads: 1,
  rounds,
  budgetMsPerCall: budgetMs,
  accuracyN,
  seconds: Number(elapsed().toFixed(1)),
  cases: Object.fromEntries(Object.entries(benchCases).map(([id, c]) => [id, { variant: c.variant ?? id, note: c.note }])),
  peers: Object.fromEntries(Object.values(peerImpls).flat().filter((p) => implIds.includes(p.id)).map((p) => [p.id, { note: p.note, ...infoOf.get(p.id) }])),
  noBenchmarkOptions: missing,
};
mkdirSync(dirname(jsonPath), { recursive: true });
writeFileSync(jsonPath, `${JSON.stringify({ meta, timings: rows, ratios, accuracy, longSequence, peaks, model, decode, patterns, threads, families, recurrent, grad }, null, 1)}\n`);

// ---------------------------------------------------------------- charts

const written = writeCharts(chartDir, { rows, implIds, sizesRun, accuracy, accuracyN, machine: `B=1 H=${H} D=${D}, one thread, ${cpu[0]?.model ?? ''}, Node ${process.version}` });
console.log(`\nWrote ${jsonPath}${written.length ? ` and ${written.join(', ')}` : ''} (${elapsed().toFixed(0)} s)`);
