// attn.recurrent (SPEC "Recurrent linear attention"): the chunked SIMD kernels against the
// float64 token-by-token recurrence (the JS backend), the pool's bits, the 'bnhd' layout,
// chaining through the state, recurrentState's steps, weights(), float32 drift at N = 65536,
// and the errors of bad input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention, type RecurrentOptions, type Tensor } from '../dist/index.js';
import { bytes } from './backends.js';
import { Rng } from '../dist/prng.js';

let wasm: Attention;
let js: Attention;
let pool: Attention;
beforeAll(async () => {
  wasm = await createAttention({ backend: 'wasm', threads: 1 });
  js = await createAttention({ backend: 'js' });
  pool = await createAttention({ backend: 'wasm', threads: 2 });
});
afterAll(() => pool.dispose());

type Rule = RecurrentOptions['rule'];
const RULES: Rule[] = ['linear', 'gated', 'delta', 'gatedDelta'];
const gated = (rule: Rule) => rule === 'gated' || rule === 'gatedDelta';
const delta = (rule: Rule) => rule === 'delta' || rule === 'gatedDelta';

function tensor(dims: number[], seed: number, draw: (rng: Rng) => number = (rng) => rng.normal()): Tensor {
  const rng = new Rng(seed);
  return { data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => draw(rng)), dims };
}

/** Rows of the last axis scaled to unit length (delta rules are contractive with unit keys). */
function unitRows(t: Tensor): Tensor {
  const D = t.dims[t.dims.length - 1];
  const data = t.data.slice();
  for (let r = 0; r < data.length / D; r++) {
    const norm = Math.hypot(...data.subarray(r * D, (r + 1) * D)) || 1;
    for (let d = 0; d < D; d++) data[r * D + d] /= norm;
  }
  return { data, dims: t.dims };
}

interface Case {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  options: RecurrentOptions;
}

/** A call of `rule` on [B, H, N, D] / [B, Hkv, N, D] / [B, Hkv, N, Dv], decay per head or per key dim. */
function makeCase(rule: Rule, [B, H, Hkv, N, D, Dv]: number[], perDim: boolean, seed: number, withState = true): Case {
  const options: RecurrentOptions = { rule };
  if (gated(rule)) options.decay = tensor(perDim ? [B, Hkv, N, D] : [B, Hkv, N], seed + 3, (rng) => -0.5 * rng.uniform());
  if (delta(rule)) options.beta = tensor([B, Hkv, N], seed + 4, (rng) => rng.uniform());
  if (withState) options.initialState = tensor([B, Hkv, D, Dv], seed + 5, (rng) => 0.3 * rng.normal());
  return { q: tensor([B, H, N, D], seed), k: unitRows(tensor([B, Hkv, N, D], seed + 1)), v: tensor([B, Hkv, N, Dv], seed + 2), options };
}

/** The worst `|got - want| / max(1, |want|)`, Infinity for NaN or a length mismatch. */
function worst(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let w = got.length === want.length ? 0 : Infinity;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    if (!(e <= w)) w = Number.isNaN(e) ? Infinity : e;
  }
  return w;
}

// sizes [B, H, Hkv, N, D, Dv]: grouped heads, N across chunk edges (64 and 16), D and Dv not multiples of 4
const SHAPES = [
  [1, 1, 1, 1, 4, 4],
  [2, 2, 2, 37, 7, 5],
  [1, 4, 1, 130, 16, 9],
  [2, 6, 3, 200, 33, 12],
  [1, 2, 2, 64, 64, 64],
];
const VARIANTS = RULES.flatMap((rule) => (gated(rule) ? [[rule, false], [rule, true]] : [[rule, false]]) as [Rule, boolean][]);

