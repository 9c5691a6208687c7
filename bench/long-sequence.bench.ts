/**
 * `full` at a long sequence (`--full`): one call at N = 32768, H = 1, and the
 * WebAssembly memory it needs beyond its inputs and output.
 */
import { createAttention } from 'wasm-attention';
import { MiB, randomTensor } from './measure.js';

const D = 64;

/** One call at a long sequence: the WebAssembly memory it needs beyond its inputs and output. */
export async function benchLongSequence(N = 32768): Promise<Record<string, number>> {
  const attn = await createAttention({ backend: 'wasm' });
  const q = attn.tensor([1, 1, N, D], randomTensor([1, 1, N, D], 4).data);
  const start = performance.now();
  attn.full(q, q, q);
  const ms = performance.now() - start;
  const tensors = 2 * N * D * 4; // q (also k and v, pinned in WebAssembly memory) and the output
  return { N, D, ms, 'GFLOP/s': (4 * N * N * D) / ms / 1e6, 'MiB beyond tensors': (attn.memory.size - tensors) / MiB };
}
