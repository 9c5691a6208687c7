#!/usr/bin/env node
// Regenerates docs/demo.png: the demo's "All variants" grid (every
// registered variant's attention matrix) in headless Chromium.
//
//   npm run screenshot            (builds first)
//   node scripts/screenshot.mjs [--out docs/demo.png] [--query "view=grid&N=128"]
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
const out = resolve(ROOT, option('out', 'docs/demo.png'));
const query = option('query', 'view=grid&N=128&H=4&D=32&inputs=smooth&seed=1&scale=log');

const { url, close } = await serve({ port: 0 });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1320, height: 900 }, deviceScaleFactor: 1 });
  // fail at the first error (e.g. a dist/ being rebuilt) instead of waiting for a page that never gets ready
  const failed = new Promise((_, reject) => {
    page.on('console', (message) => message.type() === 'error' && reject(new Error(`the demo logged: ${message.text()} (${message.location().url})`)));
    page.on('pageerror', (error) => reject(new Error(`the demo failed: ${error.message}`)));
  });
  failed.catch(() => {});
  await page.goto(`${url}demo/?${query}`);
  await Promise.race([page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 300_000 }), failed]);
  const broken = await page.locator('.card.failed, .panel .error:not([hidden])').allInnerTexts();
  if (broken.length) throw new Error(`some variants failed:\n${broken.join('\n')}`);
  await mkdir(dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await close();
}
