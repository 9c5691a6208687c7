/**
 * How much the property suites search: a fixed seed and a few runs in
 * `npm test`; `npm run test:fuzz -- --seed S --runs N` (FUZZ_SEED, FUZZ_RUNS)
 * for a longer search. A failure prints its seed and path, so it replays.
 */
const env = typeof process === 'object' ? process.env : {};

/** The seed of every property (FUZZ_SEED, default fixed so that CI is reproducible). */
export const FUZZ_SEED = env.FUZZ_SEED ? Number(env.FUZZ_SEED) : 20240614;

/** fast-check parameters: `ciRuns` runs unless FUZZ_RUNS asks for more. */
export function fuzzParams(ciRuns: number): { seed: number; numRuns: number } {
  return { seed: FUZZ_SEED, numRuns: env.FUZZ_RUNS ? Number(env.FUZZ_RUNS) : ciRuns };
}

/** Whether a longer search runs (timeouts then grow with it). */
export const FUZZING = !!env.FUZZ_RUNS;
