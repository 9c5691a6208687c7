/** The backward pass of every variant, by name (SPEC "Gradients"). */
import type { VariantName } from '../registry.js';
import type { Backward } from './backward.js';
import { full } from './full.js';
import { local } from './local.js';
import { strided } from './strided.js';
import { globalTokens } from './global.js';
import { sparse } from './sparse.js';
import { mixed } from './mixed.js';
import { linformer } from './linformer.js';
import { compressed } from './compressed.js';
import { synthesizer } from './synthesizer.js';
import { linear } from './linear.js';
import { lsh } from './lsh.js';
import { routing } from './routing.js';
import { sinkhorn } from './sinkhorn.js';

export const backwards: Partial<Record<VariantName, Backward<any>>> = {
  full,
  local,
  strided,
  global: globalTokens,
  sparse,
  mixed,
  linformer,
  compressed,
  synthesizer,
  linear,
  lsh,
  routing,
  sinkhorn,
  // each variant has its own parsed-options type
};
