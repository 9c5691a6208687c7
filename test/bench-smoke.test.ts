/**
 * The benchmark suite at a tiny size, so that it cannot rot: compiles
 * bench/, runs `dist-bench/run.js` on N = 64 with full, local and the
 * tfjs-wasm peer, and checks the JSON (the machine's peaks included) and the
 * charts it writes to a temporary directory; then the model section alone at
 * N = 128, the decoding section alone at 256 cached positions, the patterns
 * section at N = 256, the threads section at N = 256 (2 rounds) and the
 * families section at N = 128.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { variantNames } from '../src/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
const tsc = () => execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'bench/tsconfig.json')], { cwd: root, stdio: 'pipe' });

interface Timing {
  impl: string;
  kind: string;
  N: number;
  status: string;
  medianMs?: number;
  minMs?: number;
  maxMs?: number;
  samples?: number;
  maxRssBytes?: number;
  wasmBytes?: number;
  maxDiffVsFull?: number;
  speedupVsFull?: number;
  gflops?: number;
}

describe('npm run bench (smoke, N = 64)', () => {
  let stdout = '';
  let result: {
    meta: Record<string, unknown>;
    timings: Timing[];
    ratios: { N: number; family: string; ratio: number }[];
    accuracy: Record<string, unknown>[];
    peaks: { mulAdd: number; fused: number | null };
  };

  beforeAll(() => {
    tsc();
    const args = ['--sizes', '64', '--variants', 'full,local', '--peers', 'tfjs', '--rounds', '2', '--accuracy-n', '64', '--out', out];
    stdout = execFileSync(process.execPath, [join(root, 'dist-bench/run.js'), ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    result = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8'));
  }, 90_000);

  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('times every selected implementation in its own process', () => {
    expect(result.meta).toMatchObject({ B: 1, H: 8, D: 64, threads: 1 });
    const ids = result.timings.map((t) => t.impl).sort();
    expect(ids).toEqual(['full', 'full causal', 'local', 'tfjs-wasm']);
    for (const t of result.timings) {
      expect(t, t.impl).toMatchObject({ N: 64, status: 'ok' });
      expect(t.samples).toBeGreaterThanOrEqual(2);
      expect(t.minMs!).toBeGreaterThan(0);
      expect(t.minMs!).toBeLessThanOrEqual(t.medianMs!);
      expect(t.medianMs!).toBeLessThanOrEqual(t.maxMs!);
      // one process each: its own peak RSS, and a WebAssembly memory (ours and tfjs's)
      expect(t.maxRssBytes!).toBeGreaterThan(20 * 2 ** 20);
      expect(t.wasmBytes!).toBeGreaterThan(0);
      expect(t.speedupVsFull!).toBeGreaterThan(0);
    }
  });

  it('checks the peer against our full and reports the ratio', () => {
    const tfjs = result.timings.find((t) => t.impl === 'tfjs-wasm')!;
    expect(tfjs.maxDiffVsFull!).toBeLessThan(1e-4);
    expect(result.ratios).toHaveLength(1);
    expect(result.ratios[0]).toMatchObject({ N: 64, family: 'tfjs-wasm' });
    expect(result.ratios[0].ratio).toBeGreaterThan(0);
  });

  it('measures the accuracy of the approximate variant on every dataset', () => {
    expect(result.accuracy.map((a) => a.dataset)).toEqual(['iid', 'clustered', 'local']);
    for (const a of result.accuracy) {
      expect(a).toMatchObject({ variant: 'local', N: 64, reference: 'full' });
      // window 64 at N = 64 sees every key: exact
      expect(a.maxAbs as number).toBeLessThan(1e-4);
      expect(a.cosine as number).toBeGreaterThan(0.9999);
    }
  });

  it('prints the tables and writes the charts', () => {
    expect(stdout).toContain('Time per call');
    expect(stdout).toContain('Peak memory');
    expect(stdout).toContain('Accuracy against exact attention');
    for (const chart of ['time-vs-n.svg', 'memory-vs-n.svg', 'error-vs-speedup.svg']) {
      const svg = readFileSync(join(out, chart), 'utf8');
      expect(svg.startsWith('<svg'), chart).toBe(true);
      expect(svg).toContain('local');
      expect(svg.trim().endsWith('</svg>')).toBe(true);
    }
  });

  it("measures the register tile's peak on both builds and gives full's share of it", () => {
    expect(result.peaks.mulAdd).toBeGreaterThan(0);
    expect(result.peaks.fused).toBeGreaterThan(0); // the child that measures it has relaxed SIMD
    const full = result.timings.find((t) => t.impl === 'full')!;
    const share = Math.round((100 * full.gflops!) / result.peaks.mulAdd);
    expect(stdout).toContain(`f32x4 mul + add ${result.peaks.mulAdd.toFixed(1)} GFLOP/s; full reaches ${share}% of it (N = 64)`);
  });

  it('rejects an unknown variant, naming the registered ones', () => {
    const run = spawnSync(process.execPath, [join(root, 'dist-bench/run.js'), '--variants', 'nope', '--out', out], { cwd: root, encoding: 'utf8' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain("--variants: unknown 'nope'");
    expect(run.stderr).toContain('full');
  });
});

interface ModelRow extends Timing {
  part: string;
  H: number;
  Hkv: number;
  D: number;
  cpuMs?: number;
  roundMs?: number[];
  roundCpuMs?: number[];
}
interface ModelJson {
  rows: ModelRow[];
  ratios: { part: string; N: number; numerator: string; denominator: string; cpu: number; wall: number; rounds: number }[];
  agreement: { a: string; b: string; maxDiff: number }[];
  mask: { N: number; visibleBlocks: number; blocks: number; fraction: number }[];
  memory: { N: number; gqaBytes: number; repeatedBytes: number; kvBytes: number; repeatedKvBytes: number }[];
}

describe('npm run bench: the model section (smoke, N = 128)', () => {
  const dir = join(out, 'model');
  let stdout = '';
  let model: ModelJson;
  const row = (id: string) => model.rows.find((r) => r.impl === id)!;

  beforeAll(() => {
    tsc();
    const args = ['--variants', 'none', '--peers', 'none', '--no-accuracy', '--model', 'gqa,terms', '--model-sizes', '128', '--rounds', '2', '--out', dir];
    stdout = execFileSync(process.execPath, [join(root, 'dist-bench/run.js'), ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    model = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')).model;
  }, 90_000);

  it('runs every row of both parts at the problem of its part, each in its own process', () => {
    expect(model.rows.map((r) => r.impl)).toEqual([
      'full GQA (Hkv = 8)',
      'full, k and v repeated to 32 heads',
      'ort Attention (opset 23)',
      'full',
      'full + block mask',
      'full + bias',
      'full + softcap 30',
    ]);
    for (const r of model.rows) {
      expect(r.N).toBe(128);
      expect(r.part === 'gqa' ? [r.H, r.Hkv, r.D] : [r.H, r.D]).toEqual(r.part === 'gqa' ? [32, 8, 128] : [8, 64]);
      expect(r, r.impl).toMatchObject({ status: 'ok' });
      expect(r.roundMs!.length).toBe(2);
      expect(r.roundCpuMs!.length).toBe(2);
      expect(r.wasmBytes!).toBeGreaterThan(0);
    }
    // onnxruntime-web's Attention op computes what our call with k and v repeated does
    expect(model.agreement.find((a) => a.a === 'full, k and v repeated to 32 heads' && a.b === 'ort Attention (opset 23)')!.maxDiff).toBeLessThan(1e-5);
    expect(stdout).toContain('Attention as models use it');
  });

  it('reports the ratios, the mask, and the memory of GQA against k and v repeated', () => {
    expect(model.ratios.map((r) => `${r.numerator} / ${r.denominator}`)).toEqual([
      'full, k and v repeated to 32 heads / full GQA (Hkv = 8)',
      'ort Attention (opset 23) / full GQA (Hkv = 8)',
      'full / full + block mask',
      'full + bias / full',
      'full + softcap 30 / full',
    ]);
    for (const r of model.ratios) {
      expect(r.rounds).toBe(2);
      expect(r.cpu).toBeGreaterThan(0);
      expect(r.wall).toBeGreaterThan(0);
    }
    // grouped-query heads read in place: the same output, and memory that grows with Hkv, not H
    expect(model.agreement.find((a) => a.a === 'full GQA (Hkv = 8)' && a.b === 'full, k and v repeated to 32 heads')!.maxDiff).toBe(0);
    const [m] = model.memory;
    expect(m.repeatedBytes - m.gqaBytes).toBeGreaterThanOrEqual(0.9 * (m.repeatedKvBytes - m.kvBytes));
    expect(model.mask).toEqual([{ N: 128, visibleBlocks: 4, blocks: 4, fraction: 1, randomPerRow: 0 }]);
    expect(stdout).toContain('Ratios of the model section');
  });
});

interface DecodeJson {
  rounds: number;
  rows: { L: number; row: string; ms: number; perCopy: number; perCopyRange: [number, number] }[];
  agreement: { L: number; full: number; relaxed: number; ort: number }[];
}

describe('npm run bench: the decoding section (smoke, L = 256)', () => {
  let decode: DecodeJson;
  let stdout = '';

  beforeAll(() => {
    tsc();
    const dir = join(out, 'decode');
    const args = ['--variants', 'none', '--peers', 'none', '--no-accuracy', '--model', 'none', '--decode', '256', '--rounds', '2', '--out', dir];
    stdout = execFileSync(process.execPath, [join(root, 'dist-bench/run.js'), ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    decode = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')).decode;
  }, 90_000);

  it('times both builds, the copy and the peers in one process, each step against the copy of its round', () => {
    expect(decode.rows.map((r) => r.row)).toEqual(['cache step', 'cache step (relaxed SIMD)', 'copy K, V', 'full, no cache', 'ort Attention + past']);
    for (const r of decode.rows) {
      expect(r.L).toBe(256);
      expect(r.ms).toBeGreaterThan(0);
      expect(r.perCopyRange[0]).toBeLessThanOrEqual(r.perCopy);
      expect(r.perCopy).toBeLessThanOrEqual(r.perCopyRange[1]);
    }
    expect(decode.rows.find((r) => r.row === 'copy K, V')!.perCopy).toBe(1);
    expect(stdout).toContain('decoding: one step');
  });

  it('gets the numbers of full attention: the plain build bit for bit, the relaxed one and onnxruntime-web within float32 rounding', () => {
    const [a] = decode.agreement;
    expect(a.full).toBe(0);
    expect(a.relaxed).toBeLessThan(1e-5);
    expect(a.ort).toBeLessThan(1e-5);
  });
});

describe('npm run bench: the patterns section (smoke, N = 256)', () => {
  it('times full and the patterns in one process, each per visible pair against full in its round', () => {
    tsc();
    const dir = join(out, 'patterns');
    const args = ['--variants', 'none', '--peers', 'none', '--no-accuracy', '--model', 'none', '--decode', 'none', '--patterns', '--sizes', '256', '--out', dir];
    const stdout = execFileSync(process.execPath, [join(root, 'dist-bench/run.js'), ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    const rows: { N: number; row: string; pairs: number; perFull: number; perFullRange: [number, number] }[] = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')).patterns;
    expect(rows.map((r) => r.row)).toEqual(['full', 'local window 64', 'Longformer: local 64 + global [0, 1]', 'strided 64, window 8']);
    // visible pairs per head, counted independently: full N^2; strided: 17 keys a row less those past the ends
    expect(rows[0].pairs).toBe(256 * 256);
    let strided = 0;
    for (let p = 0; p < 256; p++) for (let j = p % 64; j < 256; j += 64) if (Math.abs(j - p) <= 8 * 64) strided++;
    expect(rows[3].pairs).toBe(strided);
    expect(rows[0].perFull).toBe(1);
    for (const r of rows) expect(r.perFullRange[0]).toBeLessThanOrEqual(r.perFull);
    expect(stdout).toContain('patterns: time per visible pair');
  }, 120_000);
});

describe('npm run bench: the threads section (smoke, N = 256, 2 rounds)', () => {
  it('times every case on one thread and on 2, paired by round, and both give the same bits', () => {
    tsc();
    const dir = join(out, 'threads');
    const args = ['--variants', 'none', '--peers', 'none', '--no-accuracy', '--model', 'none', '--decode', 'none', '--threads', '--sizes', '256', '--rounds', '2', '--out', dir];
    const stdout = execFileSync(process.execPath, [join(root, 'dist-bench/run.js'), ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
    const rows: { N: number; row: string; oneMs: number; twoMs: number; speedup: number; speedupRange: [number, number]; sameBits: boolean }[] = JSON.parse(
      readFileSync(join(dir, 'latest.json'), 'utf8'),
    ).threads;
    // every registered variant, and full again with causal: true
    expect(rows.map((r) => r.row).sort()).toEqual([...variantNames, 'full causal'].sort());
    for (const r of rows) {
      expect(r.N).toBe(256);
      expect(r.sameBits).toBe(true);
      expect(r.oneMs).toBeGreaterThan(0);
      expect(r.twoMs).toBeGreaterThan(0);
      expect(r.speedupRange[0]).toBeLessThanOrEqual(r.speedup);
      expect(r.speedup).toBeLessThanOrEqual(r.speedupRange[1]);
    }
    expect(stdout).toContain('threads: await attn.run on 2 threads');
  }, 180_000);
});

describe('npm run bench: the families section (smoke, N = 128)', () => {
  it("prints each family's own table, every ratio the row's time against full's", () => {
    tsc();
    const dir = join(out, 'families');
    const args = ['--variants', 'none', '--peers', 'none', '--no-accuracy', '--model', 'none', '--decode', 'none', '--families', '--sizes', '128', '--out', dir];
    const stdout = execFileSync(process.execPath, [join(root, 'dist-bench/run.js'), ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
    type Row = Record<string, string | number>;
    const f: Record<'clustering' | 'sinkhorn' | 'synthesizer' | 'fewerKeys' | 'linear' | 'linearStep', Row[]> = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')).families;
    const ratioOf = (rows: Row[], key: string, x: string, baseline: (r: Row) => Row) => {
      for (const r of rows) if (typeof r[x] === 'number') expect(r[x]).toBeCloseTo((baseline(r).ms as number) / (r[key] as number), 9);
    };
    const fullOf = (rows: Row[], name: string, full = 'full') => (r: Row) => rows.find((o) => o[name] === (String(r[name]).endsWith('causal') ? `${full} causal` : full))!;

    expect(f.clustering.map((r) => r.variant)).toEqual(['full', 'lsh', 'lsh', 'routing', 'routing fit']);
    ratioOf(f.clustering, 'ms', 'x full', () => f.clustering[0]);
    for (const r of f.clustering.slice(1, 4)) {
      expect(r['hash/route %']).toBeGreaterThan(0);
      expect(r['hash/route %']).toBeLessThan(100);
    }

    expect(f.sinkhorn.map((r) => r.causal)).toEqual(['no', 'yes']);
    for (const r of f.sinkhorn) {
      expect(r['x faster']).toBeCloseTo((r['full ms'] as number) / (r['sinkhorn ms'] as number), 9);
      expect(r['sort ms']).toBeGreaterThan(0);
      expect(r['attend ms']).toBeGreaterThan(0);
    }

    expect(f.synthesizer.map((r) => r.form)).toEqual(['full', 'random (logits [1, N, N])', 'factorized R=8', 'dense Dm=64 Dh=64', 'full causal', 'factorized R=8 causal']);
    ratioOf(f.synthesizer, 'ms', 'x faster than full', fullOf(f.synthesizer, 'form'));
    expect(f.fewerKeys.map((r) => r.variant)).toEqual(['full', 'linformer P=256', 'compressed s=4 mean', 'compressed s=4 conv', 'full causal', 'compressed s=4 mean causal']);
    // causal compressed against causal full; the other rows, full causal included, against full
    ratioOf(f.fewerKeys, 'ms', 'x faster than full', (r) => f.fewerKeys[r.variant === 'compressed s=4 mean causal' ? 4 : 0]);
    expect(f.linear.filter((r) => r.variant === 'linear elu').map((r) => r.causal)).toEqual(['no', 'yes']);
    for (const r of f.linear) expect(r['x faster than full']).toBeCloseTo((r['full ms'] as number) / (r.ms as number), 9);
    expect(f.linearStep.map((r) => `${r.featureMap} ${r.position}`)).toEqual(['elu 1000', 'elu 60000', 'favor 1000', 'favor 60000']);
    for (const rows of Object.values(f)) for (const r of rows) expect(r.N ?? 128).toBe(128);
    expect(stdout).toContain('sinkhorn (blockSize 64) vs full');
  }, 180_000);
});
