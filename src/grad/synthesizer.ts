/**
 * The backward pass of `synthesizer`: src/reference/grad/synthesizer.ts, and
 * the SIMD plan of ./synthesizer-plan.ts. q and k take no part (null
 * gradients).
 */
import { synthesizerBackward } from '../reference/grad/synthesizer.js';
import type { SynthesizerParsed } from '../variants/synthesizer.js';
import type { Backward } from './backward.js';
import { toFloat32 } from './params.js';
import { nestParams, synthesizerBackwardPlan, type SynthesizerParamName } from './synthesizer-plan.js';

export const synthesizer: Backward<SynthesizerParsed> = {
  reference({ v }, p, gradOutput) {
    const g = synthesizerBackward(v!, p, p.problem, gradOutput.data);
    // the form's gradients by name (g.params.kind is the form's)
    const fields = g.params as unknown as Readonly<Record<SynthesizerParamName, Float64Array>>;
    return { q: null, k: null, v: toFloat32(g.v), params: nestParams(p.logits, p.problem, (name) => toFloat32(fields[name])) };
  },
  plan: synthesizerBackwardPlan,
};
