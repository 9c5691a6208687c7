// `npm run test:browser`: the package and the demo in a real Chromium
// (test/browser.test.ts, kept out of `npm test`, which needs no browser).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/browser.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
