/**
 * The backward pass of `strided`: softmax attention over its pattern
 * (src/grad/patterns.ts). Its SIMD plan runs by residue, as the forward's
 * stride pass does (assembly/variants/pattern-stride.ts): positions
 * p = r + a s of one residue r see each other exactly when their indices a
 * are within `window` (and not ahead, when causal), so the rows and keys of
 * each residue, gathered into a sequence of their own (in the memory, by
 * assembly/grad/strided.ts), are one batch of full's banded plan, whose
 * gradients are scattered back. A key block then
 * holds only keys of its rows' residue, where the pattern's own plan sweeps
 * every block for one key in `stride`. Self-attention (Nq = Nk) without a
 * mask or bias; other problems take the pattern's plan.
 */
import type { PatternParsed } from '../patterns.js';
import type { Heads } from '../tensor.js';
import type { FramePart } from '../runtime/arena.js';
import { sideBySide, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import type { Runtime } from '../runtime/runtime.js';
import type { Inputs } from '../variants/variant.js';
import type { Backward, BackwardPlan, Saved } from './backward.js';
import { fullBackwardPlan } from './full-plan.js';
import { patternBackwardPlan, patternGradients } from './patterns.js';

/** Residue classes of a problem: stride s, N positions, each class padded to M = ceil(N / s). */
interface Residues {
  readonly s: number;
  readonly N: number;
  readonly M: number;
}

/**
 * The calls that move every head of x (`[B, H, N, D]`, 'bhnd', at `sequence`)
 * to or from its residue order at `gathered` (`[B s, H, M, D]`: batch b s + r
 * holds residue r's rows in order), a job per batch.
 */
function moveJobs(x: Heads, sequence: number, gathered: number, { s, N, M }: Residues, toResidues: boolean): Job[] {
  const { B, H, D } = x;
  return Array.from({ length: B }, (_, b): Job =>
    Array.from({ length: H }, (_, h): KernelCall => [
      'residueRows', sequence + (b * H + h) * N * D * 4, gathered + (b * s * H + h) * M * D * 4, N, D, s, H * M * D * 4, toResidues ? 1 : 0,
    ]),
  );
}

/** The gathered problem's key padding `[B s, M]`: the caller's (1 = real key), and 0 at the slots past a residue's end; null when every key is real. */
function gatherPadding(pad: Uint8Array | null, B: number, { s, N, M }: Residues): Uint8Array | null {
  if (!pad && N % s === 0) return null;
  const out = new Uint8Array(B * s * M);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < N; p++) out[(b * s + (p % s)) * M + Math.floor(p / s)] = pad ? pad[b * N + p] : 1;
  }
  return out;
}

/**
 * The plan by residue, or null where the problem is not one it covers: the
 * inputs are copied in as they are, moved to residue order (stage 0), full's
 * banded plan runs on them, and its gradients are moved back (last stage).
 */
function residuePlan(runtime: Runtime, inputs: Inputs, p: PatternParsed, gradOutput: Heads, saved: Saved): BackwardPlan | null {
  const { rules, Nq, Nk } = p.patterns;
  const rule = rules[0];
  if (rules.length !== 1 || rule.type !== 'strided' || rule.stride < 2 || Nq !== Nk || p.mask || p.bias) return null;
  const residues: Residues = { s: rule.stride, N: Nk, M: Math.ceil(Nk / rule.stride) };
  // a stride of N or more: every row sees itself alone, in one block of the pattern's plan
  if (residues.M < 2) return null;
  const q = inputs.q!;
  const k = inputs.k!;
  const v = inputs.v!;
  // the gathered tensors exist only in the frame: full's plan gets an empty array in their place, then a byte count
  const sources = new Map<Float32Array, Heads>();
  const gathered = (x: Heads): Heads => {
    const data = new Float32Array(0);
    sources.set(data, x);
    return { data, B: x.B * residues.s, H: x.H, N: residues.M, D: x.D, rank: 4, layout: 'bhnd' };
  };
  const gatheredLength = (x: Heads) => x.B * residues.s * x.H * residues.M * x.D;
  const [qg, kg, vg] = [q, k, v].map(gathered);
  const inner = fullBackwardPlan(
    runtime, qg, kg, vg, gathered(gradOutput),
    { scale: p.scale, causal: p.causal, keyPadding: gatherPadding(p.keyPadding, q.B, residues) },
    { mask: null, bias: null, softcap: p.softcap },
    { visibility: rule.window === null ? null : { window: { before: rule.window, after: rule.window } }, output: saved.output ? gathered(saved.output) : null },
  );
  const slots = [...sources.keys()];
  const slotAt = slots.map((slot) => inner.plan.parts.indexOf(slot));
  const sourceAt = inner.plan.parts.length;
  const gradients = [q, k, v];
  const length = gradients.reduce((n, x) => n + x.data.length, 0);
  const parts: FramePart[] = [
    ...inner.plan.parts.map((part) => (part instanceof Float32Array && sources.has(part) ? gatheredLength(sources.get(part)!) * 4 : part)),
    ...slots.map((slot) => sources.get(slot)!.data),
    length * 4,
  ];
  const outputAt = parts.length - 1;
  // the gradients of q, k and v side by side, in sequence order (the output) and in residue order (full's plan's)
  const inSequence = sideBySide(gradients.map((x) => x.data.length));
  const inResidues = sideBySide(gradients.map(gatheredLength));
  const plan: JobPlan = {
    what: inner.plan.what,
    parts,
    output: outputAt,
    length,
    scratch: inner.plan.scratch,
    jobs: (pointers) => slots.flatMap((slot, i) => moveJobs(sources.get(slot)!, pointers[sourceAt + i], pointers[slotAt[i]], residues, true)),
    stages: [
      inner.plan.jobs,
      ...(inner.plan.stages ?? []),
      (pointers) => gradients.flatMap((x, i) => moveJobs(x, pointers[outputAt] + inSequence[i] * 4, pointers[inner.plan.output] + inResidues[i] * 4, residues, false)),
    ],
  };
  return {
    plan,
    split: (flat) => ({ q: flat.subarray(0, inSequence[1]), k: flat.subarray(inSequence[1], inSequence[2]), v: flat.subarray(inSequence[2], length), params: {} }),
  };
}

export const strided: Backward<PatternParsed> = {
  reference: patternGradients,
  plan: (runtime, inputs, p, gradOutput, saved) => residuePlan(runtime, inputs, p, gradOutput, saved) ?? patternBackwardPlan(runtime, inputs, p, gradOutput, saved),
};
