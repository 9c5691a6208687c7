/** Loads the golden vectors of test/golden/*.json (format in test/golden/README.md). */
import { readFileSync } from 'node:fs';

export interface GoldenTensor {
  data: Float32Array;
  dims: number[];
}

export interface GoldenCase {
  name: string;
  variant: string;
  options: Record<string, unknown>;
  q: GoldenTensor | null;
  k: GoldenTensor | null;
  v: GoldenTensor | null;
  expected: GoldenTensor;
}

/** Turns `{ dims, data }` into float32 tensors and `{ u8 }` into Uint8Arrays, at any depth. */
function revive(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(revive);
  if (value === null || typeof value !== 'object') return value;
  const o = value as Record<string, unknown>;
  if (Array.isArray(o.dims) && Array.isArray(o.data)) return { dims: o.dims, data: Float32Array.from(o.data as number[]) };
  if (Array.isArray(o.u8)) return Uint8Array.from(o.u8 as number[]);
  return Object.fromEntries(Object.entries(o).map(([key, val]) => [key, revive(val)]));
}

export function loadGolden(file: string): GoldenCase[] {
  const raw = JSON.parse(readFileSync(new URL(`./golden/${file}`, import.meta.url), 'utf8')) as unknown[];
  return raw.map((c) => revive(c) as GoldenCase);
}

/** Max abs difference; Infinity when sizes differ or a value is NaN. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

/** `out = P v` in float64, for P `[B, H, Nq, Nk]` and v `[B, H, Nk, Dv]`. */
export function applyWeights(P: { data: Float32Array; dims: readonly number[] }, v: { data: Float32Array; dims: readonly number[] }): Float64Array {
  const [B, H, Nq, Nk] = P.dims as [number, number, number, number];
  const Dv = v.dims[v.dims.length - 1];
  const out = new Float64Array(B * H * Nq * Dv);
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < Nq; i++) {
      for (let j = 0; j < Nk; j++) {
        const p = P.data[(bh * Nq + i) * Nk + j];
        for (let d = 0; d < Dv; d++) out[(bh * Nq + i) * Dv + d] += p * v.data[(bh * Nk + j) * Dv + d];
      }
    }
  }
  return out;
}
