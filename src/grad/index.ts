/** The backward pass of every variant, by name (SPEC "Gradients"). */
import type { VariantName } from '../registry.js';
import type { Backward } from './backward.js';
import { linearBackwardPlan } from './linear-plan.js';
import { linformerBackwardPlan } from './linformer-plan.js';

const referenceElsewhere = (): never => {
  throw new Error('reference on branch gradref');
};

export const backwards: Partial<Record<VariantName, Backward<any>>> = {
  // each variant has its own parsed-options type
  linear: { reference: referenceElsewhere, plan: linearBackwardPlan },
  linformer: { reference: referenceElsewhere, plan: linformerBackwardPlan },
};
