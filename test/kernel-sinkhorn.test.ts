// `sinkhorn` on the WebAssembly backend against the plain-JS float64 reference, and its properties through the facade.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAttention, type Attention } from '../dist/index.js';
import { readInputs } from '../dist/inputs.js';
import { Runtime } from '../dist/runtime/runtime.js';
import { sinkhorn, sinkhornKernelSortMatrices, sinkhornProfile, sinkhornSortMatrices } from '../dist/variants/sinkhorn.js';
import { maxAbsDiff } from './golden.js';
import { padding, randn, type T } from './random.js';
import { bytes } from './backends.js';

let wasm: Attention;
let js: Attention;
let runtime: Runtime;
beforeAll(async () => {
  wasm = await createAttention({ backend: 'wasm' });
  js = await createAttention({ backend: 'js' });
  runtime = await Runtime.create();
});

const noLookup = (name: string): never => {
  throw new Error(`unexpected lookup of ${name}`);
};

/** S `[B, H, nb, nb]` from the kernel and from the float64 reference. */
function sortMatrices(q: T, k: T, options: Record<string, unknown>) {
  const inputs = readInputs(sinkhorn, q, k, null, false);
  const parsed = sinkhorn.parse(inputs, options, noLookup);
  return { kernel: sinkhornKernelSortMatrices(runtime, inputs, parsed), reference: sinkhornSortMatrices(inputs, parsed) };
}

/** Output rows [from, to) of every (batch, head) of `[B, H, N, Dv]`. */
function rows(data: Float32Array, BH: number, N: number, Dv: number, from: number, to: number): Float32Array {
  const out = new Float32Array(BH * (to - from) * Dv);
  for (let bh = 0; bh < BH; bh++) out.set(data.subarray((bh * N + from) * Dv, (bh * N + to) * Dv), bh * (to - from) * Dv);
  return out;
}

