/**
 * Worker: TensorFlow.js on its WebAssembly backend (SIMD on, threads off),
 * full attention as `softmax(q k^T * scale) v` head by head: 2D matMuls are
 * about 10x faster than one batched 3D matMul on this backend, and an
 * explicit transpose of k beats `matMul(q, k, false, true)`. The inputs are
 * resident tensors (uploaded once); every call reads the output back.
 */
import { serve } from './child.js';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

serve(async ({ N, H, D }) => {
  const tf = await import('@tensorflow/tfjs-core');
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const { randomTensor } = await import('../measure.js');
  // the .wasm files sit next to the package's main file in node_modules (read with fs: no network)
  const require = createRequire(import.meta.url);
  wasm.setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`);
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  tf.env().set('WASM_HAS_SIMD_SUPPORT', true);
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend did not initialise');
  await tf.ready();
  const scale = 1 / Math.sqrt(D);
  const heads = (seed: number) => {
    const { data } = randomTensor([1, H, N, D], seed);
    return Array.from({ length: H }, (_, h) => tf.tensor2d(data.subarray(h * N * D, (h + 1) * N * D), [N, D]));
  };
  const [q, k, v] = [heads(1), heads(2), heads(3)];
  const call = () => {
    const out = new Float32Array(H * N * D);
    for (let h = 0; h < H; h++) {
      const o = tf.tidy(() => tf.matMul(tf.softmax(tf.matMul(tf.mul(q[h], scale), tf.transpose(k[h]))), v[h]));
      out.set(o.dataSync() as Float32Array, h * N * D);
      o.dispose();
    }
    return out;
  };
  return {
    call,
    read: (result, i) => (result as Float32Array)[i],
    info: { 'tfjs-core': tf.version_core, 'tfjs-backend-wasm': wasm.version_wasm, simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'), threads: false },
  };
});
