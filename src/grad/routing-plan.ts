/**
 * The SIMD backward pass of `routing` (SPEC "Gradients") as a plan
 * (assembly/grad/routing.ts): one job per (batch, kv head), which for each
 * query head that reads it routes again with the forward's own calls (the
 * same centroids, so the same members), counts each query's clusters, and
 * runs every cluster's softmax backward in cluster order, adding into dq,
 * dk and dv. Every sum runs in a fixed order inside one job, so the pool
 * gives the bits of one thread.
 */
import type { Runtime } from '../runtime/runtime.js';
import { scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import { headOffset, type Heads } from '../tensor.js';
import { kernelCentroids, routeBuffers, routeBytes, routeCalls, type RoutingParsed } from '../variants/routing.js';
import type { BackwardPlan, Gradients } from './backward.js';

/** The exports of assembly/grad/routing.ts (and slots.ts, full.ts). */
interface RoutingGradKernels {
  routingGradWorkBytes(wq: number, wk: number, D: number, Dv: number): number;
  slotGradBytes(P: number, D: number, Dv: number): number;
}

/** Multiply-adds per export call: V8 tiers a WebAssembly function up between calls, not within one. */
const CALL_WORK = 2 ** 24;

/** The backward plan of `routing`, or null for an empty problem (the reference runs). */
export function routingBackwardPlan(runtime: Runtime, q: Heads, k: Heads, v: Heads, gradOutput: Heads, p: RoutingParsed): BackwardPlan | null {
  const { B, H, N: Nq, D } = q;
  const { H: Hkv, N: Nk } = k;
  const Dv = v.D;
  if (B * H * Nq * Nk * D * Dv === 0) return null;
  const x = runtime.exports as unknown as RoutingGradKernels;
  const centroids = kernelCentroids(runtime, q, k, v, p);
  const { clusters: C, headStride } = centroids;
  const group = H / Hkv;
  const w = p.window;
  const wq = Math.min(w, Nq);
  const wk = Math.min(w, Nk);
  const clustersPerCall = Math.max(1, Math.floor(CALL_WORK / (wq * wk * 2 * (D + Dv))));
  const pad = p.keyPadding;
  const causal = p.causal ? 1 : 0;
  const lengths = [B * H * Nq * D, B * Hkv * Nk * D, B * Hkv * Nk * Dv];
  const starts = [0, lengths[0], lengths[0] + lengths[1]];
  const length = starts[2] + lengths[2];
  const buffers = routeBuffers(0);
  const [joined, work, ws] = [5, 6, 7].map(scratch);
  const plan: JobPlan = {
    what: 'routing backward',
    parts: [q.data, k.data, v.data, gradOutput.data, length * 4, pad ?? 0, centroids.data],
    output: 4,
    length,
    scratch: [...routeBytes(runtime.exports, Nq, Nk, D, C, w), Nq * 4, x.routingGradWorkBytes(wq, wk, D, Dv), x.slotGradBytes(wk, D, Dv)],
    jobs: ([qp, kp, vp, gp, out, padp, mu]) =>
      Array.from({ length: B * Hkv }, (_, bg): Job => {
        const [b, kvHead] = [Math.floor(bg / Hkv), bg % Hkv];
        const kHead = kp + headOffset(k, b, kvHead, Hkv) * 4;
        const vHead = vp + headOffset(v, b, kvHead, Hkv) * 4;
        const dk = out + (starts[1] + bg * Nk * D) * 4;
        const dv = out + (starts[2] + bg * Nk * Dv) * 4;
        const job: KernelCall[] = [['fullGradZero', dk, Nk * D], ['fullGradZero', dv, Nk * Dv]];
        for (let h = kvHead * group; h < (kvHead + 1) * group; h++) {
          const bh = b * H + h;
          const qHead = qp + bh * Nq * D * 4;
          const gHead = gp + bh * Nq * Dv * 4;
          const dq = out + (starts[0] + bh * Nq * D) * 4;
          const padHead = pad ? padp + b * Nk : 0;
          job.push(
            ['fullGradZero', dq, Nq * D],
            ...routeCalls(qHead, kHead, Nq, Nk, D, C, w, mu + h * headStride * 4, buffers),
            ['routingGradJoined', Nq, causal, Nk - Nq, padHead, buffers.qMembers, wq, buffers.kMembers, wk, C, joined],
          );
          for (let c = 0; c < C; c += clustersPerCall) {
            job.push([
              'routingGradClusters', qHead, gHead, kHead, vHead, Nq, D, Dv, p.scale, causal, Nk - Nq, padHead,
              buffers.qMembers, wq, buffers.kMembers, wk, joined, work, ws, dq, dk, dv, c, Math.min(C, c + clustersPerCall),
            ]);
          }
        }
        return job;
      }),
  };
  return {
    plan,
    split: (flat): Gradients => ({
      q: flat.subarray(0, starts[1]),
      k: flat.subarray(starts[1], starts[2]),
      v: flat.subarray(starts[2], length),
      params: {},
    }),
  };
}
