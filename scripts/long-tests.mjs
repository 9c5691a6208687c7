#!/usr/bin/env node
// The long forms of two test suites, which `npm test` runs short:
//
//   node scripts/long-tests.mjs fuzz [--seed 123] [--runs 5000] [vitest args]
//     the property suites (test/property-*.test.ts) with that seed and that
//     many runs per property (FUZZ_SEED, FUZZ_RUNS); a failure prints the
//     seed and path that replay it
//   node scripts/long-tests.mjs soak [--calls 10000]
//     the soak test with that many calls (SOAK_CALLS)
import { spawnSync } from 'node:child_process';

const [mode, ...rest] = process.argv.slice(2);
const flags = { fuzz: { '--seed': 'FUZZ_SEED', '--runs': 'FUZZ_RUNS' }, soak: { '--calls': 'SOAK_CALLS' } }[mode];
if (!flags) {
  console.error('usage: node scripts/long-tests.mjs fuzz [--seed S] [--runs N] | soak [--calls N]');
  process.exit(2);
}
const env = { ...process.env, ...(mode === 'fuzz' ? { FUZZ_RUNS: '1000' } : { SOAK_CALLS: '10000' }) };
const args = [];
for (let i = 0; i < rest.length; i++) {
  if (flags[rest[i]]) env[flags[rest[i]]] = rest[++i];
  else args.push(rest[i]);
}
const files = mode === 'fuzz' ? ['test/property-valid.test.ts', 'test/property-hostile.test.ts', 'test/property-entries.test.ts'] : ['test/soak.test.ts'];
const vitest = spawnSync('npx', ['vitest', 'run', ...files, ...args], { env, stdio: 'inherit', shell: process.platform === 'win32' });
process.exit(vitest.status ?? 1);
