/**
 * Worker: one row of the model section (bench/model.bench.ts): our `full`
 * on the WebAssembly backend, one thread, called as a model calls it
 * (`params.case`: grouped-query heads, k and v repeated, a block mask, a
 * bias, a cap; `params.Hkv` kv heads). The inputs, mask and bias are made
 * once; every call copies them into WebAssembly memory and the output out,
 * as a user's call does.
 */
import { serve } from './child.js';

serve(async ({ N, H, D, params }) => {
  const { createAttention } = await import('wasm-attention');
  const { modelCall } = await import('../model.bench.js');
  type Case = Parameters<typeof modelCall>[0];
  const attn = await createAttention({ backend: 'wasm' });
  const { q, k, v, options, info } = modelCall(params.case as Case, { N, H, D, Hkv: params.Hkv as number | undefined });
  return {
    call: () => attn.full(q, k, v, options),
    read: (result, i) => (result as { data: Float32Array }).data[i],
    info: { backend: attn.backend, ...info },
  };
});
