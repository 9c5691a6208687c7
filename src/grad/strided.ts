/**
 * The backward pass of `strided`: softmax attention over its pattern
 * (src/grad/patterns.ts). Its SIMD plan runs by residue, as the forward's
 * stride pass does (assembly/variants/pattern-stride.ts): positions
 * p = r + a s of one residue r see each other exactly when their indices a
 * are within `window` (and not ahead, when causal), so the rows and keys of
 * each residue, gathered into a sequence of their own, are one batch of
 * full's banded plan, whose gradients are scattered back. A key block then
 * holds only keys of its rows' residue, where the pattern's own plan sweeps
 * every block for one key in `stride`. Self-attention (Nq = Nk) without a
 * mask or bias; other problems take the pattern's plan.
 */
import type { PatternParsed } from '../patterns.js';
import type { Heads } from '../tensor.js';
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
 * Calls `move(sequenceRow, gatheredRow)` for every row of B batches and H
 * heads: row p of head (b, h) of the sequence, and its place in the gathered
 * layout `[B s, H, M, D]`, where batch b s + r holds residue r's rows in order
 * (offsets in rows).
 */
function eachRow(B: number, H: number, { s, N, M }: Residues, move: (sequenceRow: number, gatheredRow: number) => void): void {
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let r = 0; r < s; r++) {
        let gathered = ((b * s + r) * H + h) * M;
        for (let p = r; p < N; p += s) move((b * H + h) * N + p, gathered++);
      }
    }
  }
}

/** `[B, H, N, D]` ('bhnd') gathered by residue as `[B s, H, M, D]`; rows past a residue's end are 0. */
function gather(x: Heads, residues: Residues): Heads {
  const { B, H, D, data } = x;
  const out = new Float32Array(B * residues.s * H * residues.M * D);
  eachRow(B, H, residues, (from, to) => out.set(data.subarray(from * D, (from + 1) * D), to * D));
  return { data: out, B: B * residues.s, H, N: residues.M, D, rank: 4, layout: 'bhnd' };
}

/** The inverse of gather, for a gradient of B batches, H heads, D columns. */
function scatter(y: Float32Array, B: number, H: number, D: number, residues: Residues): Float32Array {
  const out = new Float32Array(B * H * residues.N * D);
  eachRow(B, H, residues, (to, from) => out.set(y.subarray(from * D, (from + 1) * D), to * D));
  return out;
}

/** The gathered problem's key padding `[B s, M]`: the caller's (1 = real key), and 0 at the slots past a residue's end; null when every key is real. */
function gatherPadding(pad: Uint8Array | null, B: number, residues: Residues): Uint8Array | null {
  if (!pad && residues.N % residues.s === 0) return null;
  const out = new Uint8Array(B * residues.s * residues.M);
  eachRow(B, 1, residues, (from, to) => (out[to] = pad ? pad[from] : 1));
  return out;
}

/** The plan by residue, or null where the problem is not one it covers. */
function residuePlan(runtime: Runtime, inputs: Inputs, p: PatternParsed, gradOutput: Heads, saved: Saved): BackwardPlan | null {
  const { rules, Nq, Nk } = p.patterns;
  const rule = rules[0];
  if (rules.length !== 1 || rule.type !== 'strided' || rule.stride < 2 || Nq !== Nk || p.mask || p.bias) return null;
  const { q, k, v } = inputs;
  const residues: Residues = { s: rule.stride, N: Nk, M: Math.ceil(Nk / rule.stride) };
  // a stride of N or more: every row sees itself alone, in one block of the pattern's plan
  if (residues.M < 2) return null;
  const keyPadding = gatherPadding(p.keyPadding, q!.B, residues);
  const window = rule.window === null ? null : { window: { before: rule.window, after: rule.window } };
  const output = saved.output ? gather(saved.output, residues) : null;
  const inner = fullBackwardPlan(
    runtime, gather(q!, residues), gather(k!, residues), gather(v!, residues), gather(gradOutput, residues),
    { scale: p.scale, causal: p.causal, keyPadding }, { mask: null, bias: null, softcap: p.softcap },
    { visibility: window, output },
  );
  return {
    plan: inner.plan,
    split: (flat) => {
      const g = inner.split(flat);
      return {
        q: scatter(g.q!, q!.B, q!.H, q!.D, residues),
        k: scatter(g.k!, k!.B, k!.H, k!.D, residues),
        v: scatter(g.v!, v!.B, v!.H, v!.D, residues),
        params: {},
      };
    },
  };
}

export const strided: Backward<PatternParsed> = {
  reference: patternGradients,
  plan: (runtime, inputs, p, gradOutput, saved) => residuePlan(runtime, inputs, p, gradOutput, saved) ?? patternBackwardPlan(runtime, inputs, p, gradOutput, saved),
};
