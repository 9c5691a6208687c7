// The package in a real Chromium: the demo page imports dist/index.js as a
// plain ES module from a static server (its dependency mapped by an import
// map), finds attention.wasm by itself, and every registered variant gives
// the same numbers there as in Node. Not part of `npm test`: run it with
// `npm run test:browser` (needs /usr/bin/chromium, or CHROMIUM_PATH).
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as lib from '../dist/index.js';
import { createAttention, variantNames, type Attention, type Tensor } from '../dist/index.js';
// @ts-expect-error: plain ES modules without type declarations
import { callInputs, defaultOptions, makeInputs, resolveOptions } from '../demo/cases.js';
// @ts-expect-error: plain ES modules without type declarations
import { serve } from '../scripts/serve.mjs';
import { maxAbsDiff } from './golden.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const TOLERANCE = 1e-5;
// small, with D not a multiple of 4 and two heads
const N = 40;
const H = 2;
const D = 12;

interface Outcome {
  error?: string;
  out?: number[];
  dims?: number[];
  weights?: number[];
  weightDims?: number[];
  mask?: number[] | null;
  backend?: string;
}

let server: { url: string; close(): Promise<void> };
let browser: Browser;
let page: Page;
let node: Attention;
const problems: { text: string; url: string }[] = [];
const responses: { url: string; status: number; type: string | undefined }[] = [];
const diffs: Record<string, { out: number; weights: number }> = {};

/** Runs a case in Node exactly as the page's `runCase` does. */
function nodeCase(name: string, x: { q: Tensor; k: Tensor; v: Tensor }, json: object): Outcome {
  try {
    const options = resolveOptions(json, lib, { N, H, D, ...x });
    const args = callInputs(name, x);
    const out = node.apply(name as never, args.q, args.k, args.v, options);
    const weights = node.weights(name as never, args.q, args.k, options);
    let mask: Uint8Array | null = null;
    try {
      mask = node.mask(name as never, N, N, options);
    } catch (error) {
      if (!(error instanceof TypeError && /pattern-based/.test(error.message))) throw error;
    }
    return { out: [...out.data], dims: [...out.dims], weights: [...weights.data], weightDims: [...weights.dims], mask: mask && [...mask] };
  } catch (error) {
    return { error: `${(error as Error).name}: ${(error as Error).message}` };
  }
}

function browserCase(name: string, x: { q: Tensor; k: Tensor; v: Tensor }, json: object): Promise<Outcome> {
  return page.evaluate(
    async ({ name, q, k, v, json }) => {
      try {
        const r = await (window as any).runCase(name, q, k, v, json);
        return {
          out: Array.from(r.out as Float32Array),
          dims: r.dims,
          weights: Array.from(r.weights as Float32Array),
          weightDims: r.weightDims,
          mask: r.mask && Array.from(r.mask as Uint8Array),
          backend: r.backend,
        };
      } catch (error) {
        return { error: `${(error as Error).name}: ${(error as Error).message}` };
      }
    },
    { name, q: x.q, k: x.k, v: x.v, json },
  );
}

/** The 404 the wasm-URL test asks for on purpose. */
const expected = (p: { url: string }) => p.url.endsWith('/dist/missing.wasm');
let onProblem: (() => void) | null = null;

function report(problem: { text: string; url: string }): void {
  problems.push(problem);
  if (!expected(problem)) onProblem?.();
}

/** Waits for the demo to finish rendering; fails at once if the page reports an error meanwhile. */
async function waitReady(): Promise<void> {
  const seen = problems.length;
  const problem = new Promise<void>((resolve) => (onProblem = resolve));
  const ready = page.waitForFunction(() => document.body.dataset.ready === '1' || document.body.dataset.ready === 'failed', null, { timeout: 120_000 });
  ready.catch(() => {});
  await Promise.race([ready, problem]);
  onProblem = null;
  expect(problems.slice(seen).filter((p) => !expected(p))).toEqual([]);
  expect(await page.evaluate(() => document.body.dataset.ready)).toBe('1');
}

