/**
 * `routing`: the Routing Transformer (Roy et al. 2021). Each cluster takes
 * the w queries and the w keys closest (by cosine) to its centroid; member
 * queries attend member keys. Math: `src/reference/routing.ts`.
 */
import { fitCentroids, routingAttention, routingWeights, type RoutingCentroids, type RoutingSettings } from '../reference/routing.js';
import { seedOf } from '../prng.js';
import { asHeads, asTensor, describe, type Heads, type Tensor } from '../tensor.js';
import { asOptions, checkQKV, headParam, optionalNumber, parseCommon, requiredNumber, type Common, type CommonOptions, type Options } from '../validate.js';
import { qkvProblem } from './full.js';
import type { Inputs, Parsed, Variant } from './variant.js';

/** How `routing` fits its centroids when none are given (also `fitRoutingCentroids`'s options). */
export interface RoutingFitOptions {
  /** C >= 1 clusters, at most the number of rows clustered, `B (Nq + Nk)`. */
  clusters: number;
  /** Spherical k-means steps (integer >= 0); default 10. */
  iterations?: number;
  /** Integer seed of the `Rng` that picks the initial centroids among the rows. */
  seed: number;
}

/**
 * Options of `routing`. Give the centroids either as `centroids` or as
 * `clusters`, `iterations` and `seed`: spherical k-means over each head's
 * normalised q and k rows, exactly as `fitRoutingCentroids` (fit once with
 * it and pass `centroids` to reuse them). `causal` hides future keys, but
 * cluster membership (top w over the whole sequence) is not causal: a
 * future token can change which past keys a query sees.
 */
export interface RoutingOptions extends CommonOptions, Partial<RoutingFitOptions> {
  /** w >= 1: how many queries, and separately how many keys, each cluster takes. */
  window: number;
  /**
   * Cluster centroids `[H|1, C, D]` (or `[C, D]`, shared by all heads); need
   * not be normalised. Excludes `clusters`, `iterations` and `seed`.
   */
  centroids?: Tensor;
}

/** Parsed `routing` options: `centroids` when given, else `fit` to compute them from q and k. */
export interface RoutingParsed extends Parsed, Common {
  readonly window: number;
  readonly centroids: RoutingCentroids | null;
  readonly fit: Required<RoutingFitOptions> | null;
}

/** Checks `clusters`, `iterations` and `seed` against the `rows` available to cluster. */
function parseFit(options: Options, rows: number, prefix: string): Required<RoutingFitOptions> {
  const clusters = requiredNumber(options, 'clusters', { integer: true, min: 1, max: rows }, prefix);
  const iterations = optionalNumber(options, 'iterations', 10, { integer: true, min: 0 }, prefix);
  if (options.seed === undefined) throw new TypeError(`${prefix}.seed: required option is missing (or give options.centroids)`);
  return { clusters, iterations, seed: seedOf(options.seed, `${prefix}.seed`) };
}

/** `options.centroids`: `[H|1, C, D]` or `[C, D]`, with D the input's. */
function givenCentroids(value: unknown, H: number, D: number): RoutingCentroids {
  const name = 'options.centroids';
  const { dims } = asTensor(value, name);
  if (dims.length !== 2 && dims.length !== 3) {
    throw new RangeError(`${name}.dims: expected [H|1, C, D] = [${H}|1, C, ${D}] or [C, D], received [${dims.join(', ')}]`);
  }
  const [C, rowD] = dims.slice(-2) as [number, number];
  if (rowD !== D || C < 1) {
    throw new RangeError(`${name}.dims: expected [H|1, C, D] with C >= 1 and D = ${D} (the feature size of q and k), received [${dims.join(', ')}]`);
  }
  const { data, headStride } = headParam(value, name, H, [C, D], 'C, D');
  return { data, headStride, clusters: C };
}

/**
 * Fits `routing` centroids once, for reuse as `options.centroids`: spherical
 * k-means per head over the normalised rows of q `[B, H, Nq, D]` and k
 * `[B, H, Nk, D]` of every batch (batch by batch, q rows then k rows). The
 * initial centroids are `clusters` distinct rows picked with `Rng(seed)`;
 * each iteration assigns every row to the centroid of largest cosine (ties
 * to the lower cluster) and moves each centroid to the normalised sum of its
 * members (a cluster left empty keeps its centroid). Returns `[H, C, D]`.
 */
export function fitRoutingCentroids(q: Tensor, k: Tensor, options: RoutingFitOptions): Tensor {
  const qh = asHeads(q, 'q');
  const kh = asHeads(k, 'k');
  checkQKV(qh, kh, null);
  const fit = parseFit(asOptions(options), qh.B * (qh.N + kh.N), 'options');
  return { data: fitCentroids(qh, kh, fit.clusters, fit.iterations, fit.seed), dims: [qh.H, fit.clusters, qh.D] };
}

/** The centroids a call uses: the given ones, or those fitted to its q and k. */
export function routingCentroids(q: Heads, k: Heads, parsed: RoutingParsed): RoutingCentroids {
  if (parsed.centroids) return parsed.centroids;
  const { clusters, iterations, seed } = parsed.fit!;
  return { data: fitCentroids(q, k, clusters, iterations, seed), headStride: clusters * q.D, clusters };
}

function settings(inputs: Inputs, p: RoutingParsed): RoutingSettings {
  return { ...p, centroids: routingCentroids(inputs.q!, inputs.k!, p) };
}

export const routing: Variant<RoutingParsed> = {
  name: 'routing',
  inputs: { q: 'required', k: 'required' },
  parse(inputs, options) {
    const problem = qkvProblem(inputs);
    const common = parseCommon(options, problem.D, problem.B, problem.Nk);
    const window = requiredNumber(options, 'window', { integer: true, min: 1 });
    if (options.centroids === undefined) {
      const fit = parseFit(options, problem.B * (problem.Nq + problem.Nk), 'options');
      return { problem, ...common, window, centroids: null, fit };
    }
    for (const fitOnly of ['clusters', 'iterations', 'seed']) {
      if (options[fitOnly] !== undefined) {
        throw new TypeError(`options.${fitOnly}: not used when options.centroids is given, expected undefined, received ${describe(options[fitOnly])}`);
      }
    }
    return { problem, ...common, window, centroids: givenCentroids(options.centroids, problem.H, problem.D), fit: null };
  },
  reference(inputs, p) {
    return routingAttention(inputs.q!, inputs.k!, inputs.v!, settings(inputs, p));
  },
  weights(inputs, p) {
    const { B, H, Nq, Nk } = p.problem;
    return { data: routingWeights(inputs.q!, inputs.k!, settings(inputs, p)), dims: [B, H, Nq, Nk] };
  },
};
