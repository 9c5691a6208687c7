/** Gradient goldens (test/golden/grad/*.json, format in its README) and their pass rule, for the SIMD backward tests. */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { GoldenTensor } from './golden.js';

export interface GradGoldenCase {
  name: string;
  variant: string;
  options: Record<string, unknown>;
  q: GoldenTensor | null;
  k: GoldenTensor | null;
  v: GoldenTensor;
  gradOutput: GoldenTensor;
  expected: { q: GoldenTensor | null; k: GoldenTensor | null; v: GoldenTensor; params: Record<string, unknown> };
}

function revive(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(revive);
  if (value === null || typeof value !== 'object') return value;
  const o = value as Record<string, unknown>;
  if (Array.isArray(o.dims) && Array.isArray(o.data)) {
    const data = Float32Array.from(o.data as number[]);
    for (const at of (o.neginf as number[] | undefined) ?? []) data[at] = -Infinity;
    return { dims: o.dims, data };
  }
  if (Array.isArray(o.u8)) return Uint8Array.from(o.u8 as number[]);
  return Object.fromEntries(Object.entries(o).map(([key, val]) => [key, revive(val)]));
}

export function loadGradGolden(file: string): GradGoldenCase[] {
  return (JSON.parse(readFileSync(new URL(`./golden/grad/${file}`, import.meta.url), 'utf8')) as unknown[]).map((c) => revive(c) as GradGoldenCase);
}

/** max |got - want| / max(1, max |want|): the README's measure. */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  let scale = 1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst / scale;
}

interface Dims {
  data: Float32Array;
  dims: readonly number[];
}

/** Every tensor of `want` (nested as params are) matched by `got` within `tolerance`, dims included. */
export function expectGradients(got: unknown, want: unknown, tolerance: number, label: string): void {
  if (want === null || want === undefined) {
    expect(got ?? null, label).toBeNull();
    return;
  }
  const w = want as Dims;
  if (w.data instanceof Float32Array) {
    const g = got as Dims;
    expect(g, label).toBeTruthy();
    expect([...g.dims], label).toEqual([...w.dims]);
    expect(relativeError(g.data, w.data), label).toBeLessThanOrEqual(tolerance);
    return;
  }
  for (const [key, value] of Object.entries(want as Record<string, unknown>)) expectGradients((got as Record<string, unknown>)?.[key], value, tolerance, `${label}.${key}`);
}

/**
 * Central differences of a float64 `loss` at about `samples` coordinates of
 * each named input (the loss reads the Float64Arrays, perturbed in place),
 * against the gradients `got`: the worst difference over the input's own
 * scale (max(1, max |got|)) must stay within `tolerance`.
 */
export function expectDifferences(inputs: Record<string, Float64Array>, got: Record<string, Float32Array>, loss: () => number, { samples = 24, step = 1e-5, tolerance = 1e-4 } = {}): void {
  for (const [name, x] of Object.entries(inputs)) {
    const grad = got[name];
    expect(grad.length, name).toBe(x.length);
    const scale = Math.max(1, ...grad.map(Math.abs));
    const stride = Math.max(1, Math.floor(x.length / samples));
    let worst = 0;
    for (let at = name.length % stride; at < x.length; at += stride) {
      const keep = x[at];
      x[at] = keep + step;
      const up = loss();
      x[at] = keep - step;
      const down = loss();
      x[at] = keep;
      worst = Math.max(worst, Math.abs((up - down) / (2 * step) - grad[at]));
    }
    expect(worst / scale, name).toBeLessThanOrEqual(tolerance);
  }
}

/**
 * max |got - want| over max |want| (at least `floor`: a gradient that is 0
 * in exact arithmetic, as a bias constant along the keys has, keeps float32
 * rounding of about 1e-7).
 */
export function relative(got: Float32Array, want: Float32Array, floor = 1e-3): number {
  expect(got.length).toBe(want.length);
  let scale = floor;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    const d = Math.abs(got[i] - want[i]);
    worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
  }
  return worst / scale;
}
