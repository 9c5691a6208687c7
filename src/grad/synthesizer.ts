/** The backward pass of `synthesizer`: src/reference/grad/synthesizer.ts; q and k take no part (null gradients). */
import { synthesizerBackward, type SynthesizerParamGradients } from '../reference/grad/synthesizer.js';
import type { SynthesizerLogits } from '../reference/synthesizer.js';
import type { Problem } from '../variants/variant.js';
import type { SynthesizerParsed } from '../variants/synthesizer.js';
import type { Backward, GradParams } from './backward.js';
import { paramTensor, toFloat32 } from './params.js';

/** The gradients nested as the options: `logits`, `factors: { a, b }` or `dense: { x, w1, b1, w2, b2 }`. */
function nested(g: SynthesizerParamGradients, form: SynthesizerLogits, { B, Nq, Nk }: Problem): GradParams {
  if (g.kind === 'random') return { logits: paramTensor(g.logits, [Nq, Nk]) };
  if (g.kind === 'factorized') {
    const { R } = form as Extract<SynthesizerLogits, { kind: 'factorized' }>;
    return { factors: { a: paramTensor(g.a, [Nq, R]), b: paramTensor(g.b, [Nk, R]) } };
  }
  const { Dm, Dh, Nmax } = form as Extract<SynthesizerLogits, { kind: 'dense' }>;
  return {
    dense: {
      x: { data: toFloat32(g.x), dims: [B, Nq, Dm] },
      w1: paramTensor(g.w1, [Dm, Dh]),
      b1: paramTensor(g.b1, [Dh]),
      w2: paramTensor(g.w2, [Dh, Nmax]),
      b2: paramTensor(g.b2, [Nmax]),
    },
  };
}

export const synthesizer: Backward<SynthesizerParsed> = {
  reference({ v }, p, gradOutput) {
    const g = synthesizerBackward(v!, p, p.problem, gradOutput.data);
    return { q: null, k: null, v: toFloat32(g.v), params: nested(g.params, p.logits, p.problem) };
  },
};
