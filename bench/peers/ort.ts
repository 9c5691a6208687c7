/**
 * Worker: onnxruntime-web on its WebAssembly backend, `params.threads` threads (1 by default), running a
 * model built in bench/peers/onnx.ts: `params.model` 'mha' (the
 * `com.microsoft` MultiHeadAttention op, inputs in its `[1, N, H*D]`
 * layout, prepared outside the timed call), 'graph' (MatMul, Softmax,
 * MatMul on `[1, H, N, D]`), 'attention' (the ONNX Attention op, opset 23)
 * or 'gqa' (`com.microsoft` GroupQueryAttention, causal), the last two with
 * k and v of `params.Hkv` heads in the `[1, N, Hkv*D]` layout. Every call
 * copies the inputs in and the output out.
 */
import { serve } from './child.js';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';

serve(async ({ N, H, D, params }) => {
  const ort = await import('onnxruntime-web');
  const { attentionModel, groupQueryAttentionModel, multiHeadAttentionModel, matMulSoftmaxModel } = await import('./onnx.js');
  const { randomTensor } = await import('../measure.js');
  // ort-wasm-simd-threaded.{mjs,wasm} from node_modules/onnxruntime-web/dist (no network)
  const require = createRequire(import.meta.url);
  ort.env.wasm.wasmPaths = pathToFileURL(`${dirname(require.resolve('onnxruntime-web'))}/`).href;
  const threads = (params.threads as number | undefined) ?? 1;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  const scale = 1 / Math.sqrt(D);
  const kind = params.model as 'mha' | 'graph' | 'attention' | 'gqa';
  const Hkv = kind === 'attention' || kind === 'gqa' ? ((params.Hkv as number | undefined) ?? H) : H;
  const models = {
    mha: () => multiHeadAttentionModel(H, D, scale),
    graph: () => matMulSoftmaxModel(H, D),
    attention: () => attentionModel(H, Hkv, D, scale),
    gqa: () => groupQueryAttentionModel(H, Hkv, D, scale),
  };
  const names = { mha: 'com.microsoft MultiHeadAttention', graph: 'MatMul-Softmax-MatMul', attention: 'Attention (opset 23)', gqa: 'com.microsoft GroupQueryAttention' };
  const session = await ort.InferenceSession.create(models[kind](), {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    // idle onnxruntime threads spin by default, which would steal the cores from the other processes of the sweep
    extra: { session: { intra_op: { allow_spinning: '0' } } },
    interOpNumThreads: 1,
  });
  const rowsLayout = kind !== 'graph';
  /** [1, heads, N, D] -> [1, N, heads*D] */
  const toRows = (x: Float32Array, heads: number) => {
    const out = new Float32Array(x.length);
    for (let h = 0; h < heads; h++) for (let n = 0; n < N; n++) out.set(x.subarray((h * N + n) * D, (h * N + n + 1) * D), (n * heads + h) * D);
    return out;
  };
  // the same values as our rows: q [1, H, N, D] seed 1, k and v [1, Hkv, N, D] seeds 2 and 3
  const input = (seed: number, heads: number) => {
    const { data } = randomTensor([1, heads, N, D], seed);
    return rowsLayout ? new ort.Tensor('float32', toRows(data, heads), [1, N, heads * D]) : new ort.Tensor('float32', data, [1, heads, N, D]);
  };
  const feeds: Record<string, InstanceType<typeof ort.Tensor>> = { q: input(1, H), k: input(2, Hkv), v: input(3, Hkv) };
  if (kind === 'graph') feeds.scale = new ort.Tensor('float32', Float32Array.of(scale), []);
  if (kind === 'gqa') {
    // no past: the whole sequence is one prompt of N tokens
    feeds.seqlens_k = new ort.Tensor('int32', Int32Array.of(N - 1), [1]);
    feeds.total_sequence_length = new ort.Tensor('int32', Int32Array.of(N), []);
  }
  const call = async () => (await session.run(feeds)).out.data as Float32Array;
  const read = (result: unknown, i: number) => {
    const out = result as Float32Array;
    if (!rowsLayout) return out[i];
    const d = i % D;
    const n = Math.floor(i / D) % N;
    const h = Math.floor(i / (D * N));
    return out[(n * H + h) * D + d];
  };
  return { call, read, info: { 'onnxruntime-web': ort.env.versions.web, model: names[kind], threads, kvHeads: Hkv } };
});
