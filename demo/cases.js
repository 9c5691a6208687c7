// The demo's inputs and per-variant default options, shared by the page
// (demo/demo.js) and the Node side of the browser test (test/browser.test.ts),
// so that both compute exactly the same cases. Plain ES module, no imports:
// the package's helpers are passed in as `lib` (its module namespace).

/**
 * Variants whose k is not a separate input: `lsh` shares q as its keys
 * (k must be null), `synthesizer` ignores q and k (its logits are parameters).
 */
export const KEY_INPUT = { lsh: 'shared', synthesizer: 'ignored' };

/** Options that describe a tensor in JSON: `{ "$call": helper, "args": [...], "get"?: key }`. */
export const HELPERS = ['linformerProjection', 'lshRotations', 'fitRoutingCentroids', 'synthesizerParams', 'favorProjection', 'rfaProjection'];

/** A small seeded PRNG (mulberry32) with Box-Muller normals: the same numbers in Node and browsers. */
export function rng(seed) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

/**
 * q, k, v `[1, H, N, D]` for the demo. `kind`:
 * - `'smooth'`: q and k are sinusoidal position codes plus noise, so that
 *   `q_i . k_j` peaks near `i = j` (and at the codes' periods): attention
 *   matrices with visible structure (a band, its repeats), like a trained layer's;
 * - `'random'`: i.i.d. standard normals (attention close to uniform noise).
 * v is standard normal in both.
 */
export function makeInputs({ N, H, D, seed = 1, kind = 'smooth' }) {
  const r = rng(seed);
  const size = H * N * D;
  const q = new Float32Array(size);
  const k = new Float32Array(size);
  const v = new Float32Array(size);
  if (kind === 'random') {
    for (let i = 0; i < size; i++) q[i] = r.normal();
    for (let i = 0; i < size; i++) k[i] = r.normal();
  } else {
    // code_d(p) = amplitude * sin(p * w_d + phase_d), w_d spread from 1 / 2 to 1 / (N / 2) radians per position
    const amplitude = 1.6;
    for (let h = 0; h < H; h++) {
      const freq = new Float64Array(D);
      const phase = new Float64Array(D);
      for (let d = 0; d < D; d++) {
        freq[d] = 0.5 * Math.pow(Math.max(2, N / 4), -(d >> 1) / Math.max(1, (D >> 1) - 1)) * (0.85 + 0.3 * r.uniform());
        phase[d] = (d & 1 ? Math.PI / 2 : 0) + 0.2 * r.normal();
      }
      for (let p = 0; p < N; p++) {
        for (let d = 0; d < D; d++) {
          const base = amplitude * Math.sin(p * freq[d] + phase[d]);
          const at = (h * N + p) * D + d;
          q[at] = base + 0.35 * r.normal();
          k[at] = base + 0.35 * r.normal();
        }
      }
    }
  }
  for (let i = 0; i < size; i++) v[i] = r.normal();
  const dims = [1, H, N, D];
  return { q: { data: q, dims }, k: { data: k, dims: [...dims] }, v: { data: v, dims: [...dims] } };
}

/** The largest divisor of n that is at most `limit` (at least 1). */
function divisorAtMost(n, limit) {
  for (let b = Math.max(1, Math.floor(limit)); b > 1; b--) if (n % b === 0) return b;
  return 1;
}

/**
 * Sensible default options of a variant for N positions, H heads and D
 * features (plain JSON: tensors are `$call`s of the package's helpers, with
 * "$N", "$H", "$D", "$q", "$k" standing for the sizes and inputs). A variant
 * not listed here gets `{}`.
 */
