/** The backward pass of `full`: src/reference/grad/softmax.ts, and the SIMD plan of full-plan.ts. */
import { commonVisible } from '../reference/softmax.js';
import { softmaxBackward } from '../reference/grad/softmax.js';
import type { FullParsed } from '../variants/full.js';
import type { Backward } from './backward.js';
import { fullBackwardPlan } from './full-plan.js';
import { softmaxGradients } from './patterns.js';

export const full: Backward<FullParsed> = {
  reference({ q, k, v }, p, gradOutput) {
    const { Nq, Nk } = p.problem;
    return softmaxGradients(softmaxBackward(q!, k!, v!, p, commonVisible(p, Nq, Nk), gradOutput.data), p.bias);
  },
  plan(runtime, { q, k, v }, p, gradOutput, saved) {
    return fullBackwardPlan(runtime, q!, k!, v!, gradOutput, p, p, { output: saved.output });
  },
};
