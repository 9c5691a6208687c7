// Property suite, valid calls: for every registered variant and random valid
// problems with awkward shapes, the SIMD kernels (one thread, and the pool
// through run()) agree with the float64 reference, run() gives the
// synchronous bits, weights() is the matrix the output applies, mask() its
// pattern, and no call leaves memory in use.
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { variantNames, type Attention, type VariantName } from '../dist/index.js';
import { lengthOf, takesWeights, validCall, type Call } from './arbitraries.js';
import { MAX_ROW_WEIGHT, rowWeight, wellConditioned } from './conditioning.js';
import { FUZZING, fuzzParams } from './fuzz.js';
import { maxAbsDiff } from './golden.js';
import { bytes, comparedBackends } from './backends.js';

let one: Attention;
let two: Attention;
let js: Attention;
beforeAll(async () => ({ one, two, js } = await comparedBackends()));
afterAll(() => two.dispose());

const patternVariants = new Set<VariantName>(['local', 'strided', 'global', 'sparse']);

/** `out = P v`, per batch and head, in float64 (v `[B, H, Nk, Dv]` as flat data). */
function applyWeights(P: Float32Array, v: Float32Array, BH: number, Nq: number, Nk: number, Dv: number): Float64Array {
  const out = new Float64Array(BH * Nq * Dv);
  for (let bh = 0; bh < BH; bh++) {
    for (let i = 0; i < Nq; i++) {
      for (let j = 0; j < Nk; j++) {
        const p = P[(bh * Nq + i) * Nk + j];
        if (p !== 0) for (let d = 0; d < Dv; d++) out[(bh * Nq + i) * Dv + d] += p * v[(bh * Nk + j) * Dv + d];
      }
    }
  }
  return out;
}

/** The keys Nk and value width Dv of a call, in either layout. */
function keysOf(call: Call): [number, number] {
  return [lengthOf(call, call.v), call.v.dims[call.v.dims.length - 1]];
}

/** The call with `keyPadding` cut to batch 0, as mask() (one batch) takes it. */
function maskOptions(call: Call): Record<string, unknown> {
  const { options } = call;
  const pad = options.keyPadding as Uint8Array | undefined;
  const [Nk] = keysOf(call);
  return pad ? { ...options, keyPadding: pad.subarray(0, Nk) } : options;
}

/**
 * `out = P v` holds for every variant but compressed, whose weights are over
 * slots (and synthesizer's weights() takes B, H and Nk from its parameters,
 * not v); checked here for v laid out as `[B, H, Nk, Dv]` with q's heads.
 */
function appliesWeights(call: Call, P: { dims: number[] }, out: Float32Array): boolean {
  const [Nk, Dv] = keysOf(call);
  const heads = (x: { dims: number[] }) => (x.dims.length > 2 ? x.dims[x.dims.length - 3] : 1);
  const plain = call.options.layout !== 'bnhd' && (call.q === null || heads(call.q) === heads(call.v));
  return plain && takesWeights(call) && call.name !== 'compressed' && P.dims[3] === Nk && P.dims[0] * P.dims[1] * P.dims[2] * Dv === out.length;
}

/** The reference's weights, or (where there are none) a stand-in of the right size whose rows sum to 1. */
function weightsOf(call: Call): { data: Float32Array; dims: number[] } {
  if (takesWeights(call)) {
    const { data, dims } = js.weights(call.name, call.q, call.k, call.options);
    return { data, dims: [...dims] };
  }
  const [Nk, Dv] = keysOf(call);
  const out = js.apply(call.name, call.q, call.k, call.v, call.options);
  const rows = out.data.length / Dv;
  return { data: new Float32Array(rows * Nk).fill(1 / Nk), dims: [1, 1, rows, Nk] };
}

describe('property: valid calls agree with the float64 reference', () => {
  for (const name of variantNames) {
    test.prop([validCall(name)], fuzzParams(20))(name, async (call) => {
      fc.pre(wellConditioned(call));
      const { q, k, v, options } = call;
      const want = js.apply(name, q, k, v, options);
      const got = one.apply(name, q, k, v, options);
      expect(got.dims).toEqual(want.dims);
      const weights = weightsOf(call);
      const [B, H, Nq, Nk] = weights.dims;
      const weight = rowWeight(weights.data, Nk);
      fc.pre(weight <= MAX_ROW_WEIGHT);
      expect(maxAbsDiff(got.data, want.data)).toBeLessThanOrEqual(1e-4 * weight);

      // run(): the same bits on the pool and on one thread
      expect(bytes((await two.run(name, q, k, v, options)).data)).toEqual(bytes(got.data));
      expect(bytes((await one.run(name, q, k, v, options)).data)).toEqual(bytes(got.data));

      // weights(): the float64 reference on both backends, the matrix the output applies
      if (takesWeights(call)) expect(bytes(one.weights(name, q, k, options).data)).toEqual(bytes(weights.data));
      if (appliesWeights(call, weights, want.data)) {
        const applied = applyWeights(weights.data, v.data, B * H, Nq, Nk, v.dims[v.dims.length - 1]);
        expect(maxAbsDiff(applied, want.data)).toBeLessThanOrEqual(1e-5 * weight);
      }

      // mask(): the pattern of batch 0, head 0 (key padding included)
      if (patternVariants.has(name)) {
        const mask = one.mask(name, Nq, Nk, maskOptions(call));
        expect(js.mask(name, Nq, Nk, maskOptions(call))).toEqual(mask);
        for (let t = 0; t < Nq * Nk; t++) if (weights.data[t] > 0) expect(mask[t]).toBe(1);
        for (let t = 0; t < Nq * Nk; t++) if (mask[t] === 0) expect(weights.data[t]).toBe(0);
      }
      expect(one.memory.inUse).toBe(0);
      expect(two.memory.inUse).toBe(0);
    }, FUZZING ? 3_600_000 : 60_000);
  }
});
