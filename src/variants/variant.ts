/**
 * What every attention variant provides. One variant, one place: its options
 * parsing and its kernel call live in `src/variants/<name>.ts`, its plain-JS
 * float64 math in `src/reference/<name>.ts`, its SIMD kernel in
 * `assembly/variants/<name>.ts`.
 */
import type { OptionTable } from '../options.js';
import type { Heads } from '../tensor.js';
import type { Options } from '../validate.js';
import type { Runtime } from '../runtime/runtime.js';
import type { JobPlan } from '../runtime/jobs.js';

/** The inputs of one call; `null` where the variant takes none (lsh: k; synthesizer: q, k). */
export interface Inputs {
  readonly q: Heads | null;
  readonly k: Heads | null;
  /** `null` when called from `weights()` / `mask()`. */
  readonly v: Heads | null;
}

/** The sizes of one problem, as a variant's `parse` derives them. */
export interface Problem {
  readonly B: number;
  /** Query heads (and heads of the output). */
  readonly H: number;
  /**
   * Key and value heads: H, or a divisor of H (grouped-query attention,
   * query head h reads kv head `floor(h / (H / Hkv))`; see `headOffset`).
   */
  readonly Hkv: number;
  readonly Nq: number;
  readonly Nk: number;
  readonly D: number;
  readonly Dv: number;
}

/** Parsed options always carry the problem they were checked against. */
export interface Parsed {
  readonly problem: Problem;
}

/** A dense result: `data` row-major with `dims`. */
export interface Dense {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** Finds another variant by name (for `mixed`, whose heads name other variants). */
export type Lookup = (name: string, argName: string) => Variant<Parsed>;

export interface Variant<P extends Parsed = Parsed> {
  readonly name: string;
  /** Which inputs the variant reads: `k: 'shared'` means k must be null or q itself. */
  readonly inputs: { readonly q: 'required' | 'ignored'; readonly k: 'required' | 'shared' | 'ignored' };
  /** Its SIMD kernel reads and writes the `'bnhd'` layout in place (else the facade transposes). */
  readonly layoutInPlace?: boolean;
  /** Every option the variant accepts (an unknown name is a TypeError before `parse` runs). */
  readonly options: OptionTable;
  /**
   * Validates options against the inputs' shapes (never their data) and
   * throws a TypeError / RangeError naming the argument. `inputs.v` is null
   * when called for `weights()` or `mask()`.
   */
  parse(inputs: Inputs, options: Options, lookup: Lookup): P;
  /** The plain-JS float64 reference: `[B, H, Nq, Dv]`. It is also the JS backend. */
  reference(inputs: Inputs, parsed: P): Float32Array;
  /** The dense matrix the variant applies (SPEC `weights()`), from the reference math. */
  weights(inputs: Inputs, parsed: P): Dense;
  /**
   * The logits the softmax takes, `[B, H, Nq, Nk]`: `softcap(scale q.k) +
   * bias` at visible pairs, -Infinity at hidden ones (`full` and the pattern
   * family, from the reference math; the ONNX operator's `qk_matmul_output`).
   */
  logits?(inputs: Inputs, parsed: P): Dense;
  /** The `[Nq, Nk]` visibility pattern, for pattern-based variants (batch 0, head 0). */
  mask?(parsed: P): Uint8Array;
  /**
   * The SIMD kernel as a plan of independent jobs, for the thread pool
   * (`attn.run`); `kernel` then runs the same plan on one thread.
   */
  plan?(runtime: Runtime, inputs: Inputs, parsed: P): JobPlan;
  /** The SIMD kernel: `[B, H, Nq, Dv]`. */
  kernel?(runtime: Runtime, inputs: Inputs, parsed: P): Float32Array;
}
