/** The backward pass of every variant, by name (SPEC "Gradients"). */
import type { VariantName } from '../registry.js';
import type { Backward } from './backward.js';

export const backwards: Partial<Record<VariantName, Backward<any>>> = {
  // each variant has its own parsed-options type
};
