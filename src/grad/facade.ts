/** The facade's side of a backward call: reading gradOutput, giving gradients back in the caller's layout. */
import { inBhnd, outputInLayout } from '../layout.js';
import type { VariantName } from '../registry.js';
import { asHeads, toTensor, type Heads, type Layout, type Tensor } from '../tensor.js';
import type { Inputs, Problem } from '../variants/variant.js';
import type { Backward, GradParams, Gradients, Saved } from './backward.js';
import { rejectUnknown } from '../options.js';
import { asOptions } from '../validate.js';
import { backwards } from './index.js';

export type { GradParams } from './backward.js';

/** What `attn.backward` returns: each gradient in the dims and layout of what it is the gradient of. */
export interface GradientTensors {
  readonly q: Tensor | null;
  readonly k: Tensor | null;
  readonly v: Tensor | null;
  readonly params: GradParams;
}

export function backwardOf(name: VariantName): Backward {
  const backward = backwards[name];
  if (!backward) throw new TypeError(`name: backward() is not defined for '${name}' yet`);
  return backward;
}

/** gradOutput (or another tensor of the output's shape, `name`), checked against the output `[B, H, Nq, Dv]` in the caller's rank and layout, as 'bhnd' heads. */
export function readGradOutput(gradOutput: unknown, problem: Problem, rank: 2 | 3 | 4, layout: Layout, name = 'gradOutput'): Heads {
  const { B, H, Nq, Dv } = problem;
  const want = toTensor(new Float32Array(0), B, H, Nq, Dv, rank, layout).dims;
  const heads = asHeads(gradOutput, name, layout);
  const dims = (gradOutput as Tensor).dims;
  if (dims.length !== want.length || dims.some((d, i) => d !== want[i])) {
    throw new RangeError(`${name}.dims: expected the output's dims [${want.join(', ')}], received [${dims.join(', ')}]`);
  }
  return inBhnd({ q: heads, k: null, v: null }).q!;
}

/** What a backward call may be given of its forward: `{ output? }`. */
export interface SavedTensors {
  /**
   * The forward call's output (the same inputs and options): `full` and
   * `local` then compute only each row's log-sum-exp again, not the output.
   * Other variants recompute what they need and only check it.
   */
  readonly output?: Tensor;
}

/** `saved`, checked: an object of known keys, its output of the output's dims. */
export function readSaved(saved: unknown, problem: Problem, rank: 2 | 3 | 4, layout: Layout): Saved {
  const given = asOptions(saved, 'saved');
  rejectUnknown(given, ['output'], 'backward', 'saved');
  const output = given.output === undefined || given.output === null ? null : readGradOutput(given.output, problem, rank, layout, 'saved.output');
  return { output };
}

function isTensor(value: unknown): value is Tensor {
  return value !== null && typeof value === 'object' && 'data' in value && 'dims' in value && Array.isArray((value as Tensor).dims);
}

/**
 * The parameter gradients with the dims the caller gave each option (a
 * backward pass gives a per-head parameter as `[1 | H, ...inner]` and a bias
 * as its broadcast `[B|1, H|1, Nq|1, Nk|1]`; the values are the same).
 */
function paramsAsGiven(params: GradParams, given: unknown): GradParams {
  const options = (given ?? {}) as Record<string, unknown>;
  const out = (Array.isArray(params) ? [] : {}) as Record<string, unknown>;
  for (const [key, value] of Object.entries(params)) {
    const option = options[key];
    if (isTensor(value)) {
      const same = isTensor(option) && option.dims.reduce((a, b) => a * b, 1) === value.data.length;
      out[key] = same ? { data: value.data, dims: [...option.dims] } : value;
    } else {
      out[key] = paramsAsGiven(value as GradParams, option);
    }
  }
  return out as GradParams;
}

/** Turns 'bhnd' gradients into tensors shaped as the inputs (and options) they belong to. */
export function gradientsInLayout(read: Inputs, problem: Problem, layout: Layout, options: object): (g: Gradients) => GradientTensors {
  const { B } = problem;
  const as = (x: Heads | null, data: Float32Array | null): Tensor | null =>
    x && data ? toTensor(outputInLayout(data, B, x.H, x.N, x.D, layout), B, x.H, x.N, x.D, x.rank, layout) : null;
  return (g) => ({ q: as(read.q, g.q), k: read.k === read.q ? null : as(read.k, g.k), v: as(read.v, g.v), params: paramsAsGiven(g.params, options) });
}
