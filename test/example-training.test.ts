// examples/train-synthesizer.ts: a few dozen SGD steps through attn.synthesizer and
// attn.backward (on both backends) bring the loss down by far and recover the permutation.
import { describe, expect, it } from 'vitest';
import { createAttention } from '../dist/index.js';
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
});