describe('recurrent: the chunked SIMD kernel against the float64 recurrence', () => {
  describe.each(VARIANTS)('%s (decay per key dim: %s)', (rule, perDim) => {
    it.each(SHAPES)('[B, H, Hkv, N, D, Dv] = [%i, %i, %i, %i, %i, %i]', async (...shape) => {
      const c = makeCase(rule, shape, perDim, shape.reduce((a, b) => a * 31 + b, 7));
      const want = js.recurrent(c.q, c.k, c.v, c.options);
      const got = wasm.recurrent(c.q, c.k, c.v, c.options);
      expect(got.dims).toEqual([shape[0], shape[1], shape[3], shape[5]]);
      expect(got.state.dims).toEqual([shape[0], shape[2], shape[4], shape[5]]);
      expect(worst(got.data, want.data)).toBeLessThanOrEqual(1e-4);
      expect(worst(got.state.data, want.state.data)).toBeLessThanOrEqual(1e-4);
      // the pool: one job per (batch, kv head), the same bits
      const pooled = await pool.runRecurrent(c.q, c.k, c.v, c.options);
      expect(bytes(pooled.data)).toEqual(bytes(got.data));
      expect(bytes(pooled.state.data)).toEqual(bytes(got.state.data));
      expect(wasm.memory.inUse).toBe(0);
      expect(pool.memory.inUse).toBe(0);
    });
  });

  it('equals the grouped-query call with k, v, decay and beta repeated to H heads', () => {
    const c = makeCase('gatedDelta', [1, 4, 2, 50, 8, 8], true, 5);
    const repeat = (t: Tensor, width: number): Tensor => {
      const [B, Hkv, N] = t.dims;
      const data = new Float32Array(t.data.length * 2);
      for (let b = 0; b < B; b++) for (let h = 0; h < 2 * Hkv; h++) data.set(t.data.subarray((b * Hkv + (h >> 1)) * N * width, (b * Hkv + (h >> 1) + 1) * N * width), (b * 2 * Hkv + h) * N * width);
      return { data, dims: [B, 2 * Hkv, ...t.dims.slice(2)] };
    };
    const o = c.options;
    const repeated = { rule: o.rule, decay: repeat(o.decay!, 8), beta: repeat(o.beta!, 1) };
    for (const attn of [wasm, js]) {
      const grouped = attn.recurrent(c.q, c.k, c.v, { ...o, initialState: undefined });
      const full = attn.recurrent(c.q, repeat(c.k, 8), repeat(c.v, 8), repeated);
      expect(worst(grouped.data, full.data)).toBeLessThanOrEqual(1e-6);
    }
  });

  it("reads layout 'bnhd' in place: the bhnd call transposed, decay and beta as [B, N, Hkv(, D)]", () => {
    const c = makeCase('gatedDelta', [2, 4, 2, 70, 8, 6], true, 9);
    const swap = (t: Tensor): Tensor => {
      const [B, X, Y, ...rest] = t.dims;
      const width = rest.reduce((a, b) => a * b, 1);
      const data = new Float32Array(t.data.length);
      for (let b = 0; b < B; b++) for (let x = 0; x < X; x++) for (let y = 0; y < Y; y++) data.set(t.data.subarray(((b * X + x) * Y + y) * width, ((b * X + x) * Y + y + 1) * width), ((b * Y + y) * X + x) * width);
      return { data, dims: [B, Y, X, ...rest] };
    };
    for (const attn of [wasm, js]) {
      const bhnd = attn.recurrent(c.q, c.k, c.v, c.options);
      const o = c.options;
      const bnhd = attn.recurrent(swap(c.q), swap(c.k), swap(c.v), { ...o, decay: swap(o.decay!), beta: { data: swap({ data: o.beta!.data, dims: [...o.beta!.dims, 1] }).data, dims: [2, 70, 2] }, layout: 'bnhd' });
      expect(bnhd.dims).toEqual([2, 70, 4, 6]);
      expect(worst(bnhd.data, swap(bhnd).data)).toBeLessThanOrEqual(attn === js ? 0 : 1e-6);
      expect(bytes(bnhd.state.data)).toEqual(bytes(bhnd.state.data));
    }
  });

  it('takes ranks 2 and 3 (B = 1, H = 1) and gives the state in the same rank', () => {
    const c = makeCase('delta', [1, 1, 1, 40, 8, 4], false, 3);
    const r2 = (t: Tensor) => ({ data: t.data, dims: t.dims.slice(2) });
    const four = wasm.recurrent(c.q, c.k, c.v, c.options);
    const o = c.options;
    const two = wasm.recurrent(r2(c.q), r2(c.k), r2(c.v), { ...o, beta: { data: o.beta!.data, dims: [40] }, initialState: r2(o.initialState!) });
    expect(two.dims).toEqual([40, 4]);
    expect(two.state.dims).toEqual([8, 4]);
    expect(bytes(two.data)).toEqual(bytes(four.data));
    const three = wasm.recurrent({ data: c.q.data, dims: [1, 40, 8] }, { data: c.k.data, dims: [1, 40, 8] }, { data: c.v.data, dims: [1, 40, 4] }, { ...o, beta: { data: o.beta!.data, dims: [1, 40] } });
    expect(three.state.dims).toEqual([1, 8, 4]);
    expect(bytes(three.data)).toEqual(bytes(four.data));
  });

  it('chains: the state of the first part as the initial state of the second gives the whole call', () => {
    const N = 150;
    const cut = 77; // not at a chunk edge
    for (const [rule, perDim] of VARIANTS) {
      const c = makeCase(rule, [1, 1, 1, N, 16, 8], perDim, 21);
      const part = (t: Tensor | undefined, from: number, to: number): Tensor | undefined => {
        if (!t) return undefined;
        const [B, H, , ...rest] = t.dims;
        const width = rest.reduce((a, b) => a * b, 1);
        const data = new Float32Array(B * H * (to - from) * width);
        for (let bh = 0; bh < B * H; bh++) data.set(t.data.subarray((bh * N + from) * width, (bh * N + to) * width), bh * (to - from) * width);
        return { data, dims: [B, H, to - from, ...rest] };
      };
      const o = c.options;
      const call = (from: number, to: number, initialState: Tensor | undefined) =>
        wasm.recurrent(part(c.q, from, to)!, part(c.k, from, to)!, part(c.v, from, to)!, { rule, decay: part(o.decay, from, to), beta: part(o.beta, from, to), initialState });
      const whole = call(0, N, o.initialState);
      const first = call(0, cut, o.initialState);
      const second = call(cut, N, first.state);
      expect(worst([...first.data, ...second.data], whole.data)).toBeLessThanOrEqual(1e-5);
      expect(worst(second.state.data, whole.state.data)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('keeps strong, per-key-dim, positive and -Infinity decays finite where the math is (no exp(G) / exp(G\') overflow)', () => {
    const [B, H, N, D] = [1, 1, 150, 8];
    const shapes: [string, (rng: Rng) => number][] = [
      ['strong', (rng) => -60 * rng.uniform()],
      ['mixed signs', (rng) => 0.2 * rng.normal()],
      ['resets', (rng) => (rng.uniform() < 0.05 ? -Infinity : -0.05)],
    ];
    for (const rule of ['gated', 'gatedDelta'] as const) {
      for (const [, draw] of shapes) {
        for (const perDim of [false, true]) {
          const c = makeCase(rule, [B, H, H, N, D, D], perDim, 33, false);
          const options = { ...c.options, decay: tensor(perDim ? [B, H, N, D] : [B, H, N], 34, draw) };
          const want = js.recurrent(c.q, c.k, c.v, options);
          const got = wasm.recurrent(c.q, c.k, c.v, options);
          expect(want.data.every(Number.isFinite)).toBe(true);
          expect(worst(got.data, want.data)).toBeLessThanOrEqual(1e-4);
          expect(worst(got.state.data, want.state.data)).toBeLessThanOrEqual(1e-4);
        }
      }
    }
  });
});

describe('recurrent at N = 65536: float32 drift stays controlled (D = 16, one head)', () => {
  it.each(VARIANTS)('%s (per key dim: %s)', (rule, perDim) => {
    const N = 65536;
    const c = makeCase(rule, [1, 1, 1, N, 16, 16], perDim, 77, false);
    // gentle decays, so that the state remembers thousands of tokens
    if (c.options.decay) c.options.decay = tensor(c.options.decay.dims as number[], 78, (rng) => -0.002 * rng.uniform());
    const want = js.recurrent(c.q, c.k, c.v, c.options);
    const got = wasm.recurrent(c.q, c.k, c.v, c.options);
    // the linear rule's state is a sum of 65536 terms: relative to its size
    const largest = (x: Float32Array) => x.reduce((m, y) => Math.max(m, Math.abs(y)), 1);
    let err = 0;
    for (let i = 0; i < want.data.length; i++) err = Math.max(err, Math.abs(got.data[i] - want.data[i]));
    expect(err / largest(want.data)).toBeLessThanOrEqual(1e-4);
    expect(worst(got.state.data, want.state.data)).toBeLessThanOrEqual(1e-4 * largest(want.state.data));
  }, 60_000);
});

describe('recurrentState: token by token', () => {
  it.each(VARIANTS)('%s (per key dim: %s): steps equal the chunked call, on both backends', (rule, perDim) => {
    const [B, H, Hkv, N, D, Dv] = [2, 4, 2, 70, 8, 5];
    const c = makeCase(rule, [B, H, Hkv, N, D, Dv], perDim, 41);
    const o = c.options;
    const whole = wasm.recurrent(c.q, c.k, c.v, o);
    const token = (t: Tensor, n: number, heads: number, width: number) => {
      const data = new Float32Array(B * heads * width);
      for (let bh = 0; bh < B * heads; bh++) data.set(t.data.subarray((bh * N + n) * width, (bh * N + n + 1) * width), bh * width);
      return data;
    };
    for (const attn of [wasm, js]) {
      const state = attn.recurrentState({ rule, batch: B, heads: H, kvHeads: Hkv, dim: D, valueDim: Dv, initialState: o.initialState });
      const rows = new Float32Array(B * H * N * Dv);
      for (let n = 0; n < N; n++) {
        const inputs = {
          decay: o.decay && { data: token(o.decay, n, Hkv, perDim ? D : 1), dims: perDim ? [B, Hkv, D] : [B, Hkv] },
          beta: o.beta && token(o.beta, n, Hkv, 1),
        };
        const out = state.step(token(c.q, n, H, D), { data: token(c.k, n, Hkv, D), dims: [B, Hkv, D] }, token(c.v, n, Hkv, Dv), inputs);
        expect(out.dims).toEqual([B, H, Dv]);
        for (let bh = 0; bh < B * H; bh++) rows.set(out.data.subarray(bh * Dv, (bh + 1) * Dv), (bh * N + n) * Dv);
      }
      expect(state.position).toBe(N);
      expect(worst(rows, whole.data)).toBeLessThanOrEqual(1e-5);
      expect(worst(state.state().data, whole.state.data)).toBeLessThanOrEqual(1e-5);
      state.reset();
      expect(state.position).toBe(0);
      expect(bytes(state.state().data)).toEqual(bytes(o.initialState!.data));
      state.dispose();
    }
    expect(wasm.memory.inUse).toBe(0);
  });

  it('rejects bad steps by name and keeps working', () => {
    for (const attn of [wasm, js]) {
      const state = attn.recurrentState({ rule: 'gated', heads: 2, dim: 4 });
      const q = new Float32Array(8);
      expect(() => state.step(q, q, q)).toThrow(/^inputs\.decay: rule 'gated' decays the state/);
      expect(() => state.step(q, q, q, { decay: new Float32Array(3) })).toThrow(/^inputs\.decay: expected 2 values \(\[B, Hkv\] \(per head\) or \[B, Hkv, D\] \(per key dim\)/);
      expect(() => state.step(q, q, q, { decay: new Float32Array(2), beta: new Float32Array(2) })).toThrow(/^inputs\.beta: only the rules 'delta' and 'gatedDelta' take beta/);
      expect(() => state.step(new Float32Array(4), q, q, { decay: new Float32Array(2) })).toThrow(/^q: expected 8 values \(\[B, H, D\] = \[1, 2, 4\]\), received 4/);
      expect(() => state.step(q, q, q, { decay: new Float32Array(2), gate: 1 } as never)).toThrow(/^inputs\.gate: unknown option/);
      expect(state.position).toBe(0);
      expect(state.step(q, q, q, { decay: new Float32Array(2) }).dims).toEqual([1, 2, 4]);
      state.dispose();
    }
    expect(() => wasm.recurrentState({ rule: 'delta', dim: 4, heads: 3, kvHeads: 2 })).toThrow(/^options\.kvHeads: the query heads H must be a multiple of the kv heads Hkv, received H = 3, Hkv = 2/);
    expect(() => wasm.recurrentState({ dim: 4 } as never)).toThrow(/^options\.rule: required option is missing/);
    expect(() => wasm.recurrentState({ rule: 'linear', dim: 4, valuedim: 2 } as never)).toThrow(/^options\.valuedim: unknown option 'valuedim' \(did you mean 'valueDim'\?/);
    expect(() => wasm.recurrentState({ rule: 'linear', dim: 4, initialState: tensor([1, 1, 4, 3], 1) })).toThrow(/^options\.initialState\.dims: expected \[B, Hkv, D, Dv\] = \[1, 1, 4, 4\]/);
    expect(wasm.memory.inUse).toBe(0);
  });

  it('holds the same memory at position 1,000 and 60,000 (O(1) per token; its time per step is in the bench)', () => {
    const [H, D] = [8, 64];
    const options = { rule: 'gatedDelta' as const, heads: H, dim: D };
    const q = tensor([1, H, D], 1).data;
    const k = unitRows(tensor([1, H, D], 2)).data;
    const inputs = { decay: new Float32Array(H).fill(-0.01), beta: new Float32Array(H).fill(0.5) };
    const state = wasm.recurrentState(options);
    while (state.position < 1000) state.step(q, k, q, inputs);
    const held = wasm.memory.inUse;
    while (state.position < 60_000) state.step(q, k, q, inputs);
    expect(wasm.memory.inUse).toBe(held);
    state.dispose();
  }, 120_000);
});

describe('recurrentWeights', () => {
  it.each(VARIANTS.filter(([rule]) => !delta(rule)))('%s (per key dim: %s): P v is the output', (rule, perDim) => {
    const c = makeCase(rule, [2, 4, 2, 40, 8, 5], perDim, 51, false);
    const P = wasm.recurrentWeights(c.q, c.k, c.options);
    expect(P.dims).toEqual([2, 4, 40, 40]);
    expect(bytes(js.recurrentWeights(c.q, c.k, c.options).data)).toEqual(bytes(P.data));
    const out = js.recurrent(c.q, c.k, c.v, c.options);
    const [B, H, N, Dv, Hkv] = [2, 4, 40, 5, 2];
    let err = 0;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < N; i++) {
          for (let c2 = 0; c2 < Dv; c2++) {
            let sum = 0;
            for (let j = 0; j < N; j++) sum += P.data[((b * H + h) * N + i) * N + j] * c.v.data[((b * Hkv + Math.floor(h / 2)) * N + j) * Dv + c2];
            err = Math.max(err, Math.abs(sum - out.data[((b * H + h) * N + i) * Dv + c2]));
          }
          // causal: no weight on later tokens
          for (let j = i + 1; j < N; j++) expect(P.data[((b * H + h) * N + i) * N + j]).toBe(0);
        }
      }
    }
    expect(err).toBeLessThanOrEqual(1e-5);
  });

  it('is a TypeError for the delta rules and a RangeError with an initial state', () => {
    const c = makeCase('delta', [1, 1, 1, 8, 4, 4], false, 1);
    expect(() => wasm.recurrentWeights(c.q, c.k, c.options)).toThrow(TypeError);
    expect(() => wasm.recurrentWeights(c.q, c.k, c.options)).toThrow(/^options\.rule: weights\(\) exist for the rules whose output is linear in v/);
    const g = makeCase('gated', [1, 1, 1, 8, 4, 4], false, 1);
    expect(() => wasm.recurrentWeights(g.q, g.k, g.options)).toThrow(/^options\.initialState: weights\(\) are those of a call that starts from zeros/);
  });
});

describe('recurrent rejects bad input by name, and the instance keeps working', () => {
  const c = makeCase('gatedDelta', [2, 4, 2, 10, 8, 4], false, 61);
  const o = c.options;
  const rejected: [string, () => Case, typeof TypeError | typeof RangeError, RegExp][] = [
    ['a missing rule', () => ({ ...c, options: { ...o, rule: undefined } as never }), TypeError, /^options\.rule: required option is missing; expected one of 'linear', 'gated', 'delta', 'gatedDelta'/],
    ['an unknown rule', () => ({ ...c, options: { ...o, rule: 'gated_delta' as never } }), RangeError, /^options\.rule: expected one of .*, received "gated_delta"/],
    ['a misspelt option', () => ({ ...c, options: { ...o, initial_state: o.initialState } as never }), TypeError, /^options\.initial_state: unknown option 'initial_state' \(did you mean 'initialState'\?/],
    ['causal (the recurrence always is)', () => ({ ...c, options: { ...o, causal: true } as never }), TypeError, /^options\.causal: unknown option/],
    ['a gated rule without decay', () => ({ ...c, options: { ...o, decay: undefined } }), TypeError, /^options\.decay: rule 'gatedDelta' decays the state and needs a log-space decay tensor, received undefined/],
    ['a decay given to an ungated rule', () => ({ ...c, options: { ...o, rule: 'delta' } }), RangeError, /^options\.decay: only the rules 'gated' and 'gatedDelta' decay the state, received a decay with rule 'delta'/],
    ['a delta rule without beta', () => ({ ...c, options: { ...o, beta: undefined } }), TypeError, /^options\.beta: rule 'gatedDelta' needs the write strength beta/],
    ['a beta given to a rule without delta', () => ({ ...c, options: { ...o, rule: 'gated' } }), RangeError, /^options\.beta: only the rules 'delta' and 'gatedDelta' take beta/],
    ['a decay of other dims', () => ({ ...c, options: { ...o, decay: tensor([2, 4, 10], 1) } }), RangeError, /^options\.decay\.dims: expected \[2, 2, 10\] \(per head\) or \[2, 2, 10, 8\] \(per key dim\), k's dims without or with its last axis, received \[2, 4, 10\]/],
    ['a beta of other dims', () => ({ ...c, options: { ...o, beta: tensor([2, 2, 9], 1) } }), RangeError, /^options\.beta\.dims: expected \[2, 2, 10\] \(or \[2, 1, 10\], one rate shared by the kv heads\)/],
    ['a decay that is not float32', () => ({ ...c, options: { ...o, decay: { data: new Float64Array(40), dims: [2, 2, 10] } as never } }), TypeError, /^options\.decay\.data: expected a Float32Array/],
    ['an initial state of other dims', () => ({ ...c, options: { ...o, initialState: tensor([2, 4, 8, 4], 1) } }), RangeError, /^options\.initialState\.dims: expected \[B, Hkv, D, Dv\] = \[2, 2, 8, 4\], received \[2, 4, 8, 4\]/],
    ['keys of another length', () => ({ ...c, k: tensor([2, 2, 9, 8], 1), v: tensor([2, 2, 9, 4], 1) }), RangeError, /^k\.dims: recurrent attention reads one key per query position, so Nk must equal Nq = 10, received Nk = 9/],
    ['H not a multiple of Hkv', () => ({ ...c, k: tensor([2, 3, 10, 8], 1), v: tensor([2, 3, 10, 4], 1) }), RangeError, /^k\.dims: q's head count H must be a multiple of k's head count Hkv/],
    ['values of another length', () => ({ ...c, v: tensor([2, 2, 11, 4], 1) }), RangeError, /^v\.dims: key count Nk must match k/],
    ['a scale that float32 cannot hold', () => ({ ...c, options: { ...o, scale: 1e300 } }), RangeError, /^options\.scale: expected a number that float32 holds/],
    ['q not a tensor', () => ({ ...c, q: [1, 2] as never }), TypeError, /^q\.data: expected a Float32Array/],
  ];
  it.each(rejected)('%s', (_name, make, type, message) => {
    for (const attn of [wasm, js]) {
      const bad = make();
      const reference = attn.recurrent(c.q, c.k, c.v, o).data;
      const inUse = attn.memory.inUse;
      expect(() => attn.recurrent(bad.q, bad.k, bad.v, bad.options)).toThrow(type);
      expect(() => attn.recurrent(bad.q, bad.k, bad.v, bad.options)).toThrow(message);
      expect(attn.memory.inUse).toBe(inUse);
      expect(bytes(attn.recurrent(c.q, c.k, c.v, o).data)).toEqual(bytes(reference));
    }
  });

  it('refuses a work block that WebAssembly memory cannot hold with a RangeError naming the inputs', () => {
    // 2^20 query heads on one kv head: the kernel keeps a chunk of every query head of the group
    const H = 2 ** 20;
    const q = { data: new Float32Array(H * 4), dims: [1, H, 1, 4] };
    const kv = { data: new Float32Array(4), dims: [1, 1, 1, 4] };
    expect(() => wasm.recurrent(q, kv, kv, { rule: 'linear' })).toThrow(RangeError);
    expect(() => wasm.recurrent(q, kv, kv, { rule: 'linear' })).toThrow(/^q\.dims, k\.dims, v\.dims: the kernel's work block for D = 4, Dv = 4 and 1048576 query heads per kv head needs \d+ bytes/);
    expect(wasm.memory.inUse).toBe(0);
    // the float64 reference keeps one state per kv head and runs it
    expect(js.recurrent(q, kv, kv, { rule: 'linear' }).dims).toEqual([1, H, 1, 4]);
  });

  it('rejects the same on the pool', async () => {
    await expect(pool.runRecurrent(c.q, c.k, c.v, { ...o, decay: undefined })).rejects.toThrow(/^options\.decay: rule 'gatedDelta' decays the state/);
    expect(pool.memory.inUse).toBe(0);
  });
});
