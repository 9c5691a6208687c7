// The thread pool: `attn.run` gives the same bits as the synchronous call on
// one thread, for every variant; failures reject and leave the instance
// usable; dispose() lets the process exit.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, variantNames, type Attention, type VariantName } from '../dist/index.js';
import type { Runtime } from '../dist/runtime/runtime.js';
import { loadGolden } from './golden.js';
import { padding, randn } from './random.js';
import { bytes } from './backends.js';

let one: Attention;
let two: Attention;
beforeAll(async () => {
  one = await createAttention({ backend: 'wasm', threads: 1 });
  two = await createAttention({ backend: 'wasm', threads: 2 });
});
afterAll(() => two.dispose());


/** `value` named `label` in test titles (a non-enumerable toJSON, so option checks never see it). */
function labelled<T extends object>(value: T, label: string): T {
  return Object.defineProperty(value, 'toJSON', { value: () => label, enumerable: false });
}

describe('threads', () => {
  it('reports how many threads and why', async () => {
    expect(one.threads).toEqual({ count: 1, reason: 'init.threads' });
    expect(two.threads.count).toBe(2);
    const auto = await createAttention();
    expect(auto.threads.count).toBeGreaterThanOrEqual(1);
    expect(auto.threads.reason).toMatch(/cores/);
    await expect(createAttention({ threads: 0 })).rejects.toThrow(/^init\.threads: expected an integer >= 1, received 0/);
    expect((await createAttention({ backend: 'js' })).threads.count).toBe(1);
  });

  it('gives every golden case the same bits on 2 threads as on 1', async () => {
    const cases = ['patterns.json', 'model.json', 'linformer.json', 'compressed.json', 'linear.json', 'synthesizer.json', 'lsh.json', 'routing.json', 'sinkhorn.json'].flatMap(loadGolden);
    expect(new Set(cases.map((c) => c.variant))).toEqual(new Set(variantNames));
    for (const c of cases) {
      const name = c.variant as VariantName;
      const sync = one.apply(name, c.q, c.k, c.v!, c.options);
      const pooled = await two.run(name, c.q, c.k, c.v!, c.options);
      expect(pooled.dims, c.name).toEqual(sync.dims);
      expect(bytes(pooled.data), c.name).toEqual(bytes(sync.data));
    }
  });

  it.each([
    ['full', {}],
    ['mixed', { heads: [{ kind: 'local', window: 9 }, { kind: 'full', causal: true }, { kind: 'linear' }] }],
    ['full', { causal: true }],
    ['local', { window: 16, causal: true }],
    ['strided', { stride: 8, window: 4 }],
    ['sparse', { patterns: [{ type: 'local', window: 8 }, { type: 'global', tokens: [0, 300] }, { type: 'random', count: 3, seed: 1 }] }],
    ['linear', { causal: true }],
    ['linear', { featureMap: 'favor', numFeatures: 32, seed: 7 }],
    ['linear', { featureMap: 'efficient' }],
    ['routing', { window: 48, clusters: 12, seed: 3, causal: true }],
    ['linformer', { e: labelled(randn([3, 48, 650], 11, 0.04), 'e [3, 48, 650]') }],
    ['compressed', { factor: 4, causal: true }],
    ['compressed', { factor: 3, convK: labelled({ weight: randn([24, 24, 3], 12, 0.1) }, 'weight [24, 24, 3]') }],
    ['synthesizer', { logits: labelled(randn([3, 700, 650], 13), 'logits [3, 700, 650]'), causal: true }],
    ['synthesizer', { dense: labelled({ x: randn([2, 700, 16], 14), w1: randn([3, 16, 32], 15, 0.3), b1: randn([32], 16), w2: randn([32, 660], 17, 0.3), b2: randn([660], 18) }, 'x [2, 700, 16], Dh 32, Nmax 660') }],
  ])('splits %s %j by head and query block and keeps the bits', async (name, options) => {
    // 2 batches x 3 heads x 700 queries: several row jobs per head
    const q = randn([2, 3, 700, 24], 1);
    const k = randn([2, 3, 650, 24], 2);
    const v = randn([2, 3, 650, 20], 3);
    const all = { ...options, keyPadding: padding(2, 650, 4) };
    const sync = one.apply(name as VariantName, q, k, v, all);
    const pooled = await two.run(name as VariantName, q, k, v, all);
    expect(bytes(pooled.data)).toEqual(bytes(sync.data));
    expect(two.memory.inUse).toBe(0);
  });

  it('rejects bad input like the synchronous call, and queues runs', async () => {
    const q = randn([1, 2, 40, 8], 5);
    await expect(two.run('full', q, q, { data: new Float32Array(3), dims: [3] })).rejects.toThrow(RangeError);
    const runs = await Promise.all([two.run('full', q, q, q), two.run('local', q, q, q, { window: 2 }), two.run('full', q, q, q, { causal: true })]);
    expect(bytes(runs[1].data)).toEqual(bytes(one.local(q, q, q, { window: 2 }).data));
    expect(bytes(runs[2].data)).toEqual(bytes(one.full(q, q, q, { causal: true }).data));
    expect(two.memory.inUse).toBe(0);
  });

  it('a kernel that fails in a worker rejects the call and leaves the instance usable', async () => {
    const runtime = (two as unknown as { runtime: Runtime }).runtime;
    const q = randn([1, 2, 64, 8], 6);
    const before = two.memory.inUse;
    // an address past the end of memory traps in the worker
    const trap = runtime.executeParallel({ what: 'trap', parts: [4], output: 0, length: 1, scratch: [], jobs: () => [[['packHead', 0xfffffff0, 0xfffffff0, 64, 8, 8, 0, 0xfffffff0]]] });
    await expect(trap).rejects.toThrow(/kernel failed in a worker thread/);
    expect(two.memory.inUse).toBe(before);
    expect(bytes((await two.run('full', q, q, q)).data)).toEqual(bytes(one.full(q, q, q).data));
  });

  it('a worker that dies rejects the call and is replaced', async () => {
    const runtime = (two as unknown as { runtime: Runtime & { pool: Promise<{ threads: { terminate(): void }[] }> } }).runtime;
    const q = randn([2, 4, 512, 32], 7);
    const pending = two.run('full', q, q, q);
    (await runtime.pool).threads[0].terminate();
    await expect(pending).rejects.toThrow(/worker thread exited/);
    expect(bytes((await two.run('full', q, q, q)).data)).toEqual(bytes(one.full(q, q, q).data));
  });

  it('dispose() leaves no thread running: the threads end and the process exits', () => {
    // counts the process's OS threads (Linux): the pool's two come and go
    const script = `
      import { readdirSync } from 'node:fs';
      import { createAttention } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
      const threads = () => readdirSync('/proc/self/task').length;
      const attn = await createAttention({ threads: 2 });
      const q = { data: new Float32Array(2 * 64 * 8).fill(0.5), dims: [2, 64, 8] };
      attn.full(q, q, q);
      const base = threads();
      const out = await attn.run('full', q, q, q);
      const running = threads();
      attn.dispose();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const after = threads();
      const again = await attn.run('full', q, q, q).then(() => 'ran', (e) => e.message);
      console.log(JSON.stringify({ dims: out.dims, base, running, after, again }));
    `;
    const file = join(mkdtempSync(join(tmpdir(), 'wasm-attention-threads-')), 'dispose.mjs');
    writeFileSync(file, script);
    const printed = JSON.parse(execFileSync(process.execPath, [file], { encoding: 'utf8', timeout: 20_000 }));
    expect(printed.dims).toEqual([2, 64, 8]);
    expect(printed.running).toBe(printed.base + 2);
    expect(printed.after).toBe(printed.base);
    expect(printed.again).toMatch(/run\(\) after dispose\(\)/);
  });
});
