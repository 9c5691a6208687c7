/**
 * `linformer` — Linformer (Wang et al. 2020, "Linformer: Self-Attention with
 * Linear Complexity"): keys and values are projected along the sequence axis
 * to P rows, `K' = e · k`, `V' = f · v`, then every query attends the P
 * projected rows with exact softmax attention.
 */
import { linformerAttention, linformerWeights, type LinformerMath } from '../reference/linformer.js';
import { Rng, seedOf } from '../prng.js';
import { declareOptions } from '../options.js';
import { asTensor, headOffset, type Heads, type Tensor } from '../tensor.js';
import { commonOptions, drawSizes, headParam, parseCommon, rejectCausal, type CommonOptions } from '../validate.js';
import { qkvProblem } from './full.js';
import type { Parsed, Variant } from './variant.js';
import { forRowChunks, type Runtime } from '../runtime/runtime.js';
import type { Exports } from '../runtime/exports.js';
import { scratch, type Arg, type JobPlan, type KernelCall } from '../runtime/jobs.js';

/** The exports of assembly/variants/linformer.ts. */
interface LinformerKernels extends Exports {
  /** masked = x with the rows that keyPadding (u8 [N]) marks as padding zeroed. */
  linformerZeroPadded(x: number, N: number, Dx: number, keyPadding: number, masked: number): void;
  /** Rows [rowStart, rowEnd) of xp [P][Dx] = proj [P][N] · x [N][Dx]. */
  linformerProject(proj: number, x: number, N: number, Dx: number, xp: number, rowStart: number, rowEnd: number): void;
}

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
  options: declareOptions<LinformerOptions>()({
    ...commonOptions,
    e: { type: '`Tensor`', doc: '`[H|1, P, Nk]` key projection, `K\' = e k`' },
    f: { type: '`Tensor`', doc: '`[H|1, P, Nk]` value projection, `V\' = f v`; default `e`' },
  }),
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
  plan(runtime, { q, k, v }, p) {
    return linformerPlan(runtime, q!, k!, v!, p);
  },
  kernel(runtime, { q, k, v }, p) {
    return runtime.execute(linformerPlan(runtime, q!, k!, v!, p));
  },
};

/**
 * The SIMD kernel as a plan of one job per batch and query head: K' = e k and
 * V' = f v by the core GEMM (padded rows zeroed first) into the thread's
 * scratch, then the flash engine over the P projected rows. A head is not
 * split further: its projections cost about as much as its attention. The
 * projections are per query head (e and f have H heads or 1), so under
 * grouped-query attention each query head projects its shared kv head itself.
 */
function linformerPlan(runtime: Runtime, q: Heads, k: Heads, v: Heads, p: LinformerParsed): JobPlan {
  const { B, H, Nq, Nk, D, Dv } = p.problem;
  const { P, e, f } = p;
  const x = runtime.exports as unknown as LinformerKernels;
  const pad = p.keyPadding;
  const sameProjection = f.data === e.data && f.headStride === e.headStride;
  const outLength = B * H * Nq * Dv;
  // each thread's own buffers
  const [kProj, vProj, pack, tiles, masked] = [0, 1, 2, 3, 4].map(scratch);
  return {
    what: 'linformer',
    parts: [q.data, k.data, v.data, e.data, sameProjection ? 0 : f.data, outLength * 4, pad ?? 0],
    output: 5,
    length: outLength,
    scratch: [P * D * 4, P * Dv * 4, x.packBytes(P, D, Dv), x.groupBytes(D, Dv), pad ? Nk * Math.max(D, Dv) * 4 : 0],
    jobs: ([qp, kp, vp, ep, fOwn, out, padp]) => {
      const fp = sameProjection ? ep : fOwn;
      // one projection: padded rows zeroed first, then chunks of projected rows
      const project = (job: KernelCall[], proj: number, src: number, Dx: number, dst: Arg, b: number) => {
        let from: Arg = src;
        if (pad) {
          job.push(['linformerZeroPadded', src, Nk, Dx, padp + b * Nk, masked]);
          from = masked;
        }
        forRowChunks(P, Nk, Dx, (start, end) => job.push(['linformerProject', proj, from, Nk, Dx, dst, start, end]));
      };
      return Array.from({ length: B * H }, (_, bh) => {
        const b = Math.floor(bh / H);
        const h = bh % H;
        const job: KernelCall[] = [];
        // query head h's projections of the kv head it reads (grouped-query attention: shared, in place)
        project(job, ep + h * e.headStride * 4, kp + headOffset(k, b, h, H) * 4, D, kProj, b);
        project(job, fp + h * f.headStride * 4, vp + headOffset(v, b, h, H) * 4, Dv, vProj, b);
        // every projected row is visible: no key padding, not causal
        job.push(['packHead', kProj, vProj, P, D, Dv, D, Dv, 0, pack]);
        const qHead = qp + bh * Nq * D * 4;
        const outHead = out + bh * Nq * Dv * 4;
        forRowChunks(Nq, P, D + Dv, (start, end) => job.push(['fullAttentionRows', qHead, outHead, Nq, P, D, Dv, D, Dv, p.scale, 0, 0, pack, tiles, start, end]));
        return job;
      });
    },
  };
}

/**
 * A seeded Linformer projection `[P, N]` for `options.e` / `options.f`:
 * standard normals from the library's `Rng(seed)`, drawn in row-major order
 * (row 0's N values first), scaled by `1 / sqrt(P)` as in the paper's
 * `N(0, 1/P)` initialisation.
 */
export function linformerProjection(P: number, N: number, seed: number): Tensor {
  const [rows, columns] = drawSizes({ P, N }, 'linformerProjection', ([p, n]) => p * n);
  const rng = new Rng(seedOf(seed, 'linformerProjection.seed'));
  const data = new Float32Array(rows * columns);
  const scale = 1 / Math.sqrt(rows);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() * scale;
  return { data, dims: [rows, columns] };
}
