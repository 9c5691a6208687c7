/**
 * `routing`: the Routing Transformer (Roy et al. 2021). Each cluster takes
 * the w queries and the w keys closest (by cosine) to its centroid; member
 * queries attend member keys. Math: `src/reference/routing.ts`; SIMD kernel:
 * `assembly/variants/routing.ts` (similarity GEMM, streaming top-w
 * selection, the online-softmax engine over gathered members).
 */
import { fitCentroids, nearestCentroid, routingAttention, routingWeights, type RoutingCentroids, type RoutingSettings } from '../reference/routing.js';
import { Rng, seedOf } from '../prng.js';
import { declareOptions, rejectUndeclared } from '../options.js';
import { asHeads, asTensor, describe, headOffset, type Heads, type Tensor } from '../tensor.js';
import { asOptions, checkQKV, commonOptions, headParam, iterationCount, optionalNumber, parseCommon, requiredNumber, type Common, type CommonOptions, type Options } from '../validate.js';
import { qkvProblem } from './full.js';
import type { Inputs, Parsed, Variant } from './variant.js';
import type { Runtime } from '../runtime/runtime.js';
import type { Exports } from '../runtime/exports.js';
import { runJob, scratch, type Job, type JobPlan, type KernelCall, type ScratchRef } from '../runtime/jobs.js';

/** How `routing` fits its centroids when none are given (also `fitRoutingCentroids`'s options). */
export interface RoutingFitOptions {
  /** C >= 1 clusters, at most the number of rows clustered, `B (Nq + Nk)`. */
  clusters: number;
  /** Spherical k-means steps (integer from 0 to 1000); default 10. */
  iterations?: number;
  /** Integer seed of the `Rng` that picks the initial centroids among the rows. */
  seed: number;
}

/** The declaration of {@link RoutingFitOptions}, shared with `routing`'s own. */
export const routingFitOptions = declareOptions<RoutingFitOptions>()({
  clusters: { type: '`number`', doc: 'clusters C fitted by spherical k-means, with `seed`' },
  iterations: { type: '`number`', doc: 'k-means steps; default 10, at most 1000' },
  seed: { type: '`number`', doc: 'seed of the initial centroid picks' },
});

/**
 * Options of `routing`. Give the centroids either as `centroids` or as
 * `clusters`, `iterations` and `seed`: spherical k-means over each head's
 * normalised q and k rows, exactly as `fitRoutingCentroids` (fit once with
 * it and pass `centroids` to reuse them). `causal` hides future keys, but
 * cluster membership (top w over the whole sequence) is not causal: a
 * future token can change which past keys a query sees.
 */
export interface RoutingOptions extends CommonOptions, Partial<RoutingFitOptions> {
  /** w >= 1: how many queries, and separately how many keys, each cluster takes (all of them when fewer). */
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
  const iterations = optionalNumber(options, 'iterations', 10, iterationCount, prefix);
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
  return fitRoutingCentroidsOn(null, q, k, options);
}

/**
 * `fitRoutingCentroids` on a backend: with a `runtime`, the assignment steps
 * run on the SIMD GEMM (`fitCentroidsKernel`), with the same result bit for
 * bit; with `null`, the plain-JS reference.
 */
