/**
 * Full attention learns to attend a marked token: plain SGD on the query
 * and key projections, through `attn.full` forward and `attn.backward`.
 *
 * Each sequence has N tokens `x_i = [marker_i, 1, noise...]` with the marker
 * set on one random token m, and random values v. The model is
 * `out = full(x Wq, x Wk, v)` and the target is `out_i = v_m` for every i:
 * the queries (through the constant feature) must learn to find the key
 * that carries the marker. The gradients of q and k from `attn.backward` go
 * back through the projections: `dW = x^T dq` (and `x^T dk`).
 *
 *     npm run example:train
 *
 * (In your own code, import from 'wasm-attention' instead of '../dist/index.js'.)
 */
import { pathToFileURL } from 'node:url';
import { createAttention, type Attention, type Tensor } from '../dist/index.js';
import { normal, uniformGenerator } from './random.js';

export interface MarkedTokenOptions {
  /** Tokens per sequence. */
  readonly length?: number;
  /** Random features per token, besides the marker and the constant. */
  readonly noise?: number;
  /** Query and key size D (and value size). */
  readonly features?: number;
  /** Sequences per step. */
  readonly batch?: number;
  readonly steps?: number;
  readonly learningRate?: number;
  readonly seed?: number;
  /** The instance to train on (default: a new one, SIMD where available). */
  readonly attn?: Attention;
}

/** `x [rows, inner] . W [inner, D]`. */
function project(x: Float32Array, W: Float32Array, rows: number, inner: number, D: number): Float32Array {
  const out = new Float32Array(rows * D);
  for (let n = 0; n < rows; n++) {
    for (let d = 0; d < D; d++) {
      let sum = 0;
      for (let c = 0; c < inner; c++) sum += x[n * inner + c] * W[c * D + d];
      out[n * D + d] = sum;
    }
  }
  return out;
}

/** `W -= rate x^T dy`: an SGD step on a projection, from the gradient of its output. */
function descend(W: Float32Array, x: Float32Array, dy: Float32Array, rows: number, inner: number, D: number, rate: number): void {
  for (let c = 0; c < inner; c++) {
    for (let d = 0; d < D; d++) {
      let sum = 0;
      for (let n = 0; n < rows; n++) sum += x[n * inner + c] * dy[n * D + d];
      W[c * D + d] -= rate * sum;
    }
  }
}

/** Trains Wq and Wk for `steps` steps; returns the mean squared error before each. */
export async function trainMarkedToken(options: MarkedTokenOptions = {}): Promise<number[]> {
  const { length: N = 12, noise = 4, features: D = 4, batch: B = 16, steps = 100, learningRate = 3, seed = 7 } = options;
  const attn = options.attn ?? (await createAttention());
  const uniform = uniformGenerator(seed);
  const Dm = 2 + noise;
  const rows = B * N;
  const Wq = Float32Array.from({ length: Dm * D }, () => 0.3 * normal(uniform));
  const Wk = Float32Array.from({ length: Dm * D }, () => 0.3 * normal(uniform));
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    // a batch of sequences, each with its marked token
    const x = new Float32Array(rows * Dm);
    const marked = Array.from({ length: B }, () => Math.floor(uniform() * N));
    for (let n = 0; n < rows; n++) {
      x[n * Dm] = n % N === marked[Math.floor(n / N)] ? 1 : 0;
      x[n * Dm + 1] = 1;
      for (let c = 2; c < Dm; c++) x[n * Dm + c] = normal(uniform);
    }
    const q: Tensor = { data: project(x, Wq, rows, Dm, D), dims: [B, 1, N, D] };
    const k: Tensor = { data: project(x, Wk, rows, Dm, D), dims: [B, 1, N, D] };
    const v: Tensor = { data: Float32Array.from({ length: rows * D }, () => normal(uniform)), dims: [B, 1, N, D] };
    const out = attn.full(q, k, v);
    // loss = mean (out_i - v_m)^2, and its gradient with respect to out
    const gradOutput: Tensor = { data: new Float32Array(out.data.length), dims: [...out.dims] };
    let loss = 0;
    for (let n = 0; n < rows; n++) {
      const target = (Math.floor(n / N) * N + marked[Math.floor(n / N)]) * D;
      for (let d = 0; d < D; d++) {
        const error = out.data[n * D + d] - v.data[target + d];
        loss += error * error;
        gradOutput.data[n * D + d] = (2 * error) / out.data.length;
      }
    }
    losses.push(loss / out.data.length);
    // the backward pass gives dq and dk; through the projections, an SGD step on Wq and Wk
    const grads = attn.backward('full', q, k, v, gradOutput);
    descend(Wq, x, grads.q!.data, rows, Dm, D, learningRate);
    descend(Wk, x, grads.k!.data, rows, Dm, D, learningRate);
  }
  return losses;
}

// run as a script: print the loss as it falls
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const losses = await trainMarkedToken();
  losses.forEach((loss, step) => {
    if (step % 10 === 0 || step === losses.length - 1) console.log(`step ${String(step).padStart(3)}  loss ${loss.toFixed(4)}`);
  });
}