// A failed setup fails every test (a failing beforeAll would only mark them skipped).
let setupError: unknown = null;

beforeEach(() => {
  if (setupError) throw setupError;
});

beforeAll(async () => {
  try {
    await setup();
  } catch (error) {
    setupError = error;
  }
});

async function setup(): Promise<void> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM_PATH`);
  node = await createAttention({ backend: 'wasm' });
  server = await serve({ port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  page = await browser.newPage({ viewport: { width: 1320, height: 1000 } });
  page.on('console', (message) => {
    if (message.type() === 'error') report({ text: `console.error: ${message.text()}`, url: message.location().url });
  });
  page.on('pageerror', (error) => report({ text: `page error: ${error.message}`, url: '' }));
  page.on('requestfailed', (request) => report({ text: `request failed: ${request.failure()?.errorText}`, url: request.url() }));
  page.on('response', (response) => {
    responses.push({ url: response.url(), status: response.status(), type: response.headers()['content-type'] });
  });
  await page.goto(`${server.url}demo/?N=48&H=2&D=16`);
  await waitReady();
}

afterAll(async () => {
  if (Object.keys(diffs).length) {
    console.log('browser vs Node, max abs diff per case:');
    for (const [key, d] of Object.entries(diffs)) console.log(`  ${key.padEnd(24)} out ${d.out.toExponential(2)}  weights ${d.weights.toExponential(2)}`);
  }
  await browser?.close();
  await server?.close();
});

describe('in Chromium', () => {
  it('the server sends wasm as application/wasm, JS as text/javascript, with COOP/COEP', async () => {
    for (const [path, type] of [
      ['dist/attention.wasm', 'application/wasm'],
      ['dist/index.js', 'text/javascript'],
      ['node_modules/@assemblyscript/loader/index.js', 'text/javascript'],
      ['demo/', 'text/html'],
    ]) {
      const response = await fetch(server.url + path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type'), path).toMatch(new RegExp(`^${type}`));
      expect(response.headers.get('cross-origin-opener-policy'), path).toBe('same-origin');
      expect(response.headers.get('cross-origin-embedder-policy'), path).toBe('require-corp');
      await response.arrayBuffer();
    }
    expect((await fetch(`${server.url}..%2fpackage.json`)).status).not.toBe(200);
    expect((await fetch(`${server.url}no/such/file.js`)).status).toBe(404);
  });

  it('the page imports the package unbundled, finds attention.wasm by itself and runs SIMD', async () => {
    const state = await page.evaluate(() => {
      const { attn, lib } = (window as any).demo;
      return {
        backend: attn.backend,
        relaxed: attn.features.relaxedSimd,
        canRelax: lib.hasRelaxedSimd(),
        isolated: self.crossOriginIsolated,
        threads: attn.threads.count,
        cores: navigator.hardwareConcurrency,
        names: lib.variantNames,
      };
    });
    expect(state).toMatchObject({ backend: 'wasm', isolated: true, names: variantNames });
    // Chromium has relaxed SIMD, so the default is the relaxed build; the page is cross-origin
    // isolated, so it runs on a thread per core with the shared-memory build; fetched next to dist/index.js
    expect(state.relaxed).toBe(state.canRelax);
    expect(state.threads).toBe(state.cores);
    const build = `attention${state.relaxed ? '-relaxed' : ''}${state.threads > 1 ? '-shared' : ''}.wasm`;
    const wasm = responses.filter((r) => /\/dist\/attention(-relaxed)?(-shared)?\.wasm$/.test(r.url));
    expect(wasm).toHaveLength(1);
    expect(wasm[0].url).toBe(`${server.url}dist/${build}`);
    expect(wasm[0]).toMatchObject({ status: 200, type: 'application/wasm' });
    expect(responses.some((r) => r.url.endsWith('/node_modules/@assemblyscript/loader/index.js') && r.status === 200)).toBe(true);
  });

  it('runs on 2 threads in the page: attn.run gives the bits of the synchronous call', async () => {
    const x = makeInputs({ N: 300, H: 2, D: 12, seed: 3, kind: 'random' });
    const result = await page.evaluate(async ({ q, k, v }) => {
      const { attn } = (window as any).demo;
      const same = async (name: string, options: object) => {
        const sync = attn.apply(name, q, k, v, options).data as Float32Array;
        const pooled = (await attn.run(name, q, k, v, options)).data as Float32Array;
        return sync.length === pooled.length && sync.every((value, i) => Object.is(value, pooled[i]));
      };
      return {
        threads: attn.threads.count,
        full: await same('full', { causal: true }),
        local: await same('local', { window: 7 }),
        sparse: await same('sparse', { patterns: [{ type: 'local', window: 3 }, { type: 'global', tokens: [0] }, { type: 'strided', stride: 16 }] }),
        linear: await same('linear', { causal: true }),
      };
    }, x);
    expect(result).toEqual({ threads: 2, full: true, local: true, sparse: true, linear: true });
  });

  it('createAttention({ wasm }) takes a URL string, a URL and bytes in the page', async () => {
    const x = makeInputs({ N: 33, H: 2, D: 12, seed: 5, kind: 'random' });
    const want = node.full(x.q, x.k, x.v, { causal: true }).data;
    const got = await page.evaluate(async ({ q, k, v }) => {
      // the module the page imported (a dynamic import here would be rewritten by vitest's transform)
      const m = (window as any).demo.lib;
      const sources = {
        string: '/dist/attention.wasm',
        url: new URL('/dist/attention.wasm', location.href),
        bytes: await (await fetch('/dist/attention.wasm')).arrayBuffer(),
        relaxed: '../dist/attention-relaxed.wasm', // relative: resolved against the page (/demo/)
      };
      const result: Record<string, number[] | string> = {};
      for (const [kind, wasm] of Object.entries(sources)) {
        const attn = await m.createAttention({ backend: 'wasm', wasm });
        result[kind] = Array.from(attn.full(q, k, v, { causal: true }).data as Float32Array);
      }
      try {
        await m.createAttention({ backend: 'wasm', wasm: '/dist/missing.wasm' });
        result.missing = 'loaded';
      } catch (error) {
        result.missing = (error as Error).message;
      }
      return result;
    }, x);
    for (const kind of ['string', 'url', 'bytes', 'relaxed']) expect(maxAbsDiff(got[kind] as number[], want), kind).toBeLessThanOrEqual(TOLERANCE);
    expect(got.missing).toMatch(/HTTP 404/);
  });

  const padding = Array.from({ length: N }, (_, j) => (j % 7 === 3 ? 0 : 1));
  const cases = variantNames.flatMap((name) => [
    [name, 'defaults', (opts: object) => opts],
    [name, 'causal+padding', (opts: object) => ({ ...opts, causal: true, keyPadding: { $uint8: padding } })],
  ] as const);

  it.each(cases)('%s (%s): the same numbers as Node', async (name, label, extend) => {
    const x = makeInputs({ N, H, D, seed: 11, kind: 'random' });
    const json = extend(defaultOptions(name, N, H, D));
    const want = nodeCase(name, x, json);
    const got = await browserCase(name, x, json);
    if (label === 'defaults') expect(want.error, `default options of '${name}' (demo/cases.js defaultOptions)`).toBeUndefined();
    if (want.error !== undefined) {
      // an option this variant rejects (e.g. causal linformer) must be rejected the same way
      expect(got.error).toBe(want.error);
      return;
    }
    expect(got.error).toBeUndefined();
    expect(got.backend).toBe('wasm');
    expect(got.dims).toEqual(want.dims);
    expect(got.weightDims).toEqual(want.weightDims);
    expect(got.out!.length).toBe(want.dims!.reduce((a, b) => a * b, 1));
    expect(got.weights!.length).toBe(want.weightDims!.reduce((a, b) => a * b, 1));
    const out = maxAbsDiff(got.out!, want.out!);
    const weights = maxAbsDiff(got.weights!, want.weights!);
    diffs[`${name} ${label}`] = { out, weights };
    expect(out).toBeLessThanOrEqual(TOLERANCE);
    expect(weights).toBeLessThanOrEqual(TOLERANCE);
    expect(got.mask).toEqual(want.mask);
    expect(want.out!.every(Number.isFinite)).toBe(true);
  });

  it('the compare view draws two variants side by side with time, speed-up and error', async () => {
    const panels = page.locator('.panel');
    await panels.nth(1).locator('select.variant').selectOption('routing');
    await waitReady();
    for (const i of [0, 1]) {
      const text = await panels.nth(i).locator('.stats').innerText();
      expect(text).toMatch(/time[\s\S]*speed-up[\s\S]*×\d[\s\S]*error vs full[\s\S]*\d\.\d+e[-+]\d/);
      expect(await panels.nth(i).locator('.error').isHidden()).toBe(true);
    }
    expect(await panels.nth(0).locator('.mask-figure').isVisible()).toBe(true); // local has a mask
    expect(await panels.nth(1).locator('.mask-figure').isVisible()).toBe(false); // routing has none
    // a lit pixel in the heatmap: something was drawn
    const lit = await panels.nth(0).locator('canvas.weights').evaluate((canvas: HTMLCanvasElement) => {
      const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
      let count = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 200) count++;
      return count;
    });
    expect(lit).toBeGreaterThan(0);
    // bad JSON is shown in the panel, not thrown
    await panels.nth(1).locator('textarea.options').fill('{"window": ');
    await panels.nth(1).locator('textarea.options').dispatchEvent('change');
    await waitReady();
    expect(await panels.nth(1).locator('.error').innerText()).toMatch(/SyntaxError/);
  });

  it('the grid view draws every variant, and a screenshot is taken', async () => {
    await page.goto(`${server.url}demo/?view=grid&N=64&H=2&D=16`);
    await waitReady();
    expect(await page.locator('.card').count()).toBe(variantNames.length);
    expect(await page.locator('.card.failed').allInnerTexts()).toEqual([]);
    const path = join(tmpdir(), 'wasm-attention-browser-demo.png');
    await page.screenshot({ path, fullPage: true });
    const png = await readFile(path);
    expect([...png.subarray(0, 8)]).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
    expect(png.length).toBeGreaterThan(20_000);
  });

  it('the decoding view times a cache step per length against the copy and full, and shows a bad shape as an error', async () => {
    await page.goto(`${server.url}demo/?view=decode&qHeads=4&kvHeads=2&headDim=16&longest=256`);
    await waitReady();
    const columns = await page.locator('.decode-table th').allInnerTexts();
    const rows = await page.locator('.decode-table tbody tr').evaluateAll((trs) => trs.map((tr) => Array.from(tr.children, (td) => (td as HTMLElement).innerText)));
    const cell = (row: string[], name: string) => row[columns.indexOf(name)];
    expect(rows.map((row) => Number(cell(row, 'cached positions')))).toEqual([16, 32, 64, 128, 256]);
    for (const row of rows) {
      // the step's output against full over the same positions (both in the page)
      expect(Number(cell(row, 'max |step − full|'))).toBeLessThanOrEqual(TOLERANCE);
      expect(Number(cell(row, 'tokens/s'))).toBeGreaterThan(0);
      for (const name of ['cache step', 'copy K, V', 'full, no cache']) expect(cell(row, name), name).toMatch(/^\d+(\.\d+)? (ms|µs)$/);
    }
    // a line per series, a point per length
    const lines = await page.locator('.decode-chart polyline').evaluateAll((ps) => ps.map((p) => [p.getAttribute('data-series'), p.getAttribute('points')!.trim().split(/\s+/).length]));
    expect(lines).toEqual([['step', 5], ['copy', 5], ['full', 5]]);
    expect(await page.locator('#decode-view .error').isHidden()).toBe(true);
    // 4 query heads over 3 kv heads: the library's RangeError, shown in the view
    await page.goto(`${server.url}demo/?view=decode&qHeads=4&kvHeads=3&headDim=16&longest=64`);
    await waitReady();
    expect(await page.locator('#decode-view .error').innerText()).toMatch(/^RangeError: .*\b3\b/);
  });

  it('a Vite build of a page (the README recipe: the .wasm URLs imported with ?url) emits and loads the wasm', async () => {
    // an app with the package installed as npm would: package.json and dist/ under node_modules
    const root = fileURLToPath(new URL('..', import.meta.url));
    const app = await mkdtemp(join(tmpdir(), 'wasm-attention-vite-'));
    try {
      const pkg = join(app, 'node_modules', 'wasm-attention');
      await mkdir(pkg, { recursive: true });
      await cp(join(root, 'package.json'), join(pkg, 'package.json'));
      await cp(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
      await cp(join(root, 'node_modules', '@assemblyscript', 'loader'), join(app, 'node_modules', '@assemblyscript', 'loader'), { recursive: true });
      await writeFile(join(app, 'index.html'), '<!doctype html><script type="module" src="/main.js"></script>');
      await writeFile(
        join(app, 'main.js'),
        [
          "import { createAttention, hasRelaxedSimd } from 'wasm-attention';",
          "import wasmUrl from 'wasm-attention/attention.wasm?url';",
          "import relaxedUrl from 'wasm-attention/attention-relaxed.wasm?url';",
          'const attn = await createAttention({ wasm: hasRelaxedSimd() ? relaxedUrl : wasmUrl });',
          'window.run = (q, k, v) => Array.from(attn.full(q, k, v, { causal: true }).data);',
          'window.backend = attn.backend;',
        ].join('\n'),
      );
      const { build } = await import('vite');
      await build({ root: app, configFile: false, logLevel: 'silent', build: { target: 'esnext', outDir: join(app, 'dist') } });
      const assets = await readdir(join(app, 'dist', 'assets'));
      // the two imported with ?url, and the package's own four builds (the same files, deduplicated)
      expect(assets.filter((f) => f.endsWith('.wasm'))).toHaveLength(4);
      const built = await serve({ port: 0, root: join(app, 'dist') });
      const other = await browser.newPage();
      try {
        const errors: string[] = [];
        other.on('console', (message) => message.type() === 'error' && !message.location().url.endsWith('/favicon.ico') && errors.push(message.text()));
        other.on('pageerror', (error) => errors.push(error.message));
        await other.goto(built.url);
        await other.waitForFunction(() => (window as any).run !== undefined, null, { timeout: 60_000 }).catch((error: Error) => {
          throw new Error(`${error.message}\n${errors.join('\n')}`);
        });
        const x = makeInputs({ N: 19, H: 2, D: 12, seed: 9, kind: 'random' });
        const got = await other.evaluate(({ q, k, v }) => ({ out: (window as any).run(q, k, v), backend: (window as any).backend }), x);
        expect(got.backend).toBe('wasm');
        expect(maxAbsDiff(got.out, node.full(x.q, x.k, x.v, { causal: true }).data)).toBeLessThanOrEqual(TOLERANCE);
        expect(errors).toEqual([]);
      } finally {
        await other.close();
        await built.close();
      }
    } finally {
      await rm(app, { recursive: true, force: true });
    }
  });

  it('logged no console error, no page error, no failed request', () => {
    expect(problems.filter((p) => !expected(p))).toEqual([]);
    expect(responses.filter((r) => r.status >= 400 && !expected(r))).toEqual([]);
  });
});
