/**
 * The SIMD backward pass of `sinkhorn` (SPEC "Gradients") as a plan
 * (assembly/grad/sinkhorn.ts), its output dq, dk, dv then the given sort
 * logits' gradient (laid out as their data):
 *
 * - one job per (batch, query head), as the forward's: S (keeping log S and
 *   the balancing's record), the sorted blocks, then back: each query
 *   block's softmax over its 2b keys, the sorted blocks back to k, v and
 *   dS, dS back through the balancing to the logits, and into the given
 *   logits' partial or the block sums of q and k;
 * - a stage that sums the partials in a fixed order: dk and dv of a kv head
 *   over its query heads (only with grouped-query heads; else each job
 *   writes its own), the sort logits' over the batches and heads that read
 *   them; so the pool gives the bits of one thread.
 */
import type { Runtime } from '../runtime/runtime.js';
import { sideBySide, scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import { headOffset, type Heads } from '../tensor.js';
import { forRanges, type SinkhornParsed } from '../variants/sinkhorn.js';
import type { Inputs } from '../variants/variant.js';
import type { BackwardPlan, GradParams } from './backward.js';

/** The exports of assembly/grad/sinkhorn.ts, the forward's and the shared ones it calls. */
interface SinkhornGradKernels {
  sinkhornScratchBytes(N: number, b: number, D: number): number;
  sinkhornStripBytes(N: number, b: number): number;
  sinkhornStripWidth(): number;
  sinkhornGradWorkBytes(N: number, b: number, D: number, iterations: number): number;
  sinkhornGradBlockBytes(b: number, D: number, Dv: number): number;
  sinkhornGradStripBytes(N: number, b: number): number;
  slotGradBytes(P: number, D: number, Dv: number): number;
}

export function sinkhornBackwardPlan(runtime: Runtime, { q, k, v }: Inputs, p: SinkhornParsed, gradOutput: Heads): BackwardPlan {
  const x = runtime.exports as unknown as SinkhornGradKernels;
  const { B, H, Hkv, Nq: N, D, Dv } = p.problem;
  const b = p.blockSize;
  const nb = N / b;
  const group = H / Hkv;
  const logits = p.sortLogits;
  const causal = p.causal ? 1 : 0;
  const pad = p.keyPadding;
  const lengths = [B * H * N * D, B * Hkv * N * D, B * Hkv * N * Dv, logits ? logits.data.length : 0];
  const starts = sideBySide(lengths);
  const length = starts[3] + lengths[3];
  // with grouped-query heads, each query head's dk and dv are partials
  const partials = group > 1;
  const stripWidth = x.sinkhornStripWidth();
  const [work, strip, ks, vs, dks, dvs, xT, sortWork, ws, block] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(scratch);
  const plan: JobPlan = {
    what: 'sinkhorn backward',
    parts: [
      q!.data, k!.data, v!.data, gradOutput.data, length * 4, pad ?? 0, logits?.data ?? 0,
      partials ? B * H * N * D * 4 : 0, partials ? B * H * N * Dv * 4 : 0, logits ? B * H * nb * nb * 4 : 0,
    ],
    output: 4,
    length,
    scratch: [
      x.sinkhornScratchBytes(N, b, D), x.sinkhornStripBytes(N, b), N * D * 4, N * Dv * 4, N * D * 4, N * Dv * 4,
      x.sinkhornGradStripBytes(N, b), x.sinkhornGradWorkBytes(N, b, D, p.iterations),
      x.slotGradBytes(2 * b, D, Dv), x.sinkhornGradBlockBytes(b, D, Dv),
    ],
    jobs: ([qp, kp, vp, gp, out, padp, logitsp, dkParts, dvParts, dLogitParts]) =>
      Array.from({ length: B * H }, (_, bh): Job => {
        const batch = Math.floor(bh / H);
        const head = bh % H;
        const kvHead = Math.floor(head / group);
        const qHead = qp + bh * N * D * 4;
        // the kv head that query head h reads (grouped-query attention: shared, in place)
        const kHead = kp + headOffset(k!, batch, head, H) * 4;
        const vHead = vp + headOffset(v!, batch, head, H) * 4;
        const dq = out + (starts[0] + bh * N * D) * 4;
        const dk = partials ? dkParts + bh * N * D * 4 : out + (starts[1] + (batch * Hkv + kvHead) * N * D) * 4;
        const dv = partials ? dvParts + bh * N * Dv * 4 : out + (starts[2] + (batch * Hkv + kvHead) * N * Dv) * 4;
        const given = logits ? logitsp + (batch * logits.batchStride + head * logits.headStride) * 4 : 0;
        const job: KernelCall[] = [['sinkhornGradSortMatrix', qHead, kHead, N, b, D, p.scale, p.temperature, p.iterations, causal, given, work, sortWork]];
        // the sorted blocks as the forward makes them: whole strips of columns per call
        forRanges(b * D, nb * nb, stripWidth, (c0, c1) => job.push(['sinkhornSortColumns', kHead, D, N, b, causal, work, strip, ks, c0, c1]));
        forRanges(b * Dv, nb * nb, stripWidth, (c0, c1) => job.push(['sinkhornSortColumns', vHead, Dv, N, b, causal, work, strip, vs, c0, c1]));
        forRanges(nb, 6 * b * b * (D + Dv), 1, (u0, u1) =>
          job.push([
            'sinkhornGradBlocks', qHead, gp + bh * N * Dv * 4, kHead, vHead, ks, vs, N, b, D, Dv, p.scale, causal,
            pad ? padp + batch * N : 0, work, ws, block, dq, dks, dvs, dk, dv, u0, u1,
          ]),
        );
        job.push(['sinkhornGradUnsort', kHead, D, N, b, work, dks, strip, xT, sortWork, dk]);
        job.push(['sinkhornGradUnsort', vHead, Dv, N, b, work, dvs, strip, xT, sortWork, dv]);
        job.push(['sinkhornGradSortBack', N, b, p.iterations, causal, work, sortWork]);
        if (logits) job.push(['sinkhornGradLogits', N, b, p.temperature, sortWork, dLogitParts + bh * nb * nb * 4]);
        else job.push(['sinkhornGradSummaries', N, b, D, p.scale, p.temperature, p.iterations, causal, work, sortWork, dq, dk]);
        return job;
      }),
    stages: [
      ([, , , , out, , , dkParts, dvParts, dLogitParts]) => {
        const jobs: Job[] = [];
        // out rows = the sum of `count` partials `stride` floats apart from `from`, in order
        const sum = (from: number, count: number, stride: number, floats: number, to: number): Job => [
          ['synthesizerGradSum', from, count, stride, 1, floats, floats, to, floats, floats],
        ];
        if (partials) {
          for (let bg = 0; bg < B * Hkv; bg++) {
            const first = Math.floor(bg / Hkv) * H + (bg % Hkv) * group;
            jobs.push(sum(dkParts + first * N * D * 4, group, N * D, N * D, out + (starts[1] + bg * N * D) * 4));
            jobs.push(sum(dvParts + first * N * Dv * 4, group, N * Dv, N * Dv, out + (starts[2] + bg * N * Dv) * 4));
          }
        }
        if (logits) {
          // a slice of the given logits: the (batch, head) partials that read it, batches then heads
          const batches = logits.batchStride === 0 ? 1 : B;
          const heads = logits.headStride === 0 ? 1 : H;
          const floats = nb * nb;
          for (let slice = 0; slice < batches * heads; slice++) {
            const [sb, sh] = [Math.floor(slice / heads), slice % heads];
            const to = out + (starts[3] + slice * floats) * 4;
            if (batches === B && heads === H) jobs.push(sum(dLogitParts + slice * floats * 4, 1, floats, floats, to));
            else if (heads === H) jobs.push(sum(dLogitParts + sh * floats * 4, B, H * floats, floats, to));
            else if (batches === B) jobs.push(sum(dLogitParts + sb * H * floats * 4, H, floats, floats, to));
            else jobs.push(sum(dLogitParts, B * H, floats, floats, to));
          }
        }
        return jobs;
      },
    ],
  };
  return {
    plan,
    split: (flat) => {
      let params: GradParams = {};
      if (logits) {
        const heads = logits.headStride === 0 ? 1 : H;
        params = { sortLogits: { data: flat.subarray(starts[3], length), dims: [lengths[3] / Math.max(1, heads * nb * nb), heads, nb, nb] } };
      }
      return { q: flat.subarray(0, starts[1]), k: flat.subarray(starts[1], starts[2]), v: flat.subarray(starts[2], starts[3]), params };
    },
  };
}
