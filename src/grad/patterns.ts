/**
 * The backward pass of the pattern family (`local`, `strided`, `global`,
 * `sparse`): softmax attention over the pattern's visible keys
 * (src/reference/grad/softmax.ts), with `bias` as the only parameter, and
 * their SIMD plan: full's (src/grad/full-plan.ts) over the pattern's pairs.
 */
import type { BiasView } from '../model.js';
import { patternVisibility, type PatternParsed } from '../patterns.js';
import { softmaxBackward, type SoftmaxGradients } from '../reference/grad/softmax.js';
import type { Inputs } from '../variants/variant.js';
import type { Heads } from '../tensor.js';
import type { Runtime } from '../runtime/runtime.js';
import type { BackwardPlan, Gradients, Saved } from './backward.js';
import { fullBackwardPlan } from './full-plan.js';
import { kernelPlan } from '../pattern-kernel.js';
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
 * The SIMD plan of a pattern variant: full's, over a band of keys when the
 * rules are all local windows (their union: the widest before and after),
 * else over the cover of the forward's plan of passes.
 */
export function patternBackwardPlan(runtime: Runtime, inputs: Inputs, p: PatternParsed, gradOutput: Heads, saved: Saved): BackwardPlan {
  const { q, k, v } = inputs;
  const { rules } = p.patterns;
  if (rules.length > 0 && rules.every((r) => r.type === 'local')) {
    const locals = rules as readonly { before: number; after: number }[];
    const window = { before: Math.max(...locals.map((r) => r.before)), after: Math.max(...locals.map((r) => r.after)) };
    return fullBackwardPlan(runtime, q!, k!, v!, gradOutput, p, p, { visibility: { window }, output: saved.output });
  }
  return fullBackwardPlan(runtime, q!, k!, v!, gradOutput, p, p, { visibility: { pattern: { plan: kernelPlan(p.patterns, p.causal), parsed: p, inputs } } });
}
