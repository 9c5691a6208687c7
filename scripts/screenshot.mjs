#!/usr/bin/env node
// Regenerates the demo's pictures in headless Chromium: docs/demo.png, the
// "All variants" grid (every registered variant's attention matrix), and
// docs/demo-decoding.png, the decoding view (measured on this machine).
//
//   npm run screenshot            (builds first)
//   node scripts/screenshot.mjs [--out docs/demo.png --query "view=grid&N=128"]   (one picture)
//
// Chromium: /usr/bin/chromium (apt-get install -y chromium), or CHROMIUM_PATH.
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && argv[at + 1] !== undefined ? argv[at + 1] : fallback;
};
const shots = argv.includes('--out')
  ? [{ out: option('out'), query: option('query', 'view=grid') }]
  : [
      { out: 'docs/demo.png', query: 'view=grid&N=128&H=4&D=32&inputs=smooth&seed=1&scale=log' },
      { out: 'docs/demo-decoding.png', query: 'view=decode&qHeads=32&kvHeads=8&headDim=128&longest=4096' },
    ];

const { url, close } = await serve({ port: 0 });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
/** Loads the demo at `query` and writes its picture to `out`. */
async function shoot(out, query) {
  const page = await browser.newPage({ viewport: { width: 1320, height: 900 }, deviceScaleFactor: 1 });
  // fail at the first error (e.g. a dist/ being rebuilt) instead of waiting for a page that never gets ready
  const failed = new Promise((_, reject) => {
    page.on('console', (message) => message.type() === 'error' && reject(new Error(`the demo logged: ${message.text()} (${message.location().url})`)));
    page.on('pageerror', (error) => reject(new Error(`the demo failed: ${error.message}`)));
  });
  failed.catch(() => {});
  await page.goto(`${url}demo/?${query}`);
  await Promise.race([page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 300_000 }), failed]);
  const broken = await page.locator('.card.failed, .panel .error:not([hidden]), #decode-view .error:not([hidden])').allInnerTexts();
  if (broken.length) throw new Error(`some views failed:\n${broken.join('\n')}`);
  const path = resolve(ROOT, out);
  await mkdir(dirname(path), { recursive: true });
  await page.screenshot({ path, fullPage: true });
  await page.close();
  console.log(`wrote ${path}`);
}

try {
  for (const { out, query } of shots) await shoot(out, query);
} finally {
  await browser.close();
  await close();
}
