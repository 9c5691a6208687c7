/**
 * A random Synthesizer learns a permutation, by plain SGD on its attention
 * logits with `attn.synthesizer` forward and `attn.backward`.
 *
 * The model is `out = softmax(logits) v` with `logits: [1, N, N]`, starting
 * at 0 (every query attends every key equally). Each step draws fresh values
 * v and asks for `out_i = v_(perm(i))`: the only way to get there for every v
 * is for row i of the attention to put its weight on key perm(i), so the
 * logits must learn the permutation itself.
 *
 *     npm run example:train
 *
 * (In your own code, import from 'wasm-attention' instead of '../dist/index.js'.)
 */
import { pathToFileURL } from 'node:url';
import { createAttention, type Attention, type Tensor } from '../dist/index.js';
import { normal, uniformGenerator } from './random.js';

export interface TrainOptions {
  /** Sequence length N (the permutation's size). */
  readonly length?: number;
  /** Features per value row. */
  readonly features?: number;
  /** Value sequences per step. */
  readonly batch?: number;
  readonly steps?: number;
  readonly learningRate?: number;
  readonly seed?: number;
  /** The instance to train on (default: a new one, SIMD where available). */
  readonly attn?: Attention;
}

export interface TrainResult {
  /** The mean squared error before each step. */
  readonly losses: number[];
  /** The permutation to learn, and what each query attends most after training. */
  readonly permutation: number[];
  readonly learned: number[];
}

export async function trainSynthesizer(options: TrainOptions = {}): Promise<TrainResult> {
  const { length: N = 16, features: Dv = 8, batch: B = 8, steps = 200, learningRate = 20, seed = 1 } = options;
  const attn = options.attn ?? (await createAttention());
  const uniform = uniformGenerator(seed);
  // the permutation to learn (Fisher-Yates)
  const permutation = Array.from({ length: N }, (_, i) => i);
  for (let i = N - 1; i > 0; i--) {
    const j = Math.floor(uniform() * (i + 1));
    [permutation[i], permutation[j]] = [permutation[j], permutation[i]];
  }
  const logits: Tensor = { data: new Float32Array(N * N), dims: [1, N, N] };
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const v: Tensor = { data: Float32Array.from({ length: B * N * Dv }, () => normal(uniform)), dims: [B, 1, N, Dv] };
    const out = attn.synthesizer(null, null, v, { logits });
    // loss = mean (out - target)^2, and its gradient with respect to out
    const gradOutput: Tensor = { data: new Float32Array(out.data.length), dims: [...out.dims] };
    let loss = 0;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < N; i++) {
        for (let e = 0; e < Dv; e++) {
          const at = (b * N + i) * Dv + e;
          const error = out.data[at] - v.data[(b * N + permutation[i]) * Dv + e];
          loss += error * error;
          gradOutput.data[at] = (2 * error) / out.data.length;
        }
      }
    }
    losses.push(loss / out.data.length);
    // the backward pass: the gradient of the loss with respect to the logits, then a plain SGD step
    const { params } = attn.backward('synthesizer', null, null, v, gradOutput, { logits });
    const gradLogits = params.logits as Tensor;
    for (let n = 0; n < logits.data.length; n++) logits.data[n] -= learningRate * gradLogits.data[n];
  }
  const learned = permutation.map((_, i) => {
    const row = logits.data.subarray(i * N, (i + 1) * N);
    return row.indexOf(Math.max(...row));
  });
  return { losses, permutation, learned };
}

// run as a script: print the loss as it falls
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { losses, permutation, learned } = await trainSynthesizer();
  losses.forEach((loss, step) => {
    if (step % 20 === 0 || step === losses.length - 1) console.log(`step ${String(step).padStart(3)}  loss ${loss.toFixed(4)}`);
  });
  const right = learned.filter((key, i) => key === permutation[i]).length;
  console.log(`permutation ${permutation.join(' ')}\nlearned     ${learned.join(' ')}  (${right}/${permutation.length} rows attend the right key)`);
}
