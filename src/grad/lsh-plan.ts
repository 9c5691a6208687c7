/**
 * The SIMD backward pass of `lsh` (SPEC "Gradients") as a plan
 * (assembly/grad/lsh.ts): one job per (batch, head), which runs the
 * forward's own calls up to its merge state (the same rotations, buckets and
 * chunks), takes each row's softmax statistics over all rounds and delta from them,
 * then every chunk of the cyclic list in order, and finally the key role
 * through the normalisation. Every sum runs in a fixed order inside one
 * job, so the pool gives the bits of one thread.
 */
import type { Runtime } from '../runtime/runtime.js';
import { scratch, type Job, type JobPlan } from '../runtime/jobs.js';
import type { Heads } from '../tensor.js';
import { lshBufferBytes, lshBuffers, lshHeadCalls, type LshParsed } from '../variants/lsh.js';
import type { BackwardPlan, Gradients } from './backward.js';

/** The exports of assembly/grad/lsh.ts. */
interface LshGradKernels {
  lshGradWorkBytes(c: number, N: number, D: number, Dv: number): number;
}

/** Multiply-adds per export call: V8 tiers a WebAssembly function up between calls, not within one. */
const CALL_WORK = 2 ** 24;

/** The backward plan of `lsh` (x: the shared queries and keys), or null for an empty problem (the reference runs). */
export function lshBackwardPlan(runtime: Runtime, x: Heads, v: Heads, gradOutput: Heads, p: LshParsed): BackwardPlan | null {
  const { B, H, N, D } = x;
  const Dv = v.D;
  if (B * H * N * D * Dv === 0) return null;
  const k = runtime.exports as unknown as LshGradKernels;
  const c = p.bucketSize;
  const chunkCount = p.rotations.rounds * Math.ceil(N / c);
  const cEff = Math.min(c, N);
  const chunksPerCall = Math.max(1, Math.floor(CALL_WORK / (2 * cEff * cEff * (3 * D + 2 * Dv))));
  const lengths = [B * H * N * D, B * H * N * Dv];
  const length = lengths[0] + lengths[1];
  const buffers = lshBuffers(0);
  const [rowStats, delta, dUnit, work] = [7, 8, 9, 10].map(scratch);
  const pad = p.keyPadding;
  const plan: JobPlan = {
    what: 'lsh backward',
    parts: [x.data, v.data, gradOutput.data, p.rotations.data, length * 4, pad ?? 0],
    output: 4,
    length,
    scratch: [...lshBufferBytes(runtime.exports, N, D, Dv, p), N * 8, N * 4, N * D * 4, k.lshGradWorkBytes(c, N, D, Dv)],
    jobs: ([xp, vp, gp, rotp, out, padp]) =>
      Array.from({ length: B * H }, (_, bh): Job => {
        const [b, h] = [Math.floor(bh / H), bh % H];
        const [xHead, vHead, gHead] = [xp + bh * N * D * 4, vp + bh * N * Dv * 4, gp + bh * N * Dv * 4];
        const padHead = pad ? padp + b * N : 0;
        const dx = out + bh * N * D * 4;
        const dv = out + (lengths[0] + bh * N * Dv) * 4;
        const job = lshHeadCalls(xHead, vHead, padHead, rotp + h * p.rotations.headStride * 4, N, D, Dv, p, buffers);
        job.push(['lshGradStats', buffers.acc, N, Dv, gHead, rowStats, delta], ['lshGradStart', N, D, Dv, dx, dUnit, dv]);
        for (let start = 0; start < chunkCount; start += chunksPerCall) {
          job.push([
            'lshGradChunks', xHead, vHead, gHead, N, D, Dv, p.scale, p.causal ? 1 : 0, padHead, buffers.inv, buffers.sorted,
            p.rotations.rounds, c, rowStats, delta, work, dx, dUnit, dv, start, Math.min(chunkCount, start + chunksPerCall),
          ]);
        }
        job.push(['lshGradKeys', xHead, N, D, buffers.inv, dUnit, dx]);
        return job;
      }),
  };
  return {
    plan,
    split: (flat): Gradients => ({ q: flat.subarray(0, lengths[0]), k: null, v: flat.subarray(lengths[0], length), params: {} }),
  };
}