export function defaultOptions(name, N, H, D) {
  const w = Math.max(1, Math.round(N / 16));
  switch (name) {
    case 'full':
      return {};
    case 'local':
      return { window: w };
    case 'strided':
      return { stride: Math.max(2, Math.round(N / 16)) };
    case 'global':
      return { tokens: [...new Set([0, Math.floor(N / 3), Math.floor((2 * N) / 3)])].filter((t) => t < N) };
    case 'sparse':
      // BigBird: a window, global tokens and random keys
      return {
        patterns: [
          { type: 'local', window: Math.max(1, Math.round(N / 32)) },
          { type: 'global', tokens: [0] },
          { type: 'random', count: Math.min(N, 3), seed: 1 },
        ],
      };
    case 'mixed': {
      const specs = [
        { kind: 'local', window: w },
        { kind: 'strided', stride: Math.max(2, Math.round(N / 16)) },
        { kind: 'global', tokens: [0] },
        { kind: 'full' },
      ];
      return { heads: Array.from({ length: H }, (_, h) => specs[h % specs.length]) };
    }
    case 'lsh':
      return { bucketSize: Math.max(1, Math.round(N / 8)), rounds: 2, buckets: 8, seed: 1 };
    case 'routing':
      return { window: Math.max(1, Math.round(N / 4)), clusters: Math.min(4, 2 * N), seed: 1 };
    case 'sinkhorn':
      return { blockSize: divisorAtMost(N, N / 8) };
    case 'linformer':
      return { e: { $call: 'linformerProjection', args: [Math.max(1, Math.round(N / 8)), '$N', 1] } };
    case 'compressed':
      return { factor: Math.max(2, Math.round(N / 32)) };
    case 'linear':
      // Performer FAVOR+: the linear variant that estimates softmax attention
      return { featureMap: 'favor', numFeatures: Math.max(16, 4 * D), seed: 1 };
    case 'synthesizer':
      return { logits: { $call: 'synthesizerParams', args: ['random', { H: '$H', Nq: '$N', Nk: '$N' }, 1], get: 'logits' } };
    default:
      return {};
  }
}

/**
 * Turns JSON options into call options: "$N" / "$H" / "$D" / "$q" / "$k" / "$v"
 * become the sizes and inputs, `{ "$call": helper, "args": [...], "get"?: key }`
 * calls one of the package's {@link HELPERS} (a tensor), and
 * `{ "$uint8": [...] }` becomes a Uint8Array (e.g. keyPadding).
 */
export function resolveOptions(options, lib, ctx) {
  const walk = (value) => {
    if (typeof value === 'string' && value.length > 1 && value[0] === '$' && Object.hasOwn(ctx, value.slice(1))) return ctx[value.slice(1)];
    if (Array.isArray(value)) return value.map(walk);
    if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || 'data' in value) return value;
    if ('$uint8' in value) return Uint8Array.from(value.$uint8);
    if ('$call' in value) {
      const name = value.$call;
      if (!HELPERS.includes(name) || typeof lib[name] !== 'function') {
        throw new TypeError(`$call: expected one of ${HELPERS.join(', ')}, received ${JSON.stringify(name)}`);
      }
      const result = lib[name](...walk(value.args ?? []));
      return value.get === undefined ? result : result[value.get];
    }
    return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, walk(v)]));
  };
  return walk(options);
}

/** The inputs a variant's call takes: k is null for lsh, q and k are null for synthesizer. */
export function callInputs(name, { q, k, v }) {
  const kind = KEY_INPUT[name];
  if (kind === 'shared') return { q, k: null, v };
  if (kind === 'ignored') return { q: null, k: null, v };
  return { q, k, v };
}

/**
 * The keys `full` compares a variant with: lsh's keys are q's rows
 * normalised (SPEC: shared query-key attention), the others use k.
 */
export function fullKeys(name, { q, k }) {
  if (KEY_INPUT[name] !== 'shared') return k;
  const D = q.dims[q.dims.length - 1];
  const data = new Float32Array(q.data.length);
  for (let row = 0; row < q.data.length; row += D) {
    let norm = 0;
    for (let d = 0; d < D; d++) norm += q.data[row + d] ** 2;
    const inv = 1 / Math.max(Math.sqrt(norm), 1e-12);
    for (let d = 0; d < D; d++) data[row + d] = q.data[row + d] * inv;
  }
  return { data, dims: [...q.dims] };
}

/** Mean absolute difference of two equally long arrays. */
export function meanAbsError(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return a.length ? sum / a.length : 0;
}
