// The training examples: a few dozen SGD steps through a forward call and attn.backward (on
// both backends) bring the loss down by far: examples/train-synthesizer.ts recovers its
// permutation, examples/train-marked-token.ts learns projections that attend the marked token.
import { describe, expect, it } from 'vitest';
import { createAttention } from '../dist/index.js';
import { trainMarkedToken } from '../examples/train-marked-token.js';
import { trainSynthesizer } from '../examples/train-synthesizer.js';

describe.each(['wasm', 'js'] as const)('the training example (%s backend)', (backend) => {
  it('learns the permutation: the loss falls to a small fraction of where it started', async () => {
    const attn = await createAttention({ backend });
    const { losses, permutation, learned } = await trainSynthesizer({ attn, steps: 60 });
    expect(losses[0]).toBeGreaterThan(0.5); // uniform attention: about 1 - 1/N
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] / 20);
    // the loss falls over the run, not just at one step
    expect(Math.max(...losses.slice(-10))).toBeLessThan(Math.min(...losses.slice(0, 10)));
    expect(learned).toEqual(permutation);
  });

  it('learns to attend the marked token: dq and dk train the projections', async () => {
    const attn = await createAttention({ backend });
    const losses = await trainMarkedToken({ attn, steps: 40 });
    expect(losses[0]).toBeGreaterThan(0.5); // attention spread over N random values: about 1
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] / 50);
    expect(Math.max(...losses.slice(-10))).toBeLessThan(Math.min(...losses.slice(0, 5)));
  });
});
