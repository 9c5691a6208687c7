/** Loads the gradient goldens of test/golden/grad/*.json (format in test/golden/grad/README.md). */
import { loadGolden, maxAbsDiff, type GoldenTensor } from './golden.js';

/** Expected parameter gradients, nested as the options. */
export interface GoldenParams {
  readonly [name: string]: GoldenTensor | GoldenParams;
}

export interface GradGoldenCase {
  name: string;
  variant: string;
  options: Record<string, unknown>;
  q: GoldenTensor | null;
  k: GoldenTensor | null;
  v: GoldenTensor;
  gradOutput: GoldenTensor;
  expected: { q: GoldenTensor | null; k: GoldenTensor | null; v: GoldenTensor; params: GoldenParams };
}

export const gradGoldenFiles = ['patterns', 'model', 'linformer', 'compressed', 'linear', 'synthesizer', 'lsh', 'routing', 'sinkhorn'].map((f) => `${f}.json`);

export function loadGradGolden(file: string): GradGoldenCase[] {
  return loadGolden(`grad/${file}`) as unknown as GradGoldenCase[];
}

/** The README's measure: max |got - want| / max(1, max |want|). */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  return maxAbsDiff(got, want) / scale;
}

function isTensor(x: unknown): x is GoldenTensor {
  return x !== null && typeof x === 'object' && 'data' in x && 'dims' in x;
}

/** Every tensor of a nested params object, by dotted path. */
export function flatParams(params: unknown, prefix = 'params'): [string, GoldenTensor][] {
  if (isTensor(params)) return [[prefix, params]];
  if (params === null || typeof params !== 'object') return [];
  return Object.entries(params).flatMap(([key, value]) => flatParams(value, `${prefix}.${key}`));
}
