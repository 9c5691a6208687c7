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

/** Float32 values, with -Infinity at the `neginf` positions (written as 0 in `data`). */
function floats(data: number[], neginf: unknown): Float32Array {
  const out = Float32Array.from(data);
  if (Array.isArray(neginf)) for (const at of neginf as number[]) out[at] = -Infinity;
  return out;
}

/**
 * Turns `{ dims, data, neginf? }` into float32 tensors, `{ u8 }` into
 * Uint8Arrays (so `{ dims, data: { u8 } }` is a mask tensor), at any depth.
 */
function revive(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(revive);
  if (value === null || typeof value !== 'object') return value;
  const o = value as Record<string, unknown>;
  if (Array.isArray(o.dims) && Array.isArray(o.data)) return { dims: o.dims, data: floats(o.data as number[], o.neginf) };
  if (Array.isArray(o.u8)) return Uint8Array.from(o.u8 as number[]);
  return Object.fromEntries(Object.entries(o).map(([key, val]) => [key, revive(val)]));
}

function readJson(file: string): unknown[] {
  return JSON.parse(readFileSync(new URL(`./golden/${file}`, import.meta.url), 'utf8')) as unknown[];
}

export function loadGolden(file: string): GoldenCase[] {
  return readJson(file).map((c) => revive(c) as GoldenCase);
}

/** An ONNX tensor as onnxruntime-web makes it. */
export interface OnnxGoldenTensor {
  type: 'float32' | 'bool' | 'int64';
  data: Float32Array | Uint8Array | BigInt64Array;
  dims: number[];
}

/** A case of the ONNX operator files (format in test/golden/README.md). */
export interface OnnxGoldenCase {
  name: string;
  op: string;
  opset: number;
  attributes: Record<string, number>;
  inputs: Record<string, OnnxGoldenTensor>;
  expected: Record<string, OnnxGoldenTensor>;
}

function onnxTensor(t: { type: OnnxGoldenTensor['type']; dims: number[]; data: number[]; neginf?: number[] }): OnnxGoldenTensor {
  const data = t.type === 'float32' ? floats(t.data, t.neginf) : t.type === 'bool' ? Uint8Array.from(t.data) : BigInt64Array.from(t.data, BigInt);
  return { type: t.type, data, dims: t.dims };
}

export function loadOnnxGolden(file: string): OnnxGoldenCase[] {
  return (readJson(file) as OnnxGoldenCase[]).map((c) => ({
    ...c,
    inputs: Object.fromEntries(Object.entries(c.inputs).map(([name, t]) => [name, onnxTensor(t as never)])),
    expected: Object.fromEntries(Object.entries(c.expected).map(([name, t]) => [name, onnxTensor(t as never)])),
  }));
}

/** Whether a golden file holds ONNX operator cases rather than variant cases. */
export const isOnnxFile = (file: string): boolean => file.startsWith('onnx-');

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
