/**
 * The backward pass of the pattern family (`local`, `strided`, `global`,
 * `sparse`): softmax attention over the pattern's visible keys
 * (src/reference/grad/softmax.ts), with `bias` as the only parameter. A
 * pattern of local windows only runs on full's SIMD plan as a band of keys.
 */
import type { BiasView } from '../model.js';
import { patternVisibility, type PatternParsed } from '../patterns.js';
import { softmaxBackward, type SoftmaxGradients } from '../reference/grad/softmax.js';
import type { Inputs } from '../variants/variant.js';
import type { Heads } from '../tensor.js';
import type { Runtime } from '../runtime/runtime.js';
import type { BackwardPlan, Gradients } from './backward.js';
import { fullBackwardPlan } from './full-plan.js';
import { biasTensor, toFloat32 } from './params.js';

/** Float64 softmax gradients as {@link Gradients}: q, k, v and, where given, `params.bias`. */
export function softmaxGradients(g: SoftmaxGradients, bias: BiasView | null): Gradients {
  return { q: toFloat32(g.q), k: toFloat32(g.k), v: toFloat32(g.v), params: bias && g.bias ? { bias: biasTensor(g.bias, bias) } : {} };
}

/** The reference gradients of a pattern variant. */
export function patternGradients({ q, k, v }: Inputs, p: PatternParsed, gradOutput: Heads): Gradients {
  return softmaxGradients(softmaxBackward(q!, k!, v!, p, patternVisibility(p.patterns, p), gradOutput.data), p.bias);
}

/**
 * The SIMD plan of a pattern set whose rules are all local windows (their
 * union is one band: the widest before and after), or null.
 */
export function windowBackwardPlan(runtime: Runtime, { q, k, v }: Inputs, p: PatternParsed, gradOutput: Heads): BackwardPlan | null {
  const { rules } = p.patterns;
  if (rules.length === 0 || rules.some((r) => r.type !== 'local')) return null;
  const locals = rules as readonly { before: number; after: number }[];
  const window = { before: Math.max(...locals.map((r) => r.before)), after: Math.max(...locals.map((r) => r.after)) };
  return fullBackwardPlan(runtime, q!, k!, v!, gradOutput, p, p, window);
}
