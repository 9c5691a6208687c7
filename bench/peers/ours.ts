/**
 * Worker: one case of our variants (bench/suite.ts `benchCases`) on the
 * WebAssembly or the plain-JS backend, on the calling thread or (params.threads
 * > 1) on the thread pool. Inputs are plain tensors, copied into
 * WebAssembly memory by every call and the output copied out, as a user's
 * call does.
 */
import { serve } from './child.js';

serve(async ({ N, H, D, params }) => {
  const { createAttention } = await import('wasm-attention');
  const { benchCases, variantOf } = await import('../suite.js');
  const { randomTensor } = await import('../measure.js');
  const id = params.case as string;
  const c = benchCases[id];
  const threads = (params.threads as number | undefined) ?? 1;
  const attn = await createAttention({ backend: params.backend as 'wasm' | 'js', threads });
  const q = randomTensor([1, H, N, D], 1);
  const k = randomTensor([1, H, N, D], 2);
  const v = randomTensor([1, H, N, D], 3);
  const options = c.options({ N, H, D, q, k });
  const name = variantOf(id) as Parameters<typeof attn.apply>[0];
  const qIn = c.nullInputs === 'qk' ? null : q;
  const kIn = c.nullInputs ? null : k;
  // the pool's threads reach optimised code only after a few calls: warm them up outside the timings
  if (threads > 1) for (let i = 0; i < 6; i++) await attn.run(name, qIn, kIn, v, options);
  return {
    // an async function, so that tinybench awaits each call
    call: threads > 1 ? async () => attn.run(name, qIn, kIn, v, options) : () => attn.apply(name, qIn, kIn, v, options),
    read: (result, i) => (result as { data: Float32Array }).data[i],
    info: { backend: attn.backend, threads: attn.threads.count },
  };
});