describe('sinkhorn: wasm kernel vs JS reference', () => {
  const shapes = [
    // [B, H, N, D, Dv, blockSize]
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 5, 3, 1],
    [1, 1, 7, 3, 5, 1],
    [1, 1, 7, 3, 5, 7],
    [1, 2, 13, 7, 7, 13],
    [2, 3, 24, 7, 5, 4],
    [1, 2, 30, 6, 9, 5],
    [2, 1, 33, 5, 2, 3],
    [1, 1, 36, 16, 16, 1],
    [1, 2, 64, 12, 20, 8],
    [1, 1, 90, 33, 9, 9],
    [2, 2, 96, 64, 64, 16],
    [1, 1, 128, 8, 8, 64],
  ];
  for (const [B, H, N, D, Dv, b] of shapes) {
    for (const causal of [false, true]) {
      for (const padded of [false, true]) {
        it(`B=${B} H=${H} N=${N} D=${D} Dv=${Dv} b=${b} causal=${causal} padded=${padded}`, () => {
          const seed = B * 1000 + H * 100 + N + D * 13 + Dv * 7 + b * 3;
          const q = randn([B, H, N, D], seed);
          const k = randn([B, H, N, D], seed + 1);
          const v = randn([B, H, N, Dv], seed + 2);
          const options = { blockSize: b, causal, ...(padded ? { keyPadding: padding(B, N, seed + 3, 0.4) } : {}) };
          const got = wasm.sinkhorn(q, k, v, options);
          expect(got.dims).toEqual([B, H, N, Dv]);
          expect(got.data.every(Number.isFinite)).toBe(true);
          expect(maxAbsDiff(got.data, js.sinkhorn(q, k, v, options).data)).toBeLessThanOrEqual(1e-4);
        });
      }
    }
  }

  it('honours temperature, iterations (0 included) and scale, and large logits stay finite', () => {
    const q = randn([2, 2, 40, 8], 1);
    const k = randn([2, 2, 40, 8], 2);
    const v = randn([2, 2, 40, 6], 3);
    const keyPadding = padding(2, 40, 4);
    const cases = [
      { temperature: 0.2 },
      { temperature: 5, iterations: 1 },
      { iterations: 0 },
      { iterations: 0, temperature: 3, scale: 0.05 },
      { iterations: 20, temperature: 0.3 },
      { scale: 4 },
      { scale: 4, causal: true, temperature: 0.1 },
    ];
    for (const extra of cases) {
      for (const withPadding of [false, true]) {
        const options = { blockSize: 5, ...extra, ...(withPadding ? { keyPadding } : {}) };
        const got = wasm.sinkhorn(q, k, v, options);
        expect(got.data.every(Number.isFinite), JSON.stringify(extra)).toBe(true);
        expect(maxAbsDiff(got.data, js.sinkhorn(q, k, v, options).data), JSON.stringify(extra)).toBeLessThanOrEqual(1e-4);
      }
    }
  });

  it('takes given sortLogits: per batch and head, head axis 1, batch axis 1, causal', () => {
    const [B, H, N, D, b] = [2, 3, 24, 6, 4];
    const nb = N / b;
    const q = randn([B, H, N, D], 5);
    const k = randn([B, H, N, D], 6);
    const v = randn([B, H, N, 7], 7);
    const keyPadding = padding(B, N, 8, 0.4);
    for (const dims of [[B, H, nb, nb], [B, 1, nb, nb], [1, H, nb, nb], [1, 1, nb, nb]]) {
      const sortLogits = randn(dims, dims[0] * 10 + dims[1], 2);
      for (const causal of [false, true]) {
        const options = { blockSize: b, causal, keyPadding, sortLogits, temperature: 0.5 };
        const got = wasm.sinkhorn(q, k, v, options);
        expect(maxAbsDiff(got.data, js.sinkhorn(q, k, v, options).data), `${dims} causal=${causal}`).toBeLessThanOrEqual(1e-4);
      }
    }
    // head axis 1 is the same logits for every head: the same as giving them per head
    const shared = randn([B, 1, nb, nb], 9);
    const perHead = { data: new Float32Array(B * H * nb * nb), dims: [B, H, nb, nb] };
    for (let batch = 0; batch < B; batch++)
      for (let h = 0; h < H; h++) perHead.data.set(shared.data.subarray(batch * nb * nb, (batch + 1) * nb * nb), (batch * H + h) * nb * nb);
    const a = wasm.sinkhorn(q, k, v, { blockSize: b, sortLogits: shared });
    const c = wasm.sinkhorn(q, k, v, { blockSize: b, sortLogits: perHead });
    expect(maxAbsDiff(a.data, c.data)).toBe(0);
  });

  it('hides sorted keys whose main source key is padded (given logits, one-hot-like S)', () => {
    // N = 8, b = 2: query block u's sorted block comes from block (u + 1) mod 4
    const logits = new Float32Array(16);
    for (let u = 0; u < 4; u++) logits[u * 4 + ((u + 1) % 4)] = 20;
    const q = randn([1, 1, 8, 3], 11);
    const k = randn([1, 1, 8, 3], 12);
    const v = randn([1, 1, 8, 2], 13);
    const options = { blockSize: 2, keyPadding: Uint8Array.from([1, 1, 1, 0, 1, 1, 1, 1]), sortLogits: { data: logits, dims: [1, 1, 4, 4] } };
    expect(maxAbsDiff(wasm.sinkhorn(q, k, v, options).data, js.sinkhorn(q, k, v, options).data)).toBeLessThanOrEqual(1e-4);
  });

  it('gives rows that see no key zeros, never NaN', () => {
    // batch 1 entirely padded; and N = 1 with its key padded
    const q = randn([2, 2, 12, 4], 14);
    const v = randn([2, 2, 12, 3], 15);
    const keyPadding = new Uint8Array(24).fill(1, 0, 12);
    for (const causal of [false, true]) {
      const out = wasm.sinkhorn(q, q, v, { blockSize: 3, causal, keyPadding });
      expect(Array.from(rows(out.data, 4, 12, 3, 0, 12).subarray(2 * 12 * 3))).toEqual(new Array(2 * 12 * 3).fill(0));
      expect(maxAbsDiff(out.data, js.sinkhorn(q, q, v, { blockSize: 3, causal, keyPadding }).data)).toBeLessThanOrEqual(1e-4);
      const one = randn([1, 4], 16);
      const hidden = wasm.sinkhorn(one, one, randn([1, 3], 17), { blockSize: 1, causal, keyPadding: Uint8Array.from([0]) });
      expect(Array.from(hidden.data)).toEqual([0, 0, 0]);
    }
  });

  it('accepts rank 2 and rank 3 inputs and answers in the same rank', () => {
    const q = randn([12, 6], 18);
    const out2 = wasm.sinkhorn(q, q, q, { blockSize: 4 });
    expect(out2.dims).toEqual([12, 6]);
    expect(maxAbsDiff(out2.data, js.sinkhorn(q, q, q, { blockSize: 4 }).data)).toBeLessThanOrEqual(1e-4);
    const q3 = randn([3, 12, 6], 19);
    const out3 = wasm.sinkhorn(q3, q3, q3, { blockSize: 3, causal: true });
    expect(out3.dims).toEqual([3, 12, 6]);
    const as4 = { data: q3.data, dims: [1, 3, 12, 6] };
    expect(maxAbsDiff(out3.data, wasm.sinkhorn(as4, as4, as4, { blockSize: 3, causal: true }).data)).toBe(0);
  });

  it('equals weights() times v', () => {
    const q = randn([2, 2, 20, 8], 20);
    const k = randn([2, 2, 20, 8], 21);
    const v = randn([2, 2, 20, 5], 22);
    for (const causal of [false, true]) {
      const options = { blockSize: 4, causal, keyPadding: padding(2, 20, 23) };
      const P = wasm.weights('sinkhorn', q, k, options);
      expect(P.dims).toEqual([2, 2, 20, 20]);
      const pv = new Float64Array(2 * 2 * 20 * 5);
      for (let bh = 0; bh < 4; bh++)
        for (let i = 0; i < 20; i++)
          for (let j = 0; j < 20; j++)
            for (let c = 0; c < 5; c++) pv[(bh * 20 + i) * 5 + c] += P.data[(bh * 20 + i) * 20 + j] * v.data[(bh * 20 + j) * 5 + c];
      expect(maxAbsDiff(wasm.sinkhorn(q, k, v, options).data, pv)).toBeLessThanOrEqual(1e-4);
    }
  });

  it('runs as a head of mixed (the registry finds it), matching the kernel on that head', () => {
    const [B, N, D] = [2, 24, 8];
    const q = randn([B, 2, N, D], 24);
    const k = randn([B, 2, N, D], 25);
    const v = randn([B, 2, N, D], 26);
    const keyPadding = padding(B, N, 27);
    const out = wasm.mixed(q, k, v, { keyPadding, heads: [{ kind: 'sinkhorn', blockSize: 6, causal: true }, { kind: 'full' }] });
    // head 0 of [B, 2, N, D] as [B, 1, N, D]
    const pick = (x: { data: Float32Array; dims: readonly number[] }) => {
      const data = new Float32Array(B * N * D);
      for (let batch = 0; batch < B; batch++) data.set(x.data.subarray(batch * 2 * N * D, (batch * 2 + 1) * N * D), batch * N * D);
      return { data, dims: [B, 1, N, D] };
    };
    const alone = wasm.sinkhorn(pick(q), pick(k), pick(v), { blockSize: 6, causal: true, keyPadding });
    expect(maxAbsDiff(pick(out).data, alone.data)).toBeLessThanOrEqual(1e-4);
  });
});

