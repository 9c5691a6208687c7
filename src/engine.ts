/**
 * The flash engine's side of a plan, shared by `full` and the pattern
 * variants: where a head starts in either layout (read in place), which kv
 * head a query head reads (grouped-query attention, no copy), and the
 * per-head record of the model terms (mask, bias, softcap) that the kernels
 * apply (assembly/core/terms.ts).
 */
import type { Arg, KernelCall } from './runtime/jobs.js';
import type { BroadcastView, LogitOptions } from './model.js';
import type { Heads } from './tensor.js';

/** Head (b, h) of x: its byte offset in x's data and the distance between its rows, in floats. */
export function headAt(x: Pick<Heads, 'H' | 'N' | 'D' | 'layout'>, b: number, h: number): { readonly offset: number; readonly ld: number } {
  const { H, N, D } = x;
  if (x.layout === 'bnhd') return { offset: (b * N * H + h) * D * 4, ld: H * D };
  return { offset: (b * H + h) * N * D * 4, ld: D };
}

/** The kv head that query head h of H reads among Hkv: `floor(h / (H / Hkv))`. */
export function kvHead(h: number, H: number, Hkv: number): number {
  return Math.floor(h / (H / Hkv));
}

/** The frame parts of the terms: the mask and the bias data (0 where absent). */
export function termsParts(terms: LogitOptions): [Uint8Array | 0, Float32Array | 0] {
  return [terms.mask?.data ?? 0, terms.bias?.data ?? 0];
}

/**
 * The call that writes head (b, h)'s terms record into `record` (a scratch
 * buffer of `termsBytes()`), given the pointers of the mask and bias parts.
 */
export function writeTermsCall(terms: LogitOptions, maskPointer: number, biasPointer: number, b: number, h: number, record: Arg): KernelCall {
  const { mask, bias } = terms;
  const at = (view: BroadcastView<Uint8Array | Float32Array>) => b * view.strides[0] + h * view.strides[1];
  return [
    'writeTerms', record,
    mask ? maskPointer + at(mask) : 0, mask?.strides[2] ?? 0, mask?.strides[3] ?? 0,
    bias ? biasPointer + at(bias) * 4 : 0, bias?.strides[2] ?? 0, bias?.strides[3] ?? 0,
    terms.softcap ?? 0,
  ];
}
