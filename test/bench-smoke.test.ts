/**
 * The benchmark suite at a tiny size, so that it cannot rot: compiles
 * bench/, runs `dist-bench/run.js` on N = 64 with full, local and the
 * tfjs-wasm peer, and checks the JSON and the charts it writes to a
 * temporary directory.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'bench-smoke-'));

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
}

describe('npm run bench (smoke, N = 64)', () => {
  let stdout = '';
  let result: { meta: Record<string, unknown>; timings: Timing[]; ratios: { N: number; family: string; ratio: number }[]; accuracy: Record<string, unknown>[] };

  beforeAll(() => {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'bench/tsconfig.json')], { cwd: root, stdio: 'pipe' });
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

  it('rejects an unknown variant, naming the registered ones', () => {
    const run = spawnSync(process.execPath, [join(root, 'dist-bench/run.js'), '--variants', 'nope', '--out', out], { cwd: root, encoding: 'utf8' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain("--variants: unknown 'nope'");
    expect(run.stderr).toContain('full');
  });
});