describe('sinkhorn: properties on the wasm backend', () => {
  const q = randn([2, 2, 24, 6], 31);
  const k = randn([2, 2, 24, 6], 32);
  const v = randn([2, 2, 24, 5], 33);
  const keyPadding = padding(2, 24, 34, 0.4);

  it('with blockSize = N, equals full attention', () => {
    for (const causal of [false, true]) {
      for (const pad of [null, keyPadding]) {
        const options = { causal, ...(pad ? { keyPadding: pad } : {}) };
        const got = wasm.sinkhorn(q, k, v, { ...options, blockSize: 24 });
        expect(maxAbsDiff(got.data, wasm.full(q, k, v, options).data)).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  it("the kernel's S: rows and columns sum to 1 within 1e-3 after 20 iterations, and S matches the reference", () => {
    for (const [b, temperature] of [[3, 0.3], [1, 0.75], [4, 2]] as const) {
      const nb = 24 / b;
      const { kernel, reference } = sortMatrices(q, k, { blockSize: b, iterations: 20, temperature });
      expect(kernel.dims).toEqual([2, 2, nb, nb]);
      expect(maxAbsDiff(kernel.data, reference.data)).toBeLessThanOrEqual(1e-5);
      for (let bh = 0; bh < 4; bh++) {
        for (let a = 0; a < nb; a++) {
          let row = 0;
          let column = 0;
          for (let c = 0; c < nb; c++) {
            row += kernel.data[(bh * nb + a) * nb + c];
            column += kernel.data[(bh * nb + c) * nb + a];
          }
          expect(Math.abs(row - 1)).toBeLessThanOrEqual(1e-3);
          expect(Math.abs(column - 1)).toBeLessThanOrEqual(1e-3);
        }
      }
    }
  });

  it("the kernel's S: causal rows are a softmax over past blocks, given logits and 0 iterations as the reference", () => {
    const causal = sortMatrices(q, k, { blockSize: 4, causal: true });
    expect(maxAbsDiff(causal.kernel.data, causal.reference.data)).toBeLessThanOrEqual(1e-5);
    for (let bh = 0; bh < 4; bh++) {
      for (let u = 0; u < 6; u++) {
        let past = 0;
        for (let t = 0; t < 6; t++) {
          if (t < u) past += causal.kernel.data[(bh * 6 + u) * 6 + t];
          else expect(causal.kernel.data[(bh * 6 + u) * 6 + t]).toBe(0);
        }
        expect(Math.abs(past - (u === 0 ? 0 : 1))).toBeLessThanOrEqual(1e-5);
      }
    }
    const sortLogits = randn([1, 2, 6, 6], 35);
    const given = sortMatrices(q, k, { blockSize: 4, sortLogits, iterations: 0, temperature: 2 });
    expect(maxAbsDiff(given.kernel.data, given.reference.data)).toBeLessThanOrEqual(1e-5);
    const unbalanced = sortMatrices(q, k, { blockSize: 4, iterations: 0 });
    const scale = Math.max(...unbalanced.reference.data.map(Math.abs));
    expect(maxAbsDiff(unbalanced.kernel.data, unbalanced.reference.data) / scale).toBeLessThanOrEqual(1e-5);
  });

  it('causal: changing future tokens never changes earlier outputs', () => {
    const [B, H, N, D, Dv, b] = [2, 2, 48, 8, 5, 4];
    const q2 = randn([B, H, N, D], 36);
    const k2 = randn([B, H, N, D], 37);
    const v2 = randn([B, H, N, Dv], 38);
    const pad = padding(B, N, 39);
    for (const cut of [1, 11, 12, 29, 47]) {
      // tokens cut and on get new q, k and v (and padding flags)
      const changed = (x: T, seed: number): T => {
        const width = x.dims[3];
        const fresh = randn(x.dims, seed, 3);
        return { data: x.data.map((value, t) => (Math.floor(t / width) % N >= cut ? fresh.data[t] : value)), dims: x.dims };
      };
      const otherPad = pad.map((flag, j) => (j % N >= cut ? 1 - flag : flag));
      for (const sortLogits of [undefined, randn([1, H, N / b, N / b], 40)]) {
        const options = { blockSize: b, causal: true, keyPadding: pad, ...(sortLogits ? { sortLogits } : {}) };
        const before = wasm.sinkhorn(q2, k2, v2, options);
        const after = wasm.sinkhorn(changed(q2, 41), changed(k2, 42), changed(v2, 43), { ...options, keyPadding: otherPad });
        expect(maxAbsDiff(rows(before.data, B * H, N, Dv, 0, cut), rows(after.data, B * H, N, Dv, 0, cut))).toBe(0);
        // and the changed rows did change (the test can fail)
        expect(maxAbsDiff(rows(before.data, B * H, N, Dv, cut, N), rows(after.data, B * H, N, Dv, cut, N))).toBeGreaterThan(0);
      }
    }
  });
});

describe('sinkhorn: kernel exports', () => {
  interface Kernels {
    sinkhornScratchBytes(N: number, b: number, D: number): number;
    sinkhornStripBytes(N: number, b: number): number;
    packBytes(Nk: number, D: number, Dv: number): number;
    groupBytes(D: number, Dv: number): number;
    sinkhornSortMatrix(...args: number[]): void;
    sinkhornStripWidth(): number;
    sinkhornSortColumns(...args: number[]): void;
    sinkhornAttendBlocks(...args: number[]): void;
  }

  it('give the same bits however columns and blocks are split into calls', () => {
    // k has b * D = 288 columns, v b * Dv = 156: more than one strip each
    const [N, D, Dv, b] = [120, 24, 13, 12];
    const nb = N / b;
    const q = randn([N, D], 60).data;
    const k = randn([N, D], 61).data;
    const v = randn([N, Dv], 62).data;
    const pad = padding(1, N, 63);
    const x = runtime.exports as unknown as Kernels;
    const strip = x.sinkhornStripWidth();
    expect(strip).toBeLessThan(b * Dv);
    /** Boundaries [0, ...every `step` strips..., end]. */
    const cuts = (end: number, step: number) => [...Array(Math.ceil(end / (step * strip))).keys()].map((i) => i * step * strip).concat(end);
    for (const causal of [0, 1]) {
      const run = (stripsPerCall: number, blockSplits: number[]) => {
        const parts = [
          q, k, v, N * Dv * 4, x.sinkhornScratchBytes(N, b, D), x.sinkhornStripBytes(N, b), N * D * 4, N * Dv * 4,
          x.packBytes(2 * b, D, Dv), x.groupBytes(D, Dv), pad,
        ];
        return runtime.call('split', parts, 3, N * Dv, ([qp, kp, vp, out, scratch, work, ks, vs, pack, tiles, padp]) => {
          x.sinkhornSortMatrix(qp, kp, N, b, D, 0.3, 0.75, 7, causal, 0, scratch);
          for (const [xp, width, xs] of [[kp, D, ks], [vp, Dv, vs]]) {
            const c = cuts(b * width, stripsPerCall);
            for (let s = 0; s + 1 < c.length; s++) x.sinkhornSortColumns(xp, width, N, b, causal, scratch, work, xs, c[s], c[s + 1]);
          }
          for (let s = 0; s + 1 < blockSplits.length; s++) {
            x.sinkhornAttendBlocks(qp, kp, vp, ks, vs, out, N, b, D, Dv, 0.3, causal, padp, scratch, pack, tiles, blockSplits[s], blockSplits[s + 1]);
          }
        });
      };
      const whole = run(100, [0, nb]);
      expect(whole.every(Number.isFinite)).toBe(true);
      expect(Array.from(run(1, [0, 1, 7, nb]))).toEqual(Array.from(whole));
      expect(Array.from(run(2, [0, 9, nb]))).toEqual(Array.from(whole));
    }
  });
});

describe('sinkhorn: memory', () => {
  it('leaves memory in use unchanged and stops growing after the first call', () => {
    const q = randn([1, 2, 64, 16], 50);
    const options = { blockSize: 8, causal: true, keyPadding: padding(1, 64, 51) };
    const inUse = wasm.memory.inUse;
    wasm.sinkhorn(q, q, q, options);
    const size = wasm.memory.size;
    for (let i = 0; i < 200; i++) wasm.sinkhorn(q, q, q, options);
    expect(wasm.memory.size).toBe(size);
    expect(wasm.memory.inUse).toBe(inUse);
  });

  it('needs O(N) memory: N = 16384, b = 64 beside its tensors', async () => {
    const attn = await createAttention({ backend: 'wasm' });
    const [N, D, b] = [16384, 32, 64];
    const q = randn([1, 1, N, D], 52);
    const out = attn.sinkhorn(q, q, q, { blockSize: b });
    // q, k, v copied in, out, sorted keys and values: 6 N D floats; S is nb^2 = 256^2
    expect(attn.memory.size).toBeLessThan(6 * N * D * 4 + 4 * 2 ** 20);
    expect(out.data.every(Number.isFinite)).toBe(true);
  });
});

describe('sinkhorn: threads', () => {
  // sinkhorn needs Nk = Nq, so it has its own rows here rather than in threads.test.ts's shared list
  let one: Attention;
  let two: Attention;
  beforeAll(async () => {
    one = await createAttention({ backend: 'wasm', threads: 1 });
    two = await createAttention({ backend: 'wasm', threads: 2 });
  });
  afterAll(() => two.dispose());

  // 2 batches x 3 heads x 768 queries, b = 64: six (batch, head) jobs
  const [B, H, N, b] = [2, 3, 768, 64];
  const q = randn([B, H, N, 24], 70);
  const k = randn([B, H, N, 24], 71);
  const v = randn([B, H, N, 20], 72);
  const keyPadding = padding(B, N, 73);
  it.each([
    [{}],
    [{ causal: true, keyPadding }],
    [{ keyPadding, iterations: 0, temperature: 2 }],
    [{ keyPadding, sortLogits: randn([B, 1, N / b, N / b], 74) }],
    [{ causal: true, sortLogits: randn([1, H, N / b, N / b], 75) }],
  ])('splits by batch and head and keeps the bits: %#', async (extra) => {
    const options = { blockSize: b, ...extra };
    const sync = one.sinkhorn(q, k, v, options);
    const pooled = await two.run('sinkhorn', q, k, v, options);
    expect(bytes(pooled.data)).toEqual(bytes(sync.data));
    expect(two.memory.inUse).toBe(0);
  });

  it('the phase clock runs the same jobs and gives the same bits', () => {
    const options = { blockSize: b, causal: true, keyPadding };
    const plain = one.sinkhorn(q, k, v, options);
    sinkhornProfile.sortMs = sinkhornProfile.attendMs = 0;
    sinkhornProfile.enabled = true;
    try {
      const timed = one.sinkhorn(q, k, v, options);
      expect(bytes(timed.data)).toEqual(bytes(plain.data));
    } finally {
      sinkhornProfile.enabled = false;
    }
    expect(sinkhornProfile.sortMs).toBeGreaterThan(0);
    expect(sinkhornProfile.attendMs).toBeGreaterThan(0);
    expect(one.memory.inUse).toBe(0);
  });
});
