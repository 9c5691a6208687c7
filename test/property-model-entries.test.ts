// Property suite of the entry points of "attention as models use it": onnxAttention and kvCache.
// Valid calls agree with the float64 JS backend; hostile attribute and option values throw a
// TypeError / RangeError naming them (or mean what the operator defines), memory returns to its
// level, and the next valid call is exact.
import { fc, test } from '@fast-check/vitest';
import { beforeAll, describe, expect } from 'vitest';
import { createAttention, type Attention } from '../dist/index.js';
import { fuzzParams } from './fuzz.js';
import { maxAbsDiff } from './golden.js';
import { randn } from './random.js';

let wasm: Attention;
let js: Attention;
beforeAll(async () => {
  wasm = await createAttention({ backend: 'wasm', threads: 1 });
  js = await createAttention({ backend: 'js' });
});

const float32 = (dims: number[], seed: number) => ({ type: 'float32', ...randn(dims, seed) });

/** A valid ONNX Attention node: 3D or 4D, grouped-query heads, past, a bool or float mask, causal, scale, softcap. */
const onnxCall = fc
  .record({
    B: fc.integer({ min: 1, max: 2 }),
    Hkv: fc.integer({ min: 1, max: 3 }),
    group: fc.integer({ min: 1, max: 3 }),
    Sq: fc.integer({ min: 1, max: 12 }),
    Skv: fc.integer({ min: 1, max: 12 }),
    P: fc.constantFrom(0, 0, 3),
    D: fc.integer({ min: 1, max: 9 }),
    Dv: fc.integer({ min: 1, max: 9 }),
    threeD: fc.boolean(),
    mask: fc.constantFrom('none', 'bool', 'float'),
    is_causal: fc.constantFrom(0, 1),
    scale: fc.option(fc.double({ min: 0.05, max: 1.5, noNaN: true }), { nil: undefined }),
    softcap: fc.option(fc.double({ min: 0.5, max: 30, noNaN: true }), { nil: undefined }),
    seed: fc.nat({ max: 2 ** 20 }),
  })
  .map((c) => {
    const Hq = c.Hkv * c.group;
    const T = c.P + c.Skv;
    const inputs: Record<string, unknown> = c.threeD
      ? { Q: float32([c.B, c.Sq, Hq * c.D], c.seed), K: float32([c.B, c.Skv, c.Hkv * c.D], c.seed + 1), V: float32([c.B, c.Skv, c.Hkv * c.Dv], c.seed + 2) }
      : { Q: float32([c.B, Hq, c.Sq, c.D], c.seed), K: float32([c.B, c.Hkv, c.Skv, c.D], c.seed + 1), V: float32([c.B, c.Hkv, c.Skv, c.Dv], c.seed + 2) };
    if (c.P > 0) Object.assign(inputs, { past_key: float32([c.B, c.Hkv, c.P, c.D], c.seed + 3), past_value: float32([c.B, c.Hkv, c.P, c.Dv], c.seed + 4) });
    if (c.mask === 'bool') inputs.attn_mask = { type: 'bool', dims: [c.Sq, T], data: Uint8Array.from({ length: c.Sq * T }, (_, n) => (n * 7 + c.seed) % 4 === 0 ? 0 : 1) };
    if (c.mask === 'float') inputs.attn_mask = float32([Hq, c.Sq, T], c.seed + 5);
    const attributes: Record<string, number> = { is_causal: c.is_causal };
    if (c.threeD) Object.assign(attributes, { q_num_heads: Hq, kv_num_heads: c.Hkv });
    if (c.scale !== undefined) attributes.scale = c.scale;
    if (c.softcap !== undefined) attributes.softcap = c.softcap;
    return { inputs, attributes };
  });

/** `call` either runs or throws a TypeError / RangeError naming `name`; WebAssembly memory in use is as before either way. */
function expectNamedOrValid(call: () => unknown, name: string): void {
  const before = wasm.memory.inUse;
  let error: unknown = null;
  try {
    call();
  } catch (e) {
    error = e;
  }
  if (error !== null) {
    expect(error instanceof TypeError || error instanceof RangeError, String(error)).toBe(true);
    expect((error as Error).message).toContain(name);
  }
  expect(wasm.memory.inUse).toBe(before);
}

