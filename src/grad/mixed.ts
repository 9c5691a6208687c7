/**
 * The backward pass of `mixed`: each head's spec's own backward on its
 * one-head problem, stacked back. Query head h's gradient is head h; k and v
 * gradients sum into the kv head the query head reads (grouped-query
 * attention); a head of a variant whose queries are its keys (lsh) gives
 * both roles to q. A bias the heads inherit gets the sum of the heads'
 * slices; every other parameter a head's spec gave sits in `params.heads[h]`.
 * On the SIMD backend the heads' plans run side by side as one.
 */
import type { BiasView } from '../model.js';
import { compactStrides, viewSize } from '../reference/grad/softmax.js';
import type { Heads, Tensor } from '../tensor.js';
import { headSplitter, type MixedParsed } from '../variants/mixed.js';
import type { Backward, BackwardPlan, GradParams, Gradients } from './backward.js';
import { combinePlans, sideBySide } from '../runtime/jobs.js';
import { backwards } from './index.js';
import { biasTensor } from './params.js';

/** Head h of a `'bhnd'` tensor `[B, H, N, D]` as a contiguous `[B, 1, N, D]`. */
function headRows(x: Heads, h: number): Heads {
  const { B, H, N, D } = x;
  const data = new Float32Array(B * N * D);
  for (let b = 0; b < B; b++) data.set(x.data.subarray((b * H + h) * N * D, (b * H + h + 1) * N * D), b * N * D);
  return { data, B, H: 1, N, D, rank: 4, layout: 'bhnd' };
}

/** Adds a `[B, 1, N, D]` head gradient into head `head` of a `[B, heads, N, D]` one. */
function addHead(into: Float64Array, from: Float32Array, B: number, heads: number, head: number, rows: number): void {
  for (let b = 0; b < B; b++) {
    const at = (b * heads + head) * rows;
    for (let n = 0; n < rows; n++) into[at + n] += from[b * rows + n];
  }
}

/** Adds head h's bias gradient (dims `[B|1, 1, Nq|1, Nk|1]`) into the gradient of the bias the heads share. */
function addBiasSlice(into: Float64Array, top: BiasView, slice: Tensor, h: number): void {
  const [db, , dq, dk] = slice.dims as [number, number, number, number];
  const to = compactStrides(top.dims);
  const from = compactStrides([db, 1, dq, dk]);
  for (let b = 0; b < db; b++) {
    for (let i = 0; i < dq; i++) {
      for (let j = 0; j < dk; j++) into[b * to[0] + h * to[1] + i * to[2] + j * to[3]] += slice.data[b * from[0] + i * from[2] + j * from[3]];
    }
  }
}

/**
 * Stacks the heads' gradients (query head h's from `headGradients(h)`) into
 * the call's, summing k and v into the kv heads and bias slices into the
 * shared bias in head order, in float64, rounded once.
 */
function stackGradients(parsed: MixedParsed, headGradients: (h: number) => Gradients): Gradients {
  const { B, H, Hkv, Nq, Nk, D, Dv } = parsed.problem;
  const dq = new Float64Array(B * H * Nq * D);
  const dk = new Float64Array(B * Hkv * Nk * D);
  const dv = new Float64Array(B * Hkv * Nk * Dv);
  const dbias = parsed.bias ? new Float64Array(viewSize(parsed.bias)) : null;
  const headParams: GradParams[] = [];
  parsed.heads.forEach(({ inheritsBias }, h) => {
    const g = headGradients(h);
    const kvHead = Math.floor(h / (H / Hkv));
    if (g.q) addHead(dq, g.q, B, H, h, Nq * D);
    if (g.k) addHead(dk, g.k, B, Hkv, kvHead, Nk * D);
    if (g.v) addHead(dv, g.v, B, Hkv, kvHead, Nk * Dv);
    const { bias, ...own } = g.params;
    if (bias && inheritsBias) addBiasSlice(dbias!, parsed.bias!, bias as Tensor, h);
    headParams.push(bias && !inheritsBias ? { ...own, bias } : own);
  });
  const params: Record<string, Tensor | readonly GradParams[]> = {};
  if (dbias) params.bias = biasTensor(dbias, parsed.bias!);
  if (headParams.some((p) => Object.keys(p).length > 0)) params.heads = headParams;
  return { q: Float32Array.from(dq), k: Float32Array.from(dk), v: Float32Array.from(dv), params };
}

function backwardOfHead(name: string, h: number): Backward {
  const backward = backwards[name as keyof typeof backwards];
  if (!backward) throw new TypeError(`options.heads[${h}].kind: backward() is not defined for '${name}'`);
  return backward;
}

export const mixed: Backward<MixedParsed> = {
  reference(inputs, parsed, gradOutput) {
    const split = headSplitter(inputs);
    return stackGradients(parsed, (h) => {
      const { variant, parsed: headParsed } = parsed.heads[h];
      return backwardOfHead(variant.name, h).reference(split(h, variant), headParsed, headRows(gradOutput, h));
    });
  },
  /** Every head's SIMD plan side by side (null when a head has none: the reference runs), stacked as the reference stacks. */
  plan(runtime, inputs, parsed, gradOutput, saved) {
    const split = headSplitter(inputs);
    const heads: BackwardPlan[] = [];
    for (const [h, { variant, parsed: headParsed }] of parsed.heads.entries()) {
      const headSaved = { output: saved.output && headRows(saved.output, h) };
      const head = backwardOfHead(variant.name, h).plan?.(runtime, split(h, variant), headParsed, headRows(gradOutput, h), headSaved);
      // a head whose own output is gathered (a mixed head) runs on the reference
      if (!head || head.plan.gather) return null;
      heads.push(head);
    }
    const starts = sideBySide(heads.map((head) => head.plan.length));
    const length = heads.reduce((n, head) => n + head.plan.length, 0);
    return {
      plan: combinePlans('mixed backward', heads.map((head) => head.plan), length, (outputs) => heads.map((head, h): [number, number] => [outputs[h], head.plan.length])),
      split: (flat) => stackGradients(parsed, (h) => heads[h].split(flat.subarray(starts[h], starts[h] + heads[h].plan.length))),
    };
  },
};
