/**
 * `sinkhorn`: Sparse Sinkhorn attention (Tay et al. 2020). Each block of b
 * queries attends a learned soft permutation of the key blocks (one sorted
 * block) and its own block. Math: `src/reference/sinkhorn.ts`.
 */
import { sinkhornAttention, sinkhornWeights, sortMatrices, type SinkhornSettings, type SortLogits } from '../reference/sinkhorn.js';
import { asTensor, type Tensor } from '../tensor.js';
import { optionalNumber, parseCommon, requiredNumber, type Common, type CommonOptions } from '../validate.js';
import { qkvProblem } from './full.js';
import type { Dense, Inputs, Parsed, Variant } from './variant.js';

/** Options of `sinkhorn` (needs as many keys as queries, N). */
export interface SinkhornOptions extends CommonOptions {
  /** b >= 1, the block length; N must be a multiple of it (nb = N / b blocks). */
  blockSize: number;
  /** Divides the sort logits before normalisation (> 0); default 0.75. */
  temperature?: number;
  /** Sinkhorn balancing steps (rows then columns, integer >= 0) when not causal; default 7. */
  iterations?: number;
  /**
   * The sort network's output `[B|1, H|1, nb, nb]`: logits `R_ut` of query
   * block u taking key block t. Default: `scale * qbar_u . kbar_t` with
   * `qbar`, `kbar` the block means of q and k (causal: `qbar_u` is the
   * block's first query).
   */
  sortLogits?: Tensor;
}

/** Parsed `sinkhorn` options. */
export interface SinkhornParsed extends Parsed, SinkhornSettings {}

/** `options.sortLogits`: `[B|1, H|1, nb, nb]`. */
function givenSortLogits(value: unknown, B: number, H: number, nb: number): SortLogits {
  const name = 'options.sortLogits';
  const { data, dims } = asTensor(value, name);
  const [batches, heads, rows, columns] = dims;
  if (dims.length !== 4 || (batches !== 1 && batches !== B) || (heads !== 1 && heads !== H) || rows !== nb || columns !== nb) {
    throw new RangeError(`${name}.dims: expected [B|1, H|1, nb, nb] = [${B}|1, ${H}|1, ${nb}, ${nb}], received [${dims.join(', ')}]`);
  }
  return { data, batchStride: batches === 1 ? 0 : heads * nb * nb, headStride: heads === 1 ? 0 : nb * nb };
}

/**
 * The sort matrices S `[B, H, nb, nb]` a `sinkhorn` call uses (row u: how
 * much of each key block t goes into query block u's sorted block), for
 * tests and pictures. Not causal, S is doubly stochastic up to the
 * Sinkhorn iterations' convergence; causal, row u spreads over t < u.
 */
export function sinkhornSortMatrices(inputs: Inputs, parsed: SinkhornParsed): Dense {
  const { B, H, Nq } = parsed.problem;
  const nb = Nq / parsed.blockSize;
  return { data: Float32Array.from(sortMatrices(inputs.q!, inputs.k!, parsed)), dims: [B, H, nb, nb] };
}

export const sinkhorn: Variant<SinkhornParsed> = {
  name: 'sinkhorn',
  inputs: { q: 'required', k: 'required' },
  parse(inputs, options) {
    const problem = qkvProblem(inputs);
    const { B, H, Nq, Nk, D } = problem;
    if (Nk !== Nq) throw new RangeError(`k.dims: sinkhorn needs as many keys as queries, expected Nk = ${Nq}, received ${Nk}`);
    const common: Common = parseCommon(options, D, B, Nk);
    const blockSize = requiredNumber(options, 'blockSize', { integer: true, min: 1 });
    if (Nq % blockSize !== 0) throw new RangeError(`options.blockSize: expected a divisor of N = ${Nq}, received ${blockSize}`);
    const temperature = optionalNumber(options, 'temperature', 0.75, { above: 0 });
    const iterations = optionalNumber(options, 'iterations', 7, { integer: true, min: 0 });
    const sortLogits = options.sortLogits === undefined ? null : givenSortLogits(options.sortLogits, B, H, Nq / blockSize);
    return { problem, ...common, blockSize, temperature, iterations, sortLogits };
  },
  reference({ q, k, v }, p) {
    return sinkhornAttention(q!, k!, v!, p);
  },
  weights({ q, k }, p) {
    const { B, H, Nq, Nk } = p.problem;
    return { data: sinkhornWeights(q!, k!, p), dims: [B, H, Nq, Nk] };
  },
};
