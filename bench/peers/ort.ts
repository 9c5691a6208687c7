/**
 * Worker: onnxruntime-web on its WebAssembly backend, `params.threads` threads (1 by default), running a
 * model built in bench/peers/onnx.ts: `params.model` 'mha' (the
 * `com.microsoft` MultiHeadAttention op, inputs in its `[1, N, H*D]`
 * layout, prepared outside the timed call) or 'graph' (MatMul, Softmax,
 * MatMul on `[1, H, N, D]`). Every call copies the inputs in and the output out.
 */
import { serve } from './child.js';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';

serve(async ({ N, H, D, params }) => {
  const ort = await import('onnxruntime-web');
  const { multiHeadAttentionModel, matMulSoftmaxModel } = await import('./onnx.js');
  const { randomTensor } = await import('../measure.js');
  // ort-wasm-simd-threaded.{mjs,wasm} from node_modules/onnxruntime-web/dist (no network)
  const require = createRequire(import.meta.url);
  ort.env.wasm.wasmPaths = pathToFileURL(`${dirname(require.resolve('onnxruntime-web'))}/`).href;
  const threads = (params.threads as number | undefined) ?? 1;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  const scale = 1 / Math.sqrt(D);
  const mha = params.model === 'mha';
  const session = await ort.InferenceSession.create(mha ? multiHeadAttentionModel(H, D, scale) : matMulSoftmaxModel(H, D), {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    // idle onnxruntime threads spin by default, which would steal the cores from the other processes of the sweep
    extra: { session: { intra_op: { allow_spinning: '0' } } },
    interOpNumThreads: 1,
  });
  /** [1, H, N, D] -> [1, N, H*D] */
  const toRows = (x: Float32Array) => {
    const out = new Float32Array(x.length);
    for (let h = 0; h < H; h++) for (let n = 0; n < N; n++) out.set(x.subarray((h * N + n) * D, (h * N + n + 1) * D), (n * H + h) * D);
    return out;
  };
  const input = (seed: number) => {
    const { data } = randomTensor([1, H, N, D], seed);
    return mha ? new ort.Tensor('float32', toRows(data), [1, N, H * D]) : new ort.Tensor('float32', data, [1, H, N, D]);
  };
  const feeds: Record<string, InstanceType<typeof ort.Tensor>> = { q: input(1), k: input(2), v: input(3) };
  if (!mha) feeds.scale = new ort.Tensor('float32', Float32Array.of(scale), []);
  const call = async () => (await session.run(feeds)).out.data as Float32Array;
  const read = (result: unknown, i: number) => {
    const out = result as Float32Array;
    if (!mha) return out[i];
    const d = i % D;
    const n = Math.floor(i / D) % N;
    const h = Math.floor(i / (D * N));
    return out[(n * H + h) * D + d];
  };
  return { call, read, info: { 'onnxruntime-web': ort.env.versions.web, model: mha ? 'com.microsoft MultiHeadAttention' : 'MatMul-Softmax-MatMul', threads } };
});