export function fitRoutingCentroidsOn(runtime: Runtime | null, q: Tensor, k: Tensor, options: RoutingFitOptions): Tensor {
  const qh = asHeads(q, 'q');
  const kh = asHeads(k, 'k');
  checkQKV(qh, kh, null);
  const checked = asOptions(options);
  rejectUndeclared(checked, routingFitOptions, 'fitRoutingCentroids', 'options');
  const fit = parseFit(checked, qh.B * (qh.N + kh.N), 'options');
  const data = runtime
    ? fitCentroidsKernel(runtime, qh, kh, fit.clusters, fit.iterations, fit.seed)
    : fitCentroids(qh, kh, fit.clusters, fit.iterations, fit.seed);
  return { data, dims: [qh.H, fit.clusters, qh.D] };
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

/** The kernel's exports (assembly/variants/routing.ts). */
interface RoutingKernels extends Exports {
  routingPrepareCentroids(mu: number, C: number, D: number, muT: number): void;
  routingRouteBytes(N: number, C: number, w: number): number;
  routingRouteStart(N: number, C: number, w: number, scratch: number): void;
  routingRouteRows(x: number, N: number, D: number, inv: number, muT: number, C: number, w: number, scratch: number, rowStart: number, rowEnd: number): void;
  routingRouteFinish(N: number, C: number, w: number, scratch: number, members: number, cStart: number, cEnd: number): void;
  routingWorkBytes(wk: number, D: number, Dv: number): number;
  routingSumBytes(Nq: number, Dv: number): number;
  routingStart(sums: number, Nq: number, Dv: number): void;
  routingAttend(
    q: number, k: number, v: number, Nq: number, Nk: number, D: number, Dv: number, scale: number, causal: number, keyPadding: number,
    qMembers: number, wq: number, kMembers: number, wk: number, work: number, sums: number, cStart: number, cEnd: number,
  ): void;
  routingFinish(sums: number, Nq: number, Dv: number, out: number): void;
  routingAssignBytes(C: number): number;
  routingAssign(points: number, D: number, muT: number, C: number, block: number, best: number, gap: number, rowStart: number, rowEnd: number): void;
  routingAccumulate(points: number, M: number, D: number, assigned: number, C: number, sums: number, members: number): void;
}

/** Milliseconds spent in each phase of `routingKernel`, summed over heads (for the benchmark). */
export interface RoutingPhases {
  /** Fitting the centroids (k-means), when they are not given. */
  fit: number;
  /** Similarities to the centroids and the top-w selections. */
  route: number;
  /** Attention of the members and the mean over clusters. */
  attend: number;
  /** The clock, in ms (default `performance.now`). */
  clock?: () => number;
}

/** Multiply-adds per export call: V8 tiers a WebAssembly function up between calls, not within one. */
const CALL_WORK = 2 ** 24;

/** `u / max(|u|, 1e-12)` of `count` rows of length D from `data[offset..]`, in float64 (as the reference). */
function unitRows(data: ArrayLike<number>, offset: number, count: number, D: number): Float64Array {
  const out = new Float64Array(count * D);
  for (let n = 0; n < count; n++) {
    let sq = 0;
    for (let d = 0; d < D; d++) sq += data[offset + n * D + d] ** 2;
    const inverse = 1 / Math.max(Math.sqrt(sq), 1e-12);
    for (let d = 0; d < D; d++) out[n * D + d] = data[offset + n * D + d] * inverse;
  }
  return out;
}

/** Where fitCentroidsInFrame works: pointers of one frame. */
interface FitBuffers {
  /** [M][D] float32 points (for the GEMM) and [M][D] float64 points (for the sums). */
  points: number;
  points64: number;
  /** [D][C] float32 centroids. */
  muT: number;
  /** routingAssignBytes(C). */
  block: number;
  /** [M] int32 best cluster, [M] float32 lead over the runner-up, [M] int32 assignment. */
  best: number;
  gap: number;
  assigned: number;
  /** [C][D] float64 sums and [C] int32 member counts. */
  sums: number;
  members: number;
  /** [H][C][D] float32: the fitted centroids. */
  out: number;
}

/** Bytes of the FitBuffers for M rows, C clusters, H heads, in this order. */
function fitParts(x: RoutingKernels, M: number, C: number, D: number, H: number): number[] {
  return [M * D * 4, M * D * 8, D * C * 4, x.routingAssignBytes(C), M * 4, M * 4, M * 4, C * D * 8, C * 4, H * C * D * 4];
}

/** FitBuffers from the frame's pointers. */
function fitBuffers([points, points64, muT, block, best, gap, assigned, sums, members, out]: number[]): FitBuffers {
  return { points, points64, muT, block, best, gap, assigned, sums, members, out };
}

/**
 * `fitCentroids` (src/reference/routing.ts) with its assignment steps, the
 * O(M C D) part, on the SIMD GEMM: the same seeded picks, the same float64
 * points, sums and centroids, and the same assignments. A float32 cosine of
 * unit vectors is within about (D + 2) 2^-24 of the exact one (rounding of
 * the inputs, the products and the sum), so a row whose best cluster leads
 * the runner-up by more than 2 (D + 4) 2^-24 keeps its float32 argmax; a row
 * with a smaller lead is settled in float64 exactly as the reference does.
 * The result, written to `buffers.out`, equals the reference's bit for bit.
 * Runs inside a frame; needs iterations >= 1.
 */
function fitCentroidsInFrame(runtime: Runtime, buffers: FitBuffers, q: Heads, k: Heads, C: number, iterations: number, seed: number): void {
  const { B, H, D } = q;
  const M = B * (q.N + k.N);
  const x = runtime.exports as unknown as RoutingKernels;
  const memory = runtime.arena.memory;
  const margin = 2 * (D + 4) * 2 ** -24;
  const rowsPerCall = 64 * Math.max(1, Math.floor(CALL_WORK / (64 * C * D)));
  const rng = new Rng(seed);
  for (let h = 0; h < H; h++) {
    const points = new Float64Array(M * D);
    for (let b = 0; b < B; b++) {
      const at = b * (q.N + k.N) * D;
      points.set(unitRows(q.data, (b * H + h) * q.N * D, q.N, D), at);
      points.set(unitRows(k.data, headOffset(k, b, h, H), k.N, D), at + q.N * D);
    }
    new Float32Array(memory.buffer, buffers.points, M * D).set(points);
    new Float64Array(memory.buffer, buffers.points64, M * D).set(points);

    const order = Int32Array.from({ length: M }, (_, n) => n);
    const centroids = new Float64Array(C * D);
    for (let t = 0; t < C; t++) {
      const pick = t + rng.int(M - t);
      [order[t], order[pick]] = [order[pick], order[t]];
      centroids.set(points.subarray(order[t] * D, (order[t] + 1) * D), t * D);
    }

    const assigned = new Int32Array(memory.buffer, buffers.assigned, M).fill(-1);
    for (let step = 0; step < iterations; step++) {
      const centroidsT = new Float32Array(memory.buffer, buffers.muT, D * C);
      for (let c = 0; c < C; c++) for (let d = 0; d < D; d++) centroidsT[d * C + c] = centroids[c * D + d];
      for (let start = 0; start < M; start += rowsPerCall) {
        x.routingAssign(buffers.points, D, buffers.muT, C, buffers.block, buffers.best, buffers.gap, start, Math.min(M, start + rowsPerCall));
      }
      const best32 = new Int32Array(memory.buffer, buffers.best, M);
      const gap32 = new Float32Array(memory.buffer, buffers.gap, M);
      let changed = false;
      for (let n = 0; n < M; n++) {
        // a near-tie is settled in float64, as the reference does
        const best = gap32[n] > margin ? best32[n] : nearestCentroid(points, n, centroids, C, D);
        if (assigned[n] !== best) changed = true;
        assigned[n] = best;
      }
      if (!changed) break;
      x.routingAccumulate(buffers.points64, M, D, buffers.assigned, C, buffers.sums, buffers.members);
      const sums = new Float64Array(memory.buffer, buffers.sums, C * D);
      const members = new Int32Array(memory.buffer, buffers.members, C);
      for (let c = 0; c < C; c++) {
        if (members[c] > 0) centroids.set(unitRows(sums, c * D, 1, D), c * D);
      }
    }
    new Float32Array(memory.buffer, buffers.out + h * C * D * 4, C * D).set(centroids);
  }
}

/**
 * `fitRoutingCentroids` on the WebAssembly backend: `[H, C, D]` centroids,
 * bit for bit those of the reference `fitCentroids`, with the assignment
 * steps on the SIMD GEMM (about 10x faster).
 */
export function fitCentroidsKernel(runtime: Runtime, q: Heads, k: Heads, clusters: number, iterations: number, seed: number): Float32Array {
  const { B, H, D } = q;
  const M = B * (q.N + k.N);
  if (iterations === 0 || M === 0 || H === 0) return fitCentroids(q, k, clusters, iterations, seed);
  const x = runtime.exports as unknown as RoutingKernels;
  return runtime.call('routing centroids', fitParts(x, M, clusters, D, H), 9, H * clusters * D, (pointers) => {
    fitCentroidsInFrame(runtime, fitBuffers(pointers), q, k, clusters, iterations, seed);
  });
}

/**
 * The centroids the kernel routes by: the given ones, or those fitted to q
 * and k (fitCentroidsKernel, bit for bit the reference's; with no step, the
 * reference's seeded picks).
 */
export function kernelCentroids(runtime: Runtime, q: Heads, k: Heads, v: Heads, p: RoutingParsed): RoutingCentroids {
  if (p.centroids) return p.centroids;
  const { clusters, iterations, seed } = p.fit!;
  // no output: nothing to fit for
  if (q.B * q.H * q.N * v.D === 0) return { data: new Float32Array(0), headStride: 0, clusters };
  // fitting with no step keeps the seeded picks: the reference is as fast
  if (iterations === 0) return routingCentroids(q, k, p);
  return { data: fitCentroidsKernel(runtime, q, k, clusters, iterations, seed), headStride: clusters * q.D, clusters };
}

/** The scratch buffers routing one head needs (centroids, norms, selection, the members of either side), from scratch index `first` on. */
export interface RouteBuffers {
  readonly muT: ScratchRef;
  readonly inv: ScratchRef;
  readonly route: ScratchRef;
  /** [C][min(w, Nq)] and [C][min(w, Nk)] i32: each cluster's members, in increasing order. */
  readonly qMembers: ScratchRef;
  readonly kMembers: ScratchRef;
}

export function routeBuffers(first: number): RouteBuffers {
  const [muT, inv, route, qMembers, kMembers] = [0, 1, 2, 3, 4].map((i) => scratch(first + i));
  return { muT, inv, route, qMembers, kMembers };
}

/** Bytes of the {@link RouteBuffers}, in their order. */
export function routeBytes(x: Exports, Nq: number, Nk: number, D: number, C: number, w: number): number[] {
  const k = x as RoutingKernels;
  return [C * D * 4, Math.max(Nq, Nk) * 4, Math.max(k.routingRouteBytes(Nq, C, w), k.routingRouteBytes(Nk, C, w)), C * Math.min(w, Nq) * 4, C * Math.min(w, Nk) * 4];
}

/**
 * The calls that route one head (shared with the backward pass, so that both
 * see the same members): prepare its centroids (at `mu`), then for its
 * queries and its keys the similarities and every cluster's top w.
 */
export function routeCalls(qHead: number, kHead: number, Nq: number, Nk: number, D: number, C: number, w: number, mu: number, b: RouteBuffers): KernelCall[] {
  const rowsPerCall = 64 * Math.max(1, Math.floor(CALL_WORK / (64 * C * D)));
  const job: KernelCall[] = [['routingPrepareCentroids', mu, C, D, b.muT]];
  for (const [side, N, members] of [[qHead, Nq, b.qMembers], [kHead, Nk, b.kMembers]] as const) {
    job.push(['inverseNorms', side, N, D, b.inv], ['routingRouteStart', N, C, w, b.route]);
    for (let start = 0; start < N; start += rowsPerCall) job.push(['routingRouteRows', side, N, D, b.inv, b.muT, C, w, b.route, start, Math.min(N, start + rowsPerCall)]);
    job.push(['routingRouteFinish', N, C, w, b.route, members, 0, C]);
  }
  return job;
}

/**
 * The SIMD kernel of `routing` as a plan, given the centroids: q
 * `[B, H, Nq, D]`, k `[B, H, Nk, D]`, v `[B, H, Nk, Dv]`. One job per batch
 * and head, which prepares the head's centroids, routes its queries and keys
 * and attends, in its thread's scratch. (A head is not split: each query
 * sums its clusters' outputs in cluster order.)
 */
export function routingPlan(runtime: Runtime, q: Heads, k: Heads, v: Heads, p: RoutingParsed, centroids: RoutingCentroids): JobPlan {
  const { B, H, N: Nq, D } = q;
  const Nk = k.N;
  const Dv = v.D;
  const outLength = B * H * Nq * Dv;
  const x = runtime.exports as unknown as RoutingKernels;
  const { clusters: C, headStride } = centroids;
  const w = p.window;
  const wq = Math.min(w, Nq);
  const wk = Math.min(w, Nk);
  const clustersPerCall = Math.max(1, Math.floor(CALL_WORK / (wq * wk * (D + Dv))));
  const pad = p.keyPadding;
  const scale = p.scale;
  const causal = p.causal ? 1 : 0;
  const [work, sums] = [5, 6].map(scratch);
  const buffers = routeBuffers(0);
  return {
    what: 'routing',
    parts: [q.data, k.data, v.data, outLength * 4, pad ?? 0, centroids.data],
    output: 3,
    length: outLength,
    scratch: [...routeBytes(x, Nq, Nk, D, C, w), x.routingWorkBytes(wk, D, Dv), x.routingSumBytes(Nq, Dv)],
    jobs: ([qp, kp, vp, out, padp, mu]) => {
      if (outLength === 0) return [];
      return Array.from({ length: B * H }, (_, bh): Job => {
        const b = Math.floor(bh / H);
        const h = bh % H;
        const qHead = qp + bh * Nq * D * 4;
        // the kv head that query head h reads (grouped-query attention: shared, in place)
        const kHead = kp + headOffset(k, b, h, H) * 4;
        const job = routeCalls(qHead, kHead, Nq, Nk, D, C, w, mu + h * headStride * 4, buffers);
        job.push(['routingStart', sums, Nq, Dv]);
        for (let c = 0; c < C; c += clustersPerCall) {
          job.push([
            'routingAttend', qHead, kHead, vp + headOffset(v, b, h, H) * 4, Nq, Nk, D, Dv, scale, causal, pad ? padp + b * Nk : 0,
            buffers.qMembers, wq, buffers.kMembers, wk, work, sums, c, Math.min(C, c + clustersPerCall),
          ]);
        }
        job.push(['routingFinish', sums, Nq, Dv, out + bh * Nq * Dv * 4]);
        return job;
      });
    },
  };
}

/** Calls of the routing phase (the rest is attention). */
const ROUTE_CALLS = new Set(['routingPrepareCentroids', 'inverseNorms', 'routingRouteStart', 'routingRouteRows', 'routingRouteFinish']);

/**
 * The SIMD kernel of `routing`: the centroids (fitted first when not
 * given), then {@link routingPlan} on this thread; `phases`, when given,
 * accumulates the time per phase (the same calls, timed one by one).
 */
export function routingKernel(runtime: Runtime, q: Heads, k: Heads, v: Heads, p: RoutingParsed, phases?: RoutingPhases): Float32Array {
  if (!phases) return runtime.execute(routingPlan(runtime, q, k, v, p, kernelCentroids(runtime, q, k, v, p)));
  const clock = phases.clock ?? (() => performance.now());
  const t0 = clock();
  const centroids = kernelCentroids(runtime, q, k, v, p);
  phases.fit += clock() - t0;
  const plan = routingPlan(runtime, q, k, v, p, centroids);
  return runtime.arena.frame([...plan.parts, ...plan.scratch], plan.what, (pointers) => {
    const scratchPointers = pointers.slice(plan.parts.length);
    for (const job of plan.jobs(pointers)) {
      for (const call of job) {
        const t1 = clock();
        runJob(runtime.exports, [call], scratchPointers);
        phases[ROUTE_CALLS.has(call[0]) ? 'route' : 'attend'] += clock() - t1;
      }
    }
    return runtime.arena.readF32(pointers[plan.output], plan.length);
  });
}

export const routing: Variant<RoutingParsed> = {
  name: 'routing',
  inputs: { q: 'required', k: 'required' },
  options: declareOptions<RoutingOptions>()({
    ...commonOptions,
    window: { type: '`number`', doc: 'members w per cluster (queries and, separately, keys)' },
    centroids: { type: '`Tensor`', doc: '`[H|1, C, D]` cluster centroids (or `clusters`, `iterations`, `seed`)' },
    ...routingFitOptions,
  }),
  parse(inputs, options) {
    const problem = qkvProblem(inputs);
    const common = parseCommon(options, problem.D, problem.B, problem.Nk);
    // a cluster takes every query and every key once w reaches their count: the same as w = max(Nq, Nk)
    const window = Math.min(requiredNumber(options, 'window', { integer: true, min: 1 }), Math.max(1, problem.Nq, problem.Nk));
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
  plan(runtime, { q, k, v }, p) {
    return routingPlan(runtime, q!, k!, v!, p, kernelCentroids(runtime, q!, k!, v!, p));
  },
  kernel(runtime, { q, k, v }, p) {
    return routingKernel(runtime, q!, k!, v!, p);
  },
};
