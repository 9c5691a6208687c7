/**
 * `linformer` — Linformer (Wang et al. 2020, "Linformer: Self-Attention with
 * Linear Complexity"): keys and values are projected along the sequence axis
 * to P rows, `K' = e · k`, `V' = f · v`, then every query attends the P
 * projected rows with exact softmax attention.
 */
import { linformerAttention, linformerWeights, type LinformerMath } from '../reference/linformer.js';
import { Rng, seedOf } from '../prng.js';
import { asTensor, type Tensor } from '../tensor.js';
import { headParam, parseCommon, rejectCausal, requiredNumber, type CommonOptions } from '../validate.js';
import { qkvProblem } from './full.js';
import type { Parsed, Variant } from './variant.js';

/** Options of `attn.linformer(q, k, v, options)`. */
export interface LinformerOptions extends CommonOptions {
  /** Key projection `[H|1, P, Nk]` (or `[P, Nk]`, shared by heads): `K' = e · k` per batch and head. */
  e: Tensor;
  /** Value projection with the same dims as `e`: `V' = f · v`. Default: `e` (one shared projection). */
  f?: Tensor;
  /** Not supported: every projected row mixes all positions, so `causal: true` throws a RangeError. */
  causal?: boolean;
  /**
   * `[B, Nk]`, 1 = real key, 0 = padding. Padded keys and values are zeroed
   * before projection, so they contribute nothing to `K'` and `V'` (the
   * SPEC does not say how padding meets Linformer; this is its natural
   * meaning). The P projected rows themselves are always attended.
   */
  keyPadding?: Uint8Array;
}

/** Parsed `linformer` options. */
export interface LinformerParsed extends Parsed, LinformerMath {}

/** The number of projected rows P of a projection `[H|1, P, Nk]` or `[P, Nk]`. */
function projectedRows(value: unknown, name: string): number {
  const { dims } = asTensor(value, name);
  if (dims.length !== 2 && dims.length !== 3) {
    throw new RangeError(`${name}.dims: expected [H|1, P, Nk] or [P, Nk], received [${dims.join(', ')}]`);
  }
  const P = dims[dims.length - 2];
  if (P < 1) throw new RangeError(`${name}.dims: expected at least 1 projected row P, received [${dims.join(', ')}]`);
  return P;
}

export const linformer: Variant<LinformerParsed> = {
  name: 'linformer',
  inputs: { q: 'required', k: 'required' },
  parse(inputs, options) {
    const problem = qkvProblem(inputs);
    const { H, Nk } = problem;
    const common = parseCommon(options, problem.D, problem.B, Nk);
    rejectCausal(common, 'linformer');
    if (options.e === undefined || options.e === null) {
      throw new TypeError('options.e: required option is missing (the key projection [H|1, P, Nk])');
    }
    const P = projectedRows(options.e, 'options.e');
    const e = headParam(options.e, 'options.e', H, [P, Nk], 'P, Nk');
    const f = options.f === undefined || options.f === null ? e : headParam(options.f, 'options.f', H, [P, Nk], 'P, Nk');
    return { problem, ...common, e, f, P };
  },
  reference({ q, k, v }, p) {
    return linformerAttention(q!, k!, v!, p);
  },
  weights({ q, k }, p) {
    const { B, H, Nq, Nk } = p.problem;
    return { data: linformerWeights(q!, k!, p), dims: [B, H, Nq, Nk] };
  },
};

/**
 * A seeded Linformer projection `[P, N]` for `options.e` / `options.f`:
 * standard normals from the library's `Rng(seed)`, drawn in row-major order
 * (row 0's N values first), scaled by `1 / sqrt(P)` as in the paper's
 * `N(0, 1/P)` initialisation.
 */
export function linformerProjection(P: number, N: number, seed: number): Tensor {
  const rows = requiredNumber({ P }, 'P', { integer: true, min: 1 }, 'linformerProjection');
  const columns = requiredNumber({ N }, 'N', { integer: true, min: 1 }, 'linformerProjection');
  const rng = new Rng(seedOf(seed, 'linformerProjection.seed'));
  const data = new Float32Array(rows * columns);
  const scale = 1 / Math.sqrt(rows);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() * scale;
  return { data, dims: [rows, columns] };
}
