/**
 * The flash engine's side of a plan, shared by `full` and the pattern
 * variants: the per-head record of the model terms (mask, bias, softcap)
 * that the kernels apply (assembly/core/terms.ts).
 */
import type { Arg, KernelCall } from './runtime/jobs.js';
import type { BroadcastView, LogitOptions } from './model.js';

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
