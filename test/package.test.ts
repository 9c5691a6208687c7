// Packaging: the packed tarball installs into an empty project, imports from
// Node ESM and runs, and its .d.ts type-checks a TypeScript consumer.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention } from '../dist/index.js';
import { maxAbsDiff } from './golden.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wasm-attention-consumer-'));
  execFileSync(npm, ['pack', '--silent', '--pack-destination', dir], { cwd: root, stdio: 'pipe' });
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  execFileSync(npm, ['install', '--silent', '--no-audit', '--no-fund', '--prefer-offline', `./${tarball}`], { cwd: dir, stdio: 'pipe' });
}, 180_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships only the built files', () => {
    const files = readdirSync(join(dir, 'node_modules', 'wasm-attention', 'dist'));
    expect(files).toContain('attention.wasm');
    expect(files).toContain('index.js');
    expect(files).toContain('index.d.ts');
    expect(readdirSync(join(dir, 'node_modules', 'wasm-attention'))).not.toContain('src');
  });

  it('imports from Node ESM and runs full', async () => {
    writeFileSync(
      join(dir, 'main.mjs'),
      `import { createAttention } from 'wasm-attention';
const attn = await createAttention();
const x = { data: Float32Array.from({ length: 2 * 5 * 4 }, (_, i) => Math.sin(i)), dims: [2, 5, 4] };
const out = attn.full(x, x, x, { causal: true });
console.log(JSON.stringify({ backend: attn.backend, dims: out.dims, data: Array.from(out.data) }));
`,
    );
    const printed = JSON.parse(execFileSync('node', ['main.mjs'], { cwd: dir, encoding: 'utf8' }));
    const x = { data: Float32Array.from({ length: 40 }, (_, i) => Math.sin(i)), dims: [2, 5, 4] };
    const want = (await createAttention({ backend: 'js' })).full(x, x, x, { causal: true });
    expect(printed.backend).toBe('wasm');
    expect(printed.dims).toEqual([2, 5, 4]);
    expect(maxAbsDiff(printed.data, want.data)).toBeLessThanOrEqual(1e-4);
  });

  it('type-checks a TypeScript consumer against the shipped .d.ts', () => {
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, skipLibCheck: false, types: [] }, include: ['consumer.ts'] }),
    );
    writeFileSync(
      join(dir, 'consumer.ts'),
      `import { createAttention, type Attention, type Tensor, type FullOptions } from 'wasm-attention';
const attn: Attention = await createAttention({ backend: 'auto' });
const x: Tensor = { data: new Float32Array(8), dims: [2, 4] };
const options: FullOptions = { causal: true, scale: 0.5, keyPadding: new Uint8Array(2) };
const out: Tensor = attn.full(x, x, x, options);
const n: number = out.dims[0] + attn.memory.inUse;
// @ts-expect-error: causal is a boolean
attn.full(x, x, x, { causal: 'yes' });
// @ts-expect-error: not a variant
attn.weights('fast', x, x);
export { n };
`,
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    expect(() => execFileSync('node', [tsc, '-p', 'tsconfig.json'], { cwd: dir, encoding: 'utf8', stdio: 'pipe' })).not.toThrow();
  });
});
