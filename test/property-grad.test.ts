// Property suite, gradients: on drawn valid calls of every variant (awkward small shapes, every
// option form, grouped-query heads, mask / bias / softcap, 'bnhd'), the float64 reference
// backward agrees with central finite differences of the forward reference at sampled
// coordinates of q, k, v and of every parameter tensor (test/grad-fd.ts, as in
// grad-reference.test.ts); the tolerance adds the float32 rounding noise of the objective,
// bounded per call: sum |out * gradOutput| 2^-24, times 1.5 / h (Richardson's weights), times 10.
// And the SIMD backward of strided self-attention, which runs by residue (src/grad/strided.ts),
// on drawn square calls: the float64 reference's gradients, and the pool's the same bits.
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { variantNames, type Attention, type Tensor } from '../dist/index.js';
import { Rng } from '../src/prng.js';
import { awkward, small, validCall, type Call } from './arbitraries.js';
import { bytes, comparedBackends } from './backends.js';
import { wellConditioned } from './conditioning.js';
import { FUZZING, fuzzParams } from './fuzz.js';
import { richardson } from './grad-fd.js';
import { flatParams } from './grad-golden.js';
import { relativeError } from './grad-simd.js';

const STEP = 1e-2;
const TOLERANCE = 1e-3;

let js: Attention;
let one: Attention;
let two: Attention;
beforeAll(async () => ({ one, two, js } = await comparedBackends()));
afterAll(() => two.dispose());

/** The tensor at a dotted `params.a.b` path of the options. */
const optionAt = (options: Record<string, unknown>, path: string): Tensor =>
  path.split('.').slice(1).reduce<unknown>((at, key) => (at as Record<string, unknown>)[key], options) as Tensor;

describe('property: the reference backward is the derivative of the reference forward', () => {
  for (const name of variantNames) {
    test.prop([validCall(name, small), fc.nat()], fuzzParams(8))(name, (call: Call, seed: number) => {
      fc.pre(wellConditioned(call));
      const out = js.apply(name, call.q, call.k, call.v, call.options);
      const rng = new Rng(seed);
      const gradOutput = { data: out.data.map(() => rng.normal()), dims: [...out.dims] };
      let noise = 0;
      for (let n = 0; n < out.data.length; n++) noise += Math.abs(out.data[n] * gradOutput.data[n]) * 2 ** -24;
      const objective = (): number => {
        const o = js.apply(name, call.q, call.k, call.v, call.options).data;
        let sum = 0;
        for (let n = 0; n < o.length; n++) sum += o[n] * gradOutput.data[n];
        return sum;
      };
      const g = js.backward(name, call.q, call.k, call.v, gradOutput, call.options);
      const checked: [string, Tensor, Float32Array][] = [];
      if (call.q && call.k && call.k.data === call.q.data && g.k) checked.push(['q and k', call.q, g.q!.data.map((x, n) => x + g.k!.data[n])]);
      else for (const input of ['q', 'k'] as const) if (call[input] && g[input]) checked.push([input, call[input]!, g[input]!.data]);
      checked.push(['v', call.v, g.v!.data]);
      for (const [path, grad] of flatParams(g.params)) checked.push([path, optionAt(call.options, path), grad.data]);
      for (const [tensor, x, grad] of checked) {
        expect(grad.length, tensor).toBe(x.data.length);
        for (let sample = 0; sample < 2 && x.data.length > 0; sample++) {
          const index = rng.int(x.data.length);
          const bound = (fd: number) => TOLERANCE * (1 + Math.abs(fd)) + (10 * 1.5 * noise) / STEP;
          const fd = richardson(objective, x.data, index, STEP, bound, noise);
          if (fd === null) continue; // not smooth there
          expect(Math.abs(fd - grad[index]), `${tensor}[${index}]: finite difference ${fd}, backward ${grad[index]}`).toBeLessThanOrEqual(bound(fd));
        }
      }
    }, FUZZING ? 3_600_000 : 60_000);
  }
});

describe('property: the SIMD backward of strided self-attention equals the reference backward', () => {
  test.prop([validCall('strided', awkward, true), fc.nat()], fuzzParams(100))('strided, Nq = Nk', async (call: Call, seed: number) => {
    fc.pre(wellConditioned(call));
    const out = js.apply('strided', call.q, call.k, call.v, call.options);
    const rng = new Rng(seed);
    const gradOutput = { data: out.data.map(() => rng.normal()), dims: [...out.dims] };
    const want = js.backward('strided', call.q, call.k, call.v, gradOutput, call.options);
    const got = one.backward('strided', call.q, call.k, call.v, gradOutput, call.options);
    const pooled = await two.runBackward('strided', call.q, call.k, call.v, gradOutput, call.options);
    for (const input of ['q', 'k', 'v'] as const) {
      expect(relativeError(got[input]!.data, want[input]!.data), input).toBeLessThanOrEqual(1e-4);
      expect(bytes(pooled[input]!.data), input).toEqual(bytes(got[input]!.data));
    }
    expect([one.memory.inUse, two.memory.inUse]).toEqual([0, 0]);
  }, FUZZING ? 3_600_000 : 60_000);
});
