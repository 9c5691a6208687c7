/**
 * `lsh`: Reformer's LSH attention (Kitaev et al. 2020), shared query-key
 * vectors hashed by random rotations into buckets; each query attends its
 * bucket-sorted chunk and the chunk before it. Math: `src/reference/lsh.ts`.
 */
import { lshAttention, lshWeights, type LshRotations } from '../reference/lsh.js';
import { Rng, seedOf } from '../prng.js';
import { asTensor, describe, type Heads, type Tensor } from '../tensor.js';
import { checkQKV, headParam, parseCommon, requiredNumber, type Common, type CommonOptions, type Options } from '../validate.js';
import type { Parsed, Variant } from './variant.js';

/**
 * Options of `lsh`. `k` must be `null` (or q itself): q holds the shared
 * query-key vectors. Give the hash either as `rotations` or as `rounds`,
 * `buckets` and `seed`. `causal` hides future keys (`j <= i`), but the
 * buckets and chunks are computed over the whole sequence, so a future
 * token can still change which past keys a query sees.
 */
export interface LshOptions extends CommonOptions {
  /** c >= 1: the chunk length the bucket-sorted positions are cut into. */
  bucketSize: number;
  /**
   * The random rotations `[H|1, R, D, nb/2]` (or `[R, D, nb/2]`, shared by
   * all heads): R hash rounds into nb buckets. Excludes `rounds`, `buckets`
   * and `seed`.
   */
  rotations?: Tensor;
  /** R >= 1 hash rounds, when the rotations are drawn from `seed`. */
  rounds?: number;
  /** nb >= 2 buckets (even), when the rotations are drawn from `seed`. */
  buckets?: number;
  /**
   * Integer seed of the drawn rotations: `R * D * nb/2` standard normals of
   * the library's `Rng(seed)` (`normal()`), taken in row-major `[R, D, nb/2]`
   * order, rounded to float32 and shared by all heads. See `drawLshRotations`.
   */
  seed?: number;
}

/** Parsed `lsh` options. */
export interface LshParsed extends Parsed, Common {
  readonly bucketSize: number;
  readonly rotations: LshRotations;
}

/**
 * The rotations `lsh` draws for `{ rounds, buckets, seed }`: a `[R, D, nb/2]`
 * tensor of standard normals from `Rng(seed)`, row-major, shared by all heads.
 */
export function drawLshRotations(seed: number, rounds: number, D: number, buckets: number): Tensor {
  const rng = new Rng(seed);
  const data = new Float32Array(rounds * D * (buckets / 2));
  for (let t = 0; t < data.length; t++) data[t] = rng.normal();
  return { data, dims: [rounds, D, buckets / 2] };
}

/** `options.rotations`: `[H|1, R, D, nb/2]` or `[R, D, nb/2]`, with D the input's. */
function givenRotations(value: unknown, H: number, D: number): LshRotations {
  const name = 'options.rotations';
  const { dims } = asTensor(value, name);
  if (dims.length !== 3 && dims.length !== 4) {
    throw new RangeError(`${name}.dims: expected [H|1, R, D, nb/2] = [${H}|1, R, ${D}, nb/2] or [R, D, nb/2], received [${dims.join(', ')}]`);
  }
  const [R, rowD, half] = dims.slice(-3) as [number, number, number];
  if (rowD !== D || R < 1 || half < 1) {
    throw new RangeError(`${name}.dims: expected [H|1, R, D, nb/2] with R >= 1, D = ${D} (the feature size of q) and nb/2 >= 1, received [${dims.join(', ')}]`);
  }
  const { data, headStride } = headParam(value, name, H, [R, D, half], 'R, D, nb/2');
  return { data, headStride, rounds: R, buckets: 2 * half };
}

/** `{ rounds, buckets, seed }`: rotations drawn by `drawLshRotations`. */
function drawnRotations(options: Options, D: number): LshRotations {
  const rounds = requiredNumber(options, 'rounds', { integer: true, min: 1 });
  const buckets = requiredNumber(options, 'buckets', { integer: true, min: 2 });
  if (buckets % 2 !== 0) throw new RangeError(`options.buckets: expected an even integer >= 2, received ${buckets}`);
  if (options.seed === undefined) throw new TypeError('options.seed: required option is missing (or give options.rotations)');
  const seed = seedOf(options.seed, 'options.seed');
  return { data: drawLshRotations(seed, rounds, D, buckets).data, headStride: 0, rounds, buckets };
}

export const lsh: Variant<LshParsed> = {
  name: 'lsh',
  inputs: { q: 'required', k: 'shared' },
  parse(inputs, options) {
    const x = inputs.q as Heads;
    checkQKV(x, x, inputs.v);
    const problem = { B: x.B, H: x.H, Nq: x.N, Nk: x.N, D: x.D, Dv: inputs.v ? inputs.v.D : x.D };
    const common = parseCommon(options, x.D, x.B, x.N);
    const bucketSize = requiredNumber(options, 'bucketSize', { integer: true, min: 1 });
    let rotations: LshRotations;
    if (options.rotations !== undefined) {
      for (const drawOnly of ['rounds', 'buckets', 'seed']) {
        if (options[drawOnly] !== undefined) {
          throw new TypeError(`options.${drawOnly}: not used when options.rotations is given, expected undefined, received ${describe(options[drawOnly])}`);
        }
      }
      rotations = givenRotations(options.rotations, x.H, x.D);
    } else {
      rotations = drawnRotations(options, x.D);
    }
    return { problem, ...common, bucketSize, rotations };
  },
  reference({ q, v }, p) {
    return lshAttention(q!, v!, p);
  },
  weights({ q }, p) {
    const { B, H, Nq, Nk } = p.problem;
    return { data: lshWeights(q!, p), dims: [B, H, Nq, Nk] };
  },
};