const hostileNumbers = [NaN, Infinity, -Infinity, -2, 0.5, 2 ** 31, 1e300, '1', null, {}, [], 3n, Symbol('x')];
const attributeNames = ['is_causal', 'q_num_heads', 'kv_num_heads', 'qk_matmul_output_mode', 'scale', 'softcap', 'softmax_precision', 'left_window_size', 'right_window_size'];

describe('property: onnxAttention', () => {
  test.prop([onnxCall], fuzzParams(40))('the SIMD kernels equal the float64 reference', ({ inputs, attributes }) => {
    const got = wasm.onnxAttention(inputs as never, attributes);
    const want = js.onnxAttention(inputs as never, attributes);
    expect(got.Y.dims).toEqual(want.Y.dims);
    expect(maxAbsDiff(got.Y.data, want.Y.data)).toBeLessThanOrEqual(1e-4);
    expect(got.present_key.data).toEqual(want.present_key.data);
  });

  test.prop([onnxCall, fc.constantFrom(...attributeNames, 'is_casual'), fc.constantFrom(...hostileNumbers)], fuzzParams(60))(
    'a hostile attribute throws naming it or means what the operator says; memory and the next call are unharmed',
    ({ inputs, attributes }, name, value) => {
      expectNamedOrValid(() => wasm.onnxAttention(inputs as never, { ...attributes, [name]: value } as never), name);
      const again = wasm.onnxAttention(inputs as never, attributes);
      expect(maxAbsDiff(again.Y.data, js.onnxAttention(inputs as never, attributes).Y.data)).toBeLessThanOrEqual(1e-4);
    },
  );
});

/** A cache and a sequence of chunks appended to it, each attended right after. */
const cacheRun = fc.record({
  Hkv: fc.integer({ min: 1, max: 3 }),
  group: fc.integer({ min: 1, max: 3 }),
  D: fc.integer({ min: 1, max: 9 }),
  Dv: fc.integer({ min: 1, max: 9 }),
  chunks: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 6 }),
  window: fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
  softcap: fc.option(fc.double({ min: 0.5, max: 30, noNaN: true }), { nil: undefined }),
  seed: fc.nat({ max: 2 ** 20 }),
});

describe('property: kvCache', () => {
  test.prop([cacheRun], fuzzParams(30))('every attend equals the float64 reference cache', ({ Hkv, group, D, Dv, chunks, window, softcap, seed }) => {
    const H = Hkv * group;
    const capacity = window === undefined ? chunks.reduce((a, b) => a + b, 0) : window - 1 + Math.max(...chunks);
    const options = { heads: Hkv, dim: D, valueDim: Dv, capacity, ...(window === undefined ? {} : { window }) };
    const [ours, reference] = [wasm.kvCache(options), js.kvCache(options)];
    try {
      chunks.forEach((T, n) => {
        const [k, v, q] = [randn([1, Hkv, T, D], seed + 3 * n), randn([1, Hkv, T, Dv], seed + 3 * n + 1), randn([1, H, T, D], seed + 3 * n + 2)];
        ours.append(k, v);
        reference.append(k, v);
        const attend = { causal: true, ...(softcap === undefined ? {} : { softcap }) };
        expect(maxAbsDiff(ours.attend(q, attend).data, reference.attend(q, attend).data)).toBeLessThanOrEqual(1e-4);
      });
      expect(ours.length).toBe(chunks.reduce((a, b) => a + b, 0));
    } finally {
      ours.dispose();
      reference.dispose();
    }
  });

  test.prop([fc.constantFrom('batch', 'heads', 'dim', 'valueDim', 'capacity', 'window', 'capcity'), fc.constantFrom(...hostileNumbers)], fuzzParams(40))(
    'a hostile option throws naming it (or is a valid size); memory returns to its level',
    (name, value) => {
      expectNamedOrValid(() => wasm.kvCache({ heads: 2, dim: 4, capacity: 16, [name]: value } as never).dispose(), name);
    },
  );
});
