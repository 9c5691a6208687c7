/**
 * The SIMD backward pass of `linformer` (SPEC "Gradients") as a plan of two
 * stages (assembly/grad/linformer.ts): per (batch, query head), the
 * projections K' = e k, V' = f v (the forward's kernels) and the softmax
 * backward over their P rows, giving dq and dK', dV'; then, independently,
 * dk and dv per (batch, kv head), `e`'s gradient per head of e and f's per
 * head of f, each summing its terms in a fixed order (so the pool gives the
 * same bits).
 */
import { forRowChunks, type Runtime } from '../runtime/runtime.js';
import { sideBySide, scratch, type Arg, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import { headOffset, type Heads } from '../tensor.js';
import type { LinformerParsed } from '../variants/linformer.js';
import type { Inputs } from '../variants/variant.js';
import type { BackwardPlan, GradParams } from './backward.js';

/** The exports of assembly/grad/linformer.ts and slots.ts, and the forward's projection kernels. */
interface LinformerGradKernels {
  linformerZeroPadded(x: number, N: number, Dx: number, keyPadding: number, masked: number): void;
  linformerProject(proj: number, x: number, N: number, Dx: number, xp: number, rowStart: number, rowEnd: number): void;
  slotGradBytes(P: number, D: number, Dv: number): number;
  slotGradBlock(): number;
  slotGradStart(kRows: number, vRows: number, P: number, D: number, Dv: number, ws: number, dK: number, dV: number): void;
  slotSoftmaxBackward(q: number, g: number, D: number, Dv: number, P: number, scale: number, kRows: number, ws: number, dq: number, dK: number, dV: number, i0: number, i1: number, first: number, real: number, visible: number): void;
  linformerGradSpread(proj: number, dXp: number, N: number, Dx: number, P: number, pad: number, dx: number, accumulate: number, j0: number, j1: number): void;
  linformerGradProjection(dXp: number, x: number, N: number, Dx: number, P: number, pad: number, xT: number, dProj: number, accumulate: number): void;
}

export function linformerBackwardPlan(runtime: Runtime, { q, k, v }: Inputs, p: LinformerParsed, gradOutput: Heads): BackwardPlan {
  const x = runtime.exports as unknown as LinformerGradKernels;
  const { B, H, Hkv, Nq, Nk, D, Dv } = p.problem;
  const { P, e, f } = p;
  const pad = p.keyPadding;
  const shared = f === e; // f not given: e serves both, and its gradient sums both uses
  const eHeads = e.headStride === 0 ? 1 : H;
  const fHeads = f.headStride === 0 ? 1 : H;
  const lengths = [B * H * Nq * D, B * Hkv * Nk * D, B * Hkv * Nk * Dv, eHeads * P * Nk, shared ? 0 : fHeads * P * Nk];
  const starts = sideBySide(lengths);
  const length = starts[4] + lengths[4];
  const group = H / Hkv;
  const block = x.slotGradBlock();
  // whole blocks of about 16M multiply-adds per call (V8 tiers a function up between calls)
  const rowsPerCall = block * Math.max(1, Math.floor(2 ** 24 / (P * 2 * (D + Dv) * block)));
  const [kProj, vProj, ws, masked] = [0, 1, 2, 3].map(scratch);
  // stage 2: an input head transposed
  const xT = scratch(4);
  const plan: JobPlan = {
    what: 'linformer backward',
    parts: [q!.data, k!.data, v!.data, gradOutput.data, e.data, shared ? 0 : f.data, length * 4, B * H * P * D * 4, B * H * P * Dv * 4, pad ?? 0],
    output: 6,
    length,
    scratch: [P * D * 4, P * Dv * 4, x.slotGradBytes(P, D, Dv), pad ? Nk * Math.max(D, Dv) * 4 : 0, Nk * Math.max(D, Dv) * 4],
    jobs: ([qp, kp, vp, gp, ep, fOwn, out, dKp, dVp, padp]) => {
      const fp = shared ? ep : fOwn;
      // as the forward: padded rows zeroed first, then the projected rows in chunks
      const project = (job: KernelCall[], proj: number, src: number, Dx: number, dst: Arg, b: number) => {
        let from: Arg = src;
        if (pad) {
          job.push(['linformerZeroPadded', src, Nk, Dx, padp + b * Nk, masked]);
          from = masked;
        }
        forRowChunks(P, Nk, Dx, (start, end) => job.push(['linformerProject', proj, from, Nk, Dx, dst, start, end]));
      };
      return Array.from({ length: B * H }, (_, bh): Job => {
        const b = Math.floor(bh / H);
        const h = bh % H;
        const job: KernelCall[] = [];
        project(job, ep + h * e.headStride * 4, kp + headOffset(k!, b, h, H) * 4, D, kProj, b);
        project(job, fp + h * f.headStride * 4, vp + headOffset(v!, b, h, H) * 4, Dv, vProj, b);
        const dK = dKp + bh * P * D * 4;
        const dV = dVp + bh * P * Dv * 4;
        job.push(['slotGradStart', kProj, vProj, P, D, Dv, ws, dK, dV]);
        for (let i0 = 0; i0 < Nq; i0 += rowsPerCall) {
          // every projected row visible
          job.push(['slotSoftmaxBackward', qp + bh * Nq * D * 4, gp + bh * Nq * Dv * 4, D, Dv, P, p.scale, kProj, ws, out + bh * Nq * D * 4, dK, dV, i0, Math.min(Nq, i0 + rowsPerCall), 0, 0, 0]);
        }
        return job;
      });
    },
    stages: [
      ([, kp, vp, , ep, fOwn, out, dKp, dVp, padp]) => {
        const fp = shared ? ep : fOwn;
        const jobs: Job[] = [];
        const padOf = (b: number) => (pad ? padp + b * Nk : 0);
        // dk, dv of each (batch, kv head): its query heads' terms in head order
        for (const [proj, param, dXp, Dx, start] of [[ep, e, dKp, D, starts[1]], [fp, f, dVp, Dv, starts[2]]] as const) {
          for (let bg = 0; bg < B * Hkv; bg++) {
            const b = Math.floor(bg / Hkv);
            const kvHead = bg % Hkv;
            const dx = out + (start + bg * Nk * Dx) * 4;
            const job: KernelCall[] = [];
            for (let h = kvHead * group; h < (kvHead + 1) * group; h++) {
              const from = dXp + (b * H + h) * P * Dx * 4;
              forRowChunks(Nk, P, Dx, (j0, j1) => job.push(['linformerGradSpread', proj + h * param.headStride * 4, from, Nk, Dx, P, padOf(b), dx, h === kvHead * group ? 0 : 1, j0, j1]));
            }
            jobs.push(job);
          }
        }
        // each head of e (and f): the terms of every batch and query head that reads it, in order
        const projectionJobs = (heads: number, start: number, uses: readonly (readonly [number, Heads, number])[]) => {
          for (let ph = 0; ph < heads; ph++) {
            const job: KernelCall[] = [];
            for (let b = 0; b < B; b++) {
              for (let h = heads === 1 ? 0 : ph; h < (heads === 1 ? H : ph + 1); h++) {
                for (const [dXp, input, Dx] of uses) {
                  const src = (input === k ? kp : vp) + headOffset(input, b, h, H) * 4;
                  job.push(['linformerGradProjection', dXp + (b * H + h) * P * Dx * 4, src, Nk, Dx, P, padOf(b), xT, out + (start + ph * P * Nk) * 4, job.length === 0 ? 0 : 1]);
                }
              }
            }
            jobs.push(job);
          }
        };
        projectionJobs(eHeads, starts[3], shared ? [[dKp, k!, D], [dVp, v!, Dv]] : [[dKp, k!, D]]);
        if (!shared) projectionJobs(fHeads, starts[4], [[dVp, v!, Dv]]);
        return jobs;
      },
    ],
  };
  const tensor = (i: number, heads: number) => (flat: Float32Array) => ({ data: flat.subarray(starts[i], starts[i] + lengths[i]), dims: [heads, P, Nk] });
  const eOf = tensor(3, eHeads);
  const fOf = tensor(4, fHeads);
  return {
    plan,
    split: (flat) => {
      const params: GradParams = shared ? { e: eOf(flat) } : { e: eOf(flat), f: fOf(flat) };
      return { q: flat.subarray(0, starts[1]), k: flat.subarray(starts[1], starts[2]), v: flat.subarray(starts[2], starts[3]), params };
    },
  };
}
