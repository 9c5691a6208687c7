/**
 * The backward pass of the pattern family (`local`, `strided`, `global`,
 * `sparse`): softmax attention over the pattern's visible keys
 * (src/reference/grad/softmax.ts), with `bias` as the only parameter.
 */
import type { BiasView } from '../model.js';
import { patternVisibility, type PatternParsed } from '../patterns.js';
import { softmaxBackward, type SoftmaxGradients } from '../reference/grad/softmax.js';
import type { Inputs } from '../variants/variant.js';
import type { Heads } from '../tensor.js';
import type { Gradients } from './backward.js';
import { biasTensor, toFloat32 } from './params.js';

/** Float64 softmax gradients as {@link Gradients}: q, k, v and, where given, `params.bias`. */
export function softmaxGradients(g: SoftmaxGradients, bias: BiasView | null): Gradients {
  return { q: toFloat32(g.q), k: toFloat32(g.k), v: toFloat32(g.v), params: bias && g.bias ? { bias: biasTensor(g.bias, bias) } : {} };
}

/** The reference gradients of a pattern variant. */
export function patternGradients({ q, k, v }: Inputs, p: PatternParsed, gradOutput: Heads): Gradients {
  return softmaxGradients(softmaxBackward(q!, k!, v!, p, patternVisibility(p.patterns, p), gradOutput.data), p.bias);
}
