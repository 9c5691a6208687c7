/**
 * What a variant's backward pass provides (SPEC "Gradients"): the gradients
 * of `sum(out * gradOutput)` with respect to q, k, v and the variant's
 * tensor-valued options. One variant, one place, mirroring the forward:
 * `src/grad/<name>.ts` holds its {@link Backward} (and the SIMD plan's
 * wiring), `src/reference/grad/<name>.ts` its float64 math,
 * `assembly/grad/<name>.ts` its SIMD kernel.
 */
import type { Heads, Tensor } from '../tensor.js';
import type { Runtime } from '../runtime/runtime.js';
import type { JobPlan } from '../runtime/jobs.js';
import type { Inputs, Parsed } from '../variants/variant.js';

/**
 * Gradients of the tensor-valued options, nested as the options are
 * (`{ e, f }`, `{ convK: { weight, bias } }`, `{ bias }`), each a tensor
 * with the option's own dims and order; `mixed` gives its heads' own
 * parameters as `heads`, one entry per head spec.
 */
export interface GradParams {
  readonly [name: string]: Tensor | GradParams | readonly GradParams[];
}

/**
 * The gradients of one call, in `'bhnd'` order: q `[B, H, Nq, D]`, k `[B,
 * Hkv, Nk, D]`, v `[B, Hkv, Nk, Dv]`; null where the variant takes that input
 * as null (lsh's q covers both its roles).
 */
export interface Gradients {
  readonly q: Float32Array | null;
  readonly k: Float32Array | null;
  readonly v: Float32Array | null;
  readonly params: GradParams;
}

/**
 * A SIMD backward pass as one plan (stages run in order, each stage's jobs
 * independent, so one thread and the pool give the same bits); its output is
 * every gradient side by side, which `split` cuts into {@link Gradients}.
 */
export interface BackwardPlan {
  readonly plan: JobPlan;
  split(flat: Float32Array): Gradients;
}

/** What the caller kept from the forward call (`saved` of `attn.backward`), in `'bhnd'`; null where not given. */
export interface Saved {
  /** The forward's output `[B, H, Nq, Dv]`. */
  readonly output: Heads | null;
}

export interface Backward<P extends Parsed = Parsed> {
  /**
   * The float64 reference gradients (the JS backend). `inputs` and
   * `gradOutput` (`[B, H, Nq, Dv]`) are in `'bhnd'`.
   */
  reference(inputs: Inputs, parsed: P, gradOutput: Heads): Gradients;
  /**
   * The SIMD backward pass, on `'bhnd'` inputs; null where it does not cover
   * the options (the reference runs instead). `saved` may spare it work.
   */
  plan?(runtime: Runtime, inputs: Inputs, parsed: P, gradOutput: Heads, saved: Saved): BackwardPlan | null;
}
