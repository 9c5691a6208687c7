/**
 * Plain-JS float64 reference of `linear` attention (SPEC "Changing the order
 * of operations"): `out_i = phi(q_i)^T S / (phi(q_i)^T z + eps)` with
 * `S = sum_j phi(k_j) v_j^T` and `z = sum_j phi(k_j)`, computed as sums over
 * keys (O(N) time) instead of an Nq x Nk matrix. With `causal` the sums are
 * prefix sums; `LinearRecurrentState` carries them one token at a time.
 *
 * FAVOR+ features are exponentials. Every feature row is kept as
 * `exp(offset) * features` and the offsets are taken out only where they
 * cancel exactly (SPEC): one per query row, one per head for the keys (or a
 * running maximum in the recurrent state), with `eps` brought to the same
 * scale so that it still counts at the unstabilised scale.
 */
import { headOffset, type Heads } from '../tensor.js';
import type { Common } from '../validate.js';

/** The feature maps `phi` of `linear` (see `LinearOptions.featureMap`). */
export const FEATURE_MAPS = ['elu', 'relu', 'favor', 'rfa', 'efficient'] as const;

/** A feature map name. */
export type FeatureMap = (typeof FEATURE_MAPS)[number];

/** The random projection of `favor` / `rfa`: M rows of D values per head. */
export interface Projection {
  /** `[H|1, M, D]` row-major. */
  readonly data: Float32Array;
  /** `M * D`, or 0 when one projection is shared by all heads. */
  readonly headStride: number;
  /** Number of random features M. */
  readonly M: number;
}

/** What the linear-attention math needs besides the inputs. */
export interface LinearConfig {
  featureMap: FeatureMap;
  /** Added to every denominator, at the unstabilised scale. */
  eps: number;
  /** Logit scale; only `favor` uses it (`x' = sqrt(scale) x`). */
  scale: number;
  /** `favor` and `rfa` only; null for the other maps. */
  projection: Projection | null;
}

/** The kernel feature maps, everything but `efficient` (which has no phi). */
export type KernelConfig = LinearConfig & { readonly featureMap: Exclude<FeatureMap, 'efficient'> };

/** Length F of a feature vector phi(x) for inputs of size D. */
export function featureCount(config: LinearConfig, D: number): number {
  switch (config.featureMap) {
    case 'favor':
      return projectionOf(config).M;
    case 'rfa':
      return 2 * projectionOf(config).M; // [sin, cos]
    default:
      return D;
  }
}

export function projectionOf(config: LinearConfig): Projection {
  if (!config.projection) throw new TypeError(`options.projection: featureMap '${config.featureMap}' needs a projection, received none`);
  return config.projection;
}

/**
 * phi(x) for the row of `x` that starts at `xOff`, as `exp(offset) * out`:
 * writes `out` (F values) and returns `offset` (0 except for `favor`).
 */
export function featureRow(config: KernelConfig, head: number, x: Float32Array, xOff: number, D: number, out: Float64Array): number {
  switch (config.featureMap) {
    case 'elu':
      // Katharopoulos et al. 2020: phi(x) = elu(x) + 1 > 0
      for (let d = 0; d < D; d++) out[d] = x[xOff + d] > 0 ? x[xOff + d] + 1 : Math.exp(x[xOff + d]);
      return 0;
    case 'relu':
      for (let d = 0; d < D; d++) out[d] = Math.max(x[xOff + d], 0);
      return 0;
    case 'favor':
      return favorRow(projectionOf(config), head, config.scale, x, xOff, D, out);
    case 'rfa':
      rfaRow(projectionOf(config), head, x, xOff, D, out);
      return 0;
  }
}

/**
 * Performer FAVOR+ (Choromanski et al. 2021) positive random features:
 * `phi_m = M^(-1/2) exp(w_m . x' - |x'|^2 / 2)` with `x' = sqrt(scale) x`,
 * so that `phi(q) . phi(k)` estimates `exp(scale q . k)`. The largest
 * exponent goes to the returned offset, so `out` stays in (0, 1].
 */
function favorRow(p: Projection, head: number, scale: number, x: Float32Array, xOff: number, D: number, out: Float64Array): number {
  const root = Math.sqrt(scale);
  let halfNorm = 0;
  for (let d = 0; d < D; d++) halfNorm += (root * x[xOff + d]) ** 2;
  halfNorm /= 2;
  const wBase = head * p.headStride;
  let max = -Infinity;
  for (let m = 0; m < p.M; m++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += p.data[wBase + m * D + d] * root * x[xOff + d];
    out[m] = dot - halfNorm;
    if (out[m] > max) max = out[m];
  }
  for (let m = 0; m < p.M; m++) out[m] = Math.exp(out[m] - max);
  return max - Math.log(p.M) / 2; // the M^(-1/2) factor, in the log domain
}

/**
 * Random Feature Attention (Peng et al. 2021): random Fourier features of the
 * l2-normalised input, `phi(x) = M^(-1/2) [sin(W x^), cos(W x^)]`.
 */
function rfaRow(p: Projection, head: number, x: Float32Array, xOff: number, D: number, out: Float64Array): void {
  let norm = 0;
  for (let d = 0; d < D; d++) norm += x[xOff + d] ** 2;
  const inv = 1 / Math.max(Math.sqrt(norm), 1e-12);
  const wBase = head * p.headStride;
  const amplitude = 1 / Math.sqrt(p.M);
  for (let m = 0; m < p.M; m++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += p.data[wBase + m * D + d] * x[xOff + d] * inv;
    out[m] = amplitude * Math.sin(dot);
    out[p.M + m] = amplitude * Math.cos(dot);
  }
}

/**
 * `num / (phi^T z + eps)` for one query row whose features are
 * `exp(qOffset) * phi` against sums scaled by `exp(-keyOffset)`: the common
 * factor `exp(qOffset + keyOffset)` cancels, so eps is divided by it instead
 * (in the log domain: `eps = 0` stays 0 and an overflow only sends it to
 * Infinity, where the true output is 0 as well). A zero denominator (no key
 * seen, eps = 0) gives zeros, never NaN.
 */
export function denominator(phi: Float64Array, z: Float64Array, F: number, logEps: number, qOffset: number, keyOffset: number): number {
  let dot = 0;
  for (let f = 0; f < F; f++) dot += phi[f] * z[f];
  return dot + Math.exp(logEps - qOffset - keyOffset);
}

/** `out[outOff ..] = phi^T S / den` (S is F x Dv); zeros when den is 0. */
function readOut(phi: Float64Array, S: Float64Array, F: number, Dv: number, den: number, out: Float32Array, outOff: number): void {
  for (let e = 0; e < Dv; e++) {
    let num = 0;
    for (let f = 0; f < F; f++) num += phi[f] * S[f * Dv + e];
    out[outOff + e] = den === 0 ? 0 : num / den;
  }
}

/** Is key j of batch b a real key (not padding)? */
export function isReal(keyPadding: Uint8Array | null, b: number, Nk: number, j: number): boolean {
  return !keyPadding || keyPadding[b * Nk + j] !== 0;
}

/**
 * phi(k_j) of every key of one (batch, head), row j at `j * F`, all sharing
 * one scale `exp(offset)`: the offset is the largest key offset of the head
 * (SPEC: one constant for all keys of a head cancels exactly). Padded keys
 * get zero features, so they leave both S and z.
 */
export function keyFeatures(config: KernelConfig, k: Heads, b: number, h: number, H: number, keyPadding: Uint8Array | null): { phi: Float64Array; offset: number } {
  const { N: Nk, D } = k;
  const F = featureCount(config, D);
  const phi = new Float64Array(Nk * F);
  const offsets = new Float64Array(Nk).fill(-Infinity);
  const row = new Float64Array(F);
  // query head h's features (its projection) of the kv head it reads
  const base = headOffset(k, b, h, H);
  for (let j = 0; j < Nk; j++) {
    if (!isReal(keyPadding, b, Nk, j)) continue;
    offsets[j] = featureRow(config, h, k.data, base + j * D, D, row);
    phi.set(row, j * F);
  }
  let max = -Infinity;
  for (let j = 0; j < Nk; j++) max = Math.max(max, offsets[j]);
  const offset = max === -Infinity ? 0 : max; // no real key: nothing to rescale
  for (let j = 0; j < Nk; j++) {
    const rescale = Math.exp(offsets[j] - offset); // 0 for padded keys
    for (let f = 0; f < F; f++) phi[j * F + f] *= rescale;
  }
  return { phi, offset };
}

/**
 * Linear attention `[B, H, Nq, Dv]` (not `efficient`). S and z are
 * accumulated key by key; query row i reads them once every key it may see
 * has been added (all keys, or `j <= i + (Nk - Nq)` when causal): prefix sums.
 */
export function linearAttention(q: Heads, k: Heads, v: Heads, config: LinearConfig & Common): Float32Array {
  if (config.featureMap === 'efficient') return efficientAttention(q, k, v, config.keyPadding);
  const kernel = config as KernelConfig;
  const { B, H, N: Nq, D } = q;
  const { N: Nk } = k;
  const Dv = v.D;
  const F = featureCount(config, D);
  const logEps = Math.log(config.eps);
  const out = new Float32Array(B * H * Nq * Dv);
  const S = new Float64Array(F * Dv);
  const z = new Float64Array(F);
  const phiQ = new Float64Array(F);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const keys = keyFeatures(kernel, k, b, h, H, config.keyPadding);
      const vBase = headOffset(v, b, h, H);
      S.fill(0);
      z.fill(0);
      let added = 0; // keys 0 .. added-1 are in S and z
      for (let i = 0; i < Nq; i++) {
        const last = config.causal ? Math.min(i + Nk - Nq, Nk - 1) : Nk - 1;
        for (; added <= last; added++) {
          // S += phi(k_j) v_j^T, z += phi(k_j)
          for (let f = 0; f < F; f++) {
            const phiK = keys.phi[added * F + f];
            z[f] += phiK;
            for (let e = 0; e < Dv; e++) S[f * Dv + e] += phiK * v.data[vBase + added * Dv + e];
          }
        }
        const row = (b * H + h) * Nq + i;
        const qOffset = featureRow(kernel, h, q.data, row * D, D, phiQ);
        readOut(phiQ, S, F, Dv, denominator(phiQ, z, F, logEps, qOffset, keys.offset), out, row * Dv);
      }
    }
  }
  return out;
}

/**
 * The matrix linear attention applies, `[B, H, Nq, Nk]`:
 * `P_ij = phi(q_i) . phi(k_j) / (phi(q_i) . z_i + eps)` for the keys j that
 * row i sees (z_i its sum of their features), 0 elsewhere.
 */
export function linearWeights(q: Heads, k: Heads, config: LinearConfig & Common): Float32Array {
  if (config.featureMap === 'efficient') return efficientWeights(q, k, config.keyPadding);
  const kernel = config as KernelConfig;
  const { B, H, N: Nq, D } = q;
  const { N: Nk } = k;
  const F = featureCount(config, D);
  const logEps = Math.log(config.eps);
  const out = new Float32Array(B * H * Nq * Nk);
  const phiQ = new Float64Array(F);
  const z = new Float64Array(F);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const keys = keyFeatures(kernel, k, b, h, H, config.keyPadding);
      for (let i = 0; i < Nq; i++) {
        const last = config.causal ? Math.min(i + Nk - Nq, Nk - 1) : Nk - 1;
        z.fill(0);
        for (let j = 0; j <= last; j++) for (let f = 0; f < F; f++) z[f] += keys.phi[j * F + f];
        const row = (b * H + h) * Nq + i;
        const den = denominator(phiQ, z, F, logEps, featureRow(kernel, h, q.data, row * D, D, phiQ), keys.offset);
        if (den === 0) continue;
        for (let j = 0; j <= last; j++) {
          let dot = 0;
          for (let f = 0; f < F; f++) dot += phiQ[f] * keys.phi[j * F + f];
          out[row * Nk + j] = dot / den;
        }
      }
    }
  }
  return out;
}

/**
 * Efficient Attention (Shen et al. 2021), the normalisers of one (batch,
 * head): `rho_q` = softmax of each q row over its D features, `rho_k` =
 * softmax of each k column over the real keys (padded keys get 0).
 */
export function efficientNormalisers(q: Heads, k: Heads, b: number, h: number, keyPadding: Uint8Array | null): { rhoQ: Float64Array; rhoK: Float64Array } {
  const { N: Nq, D } = q;
  const { N: Nk } = k;
  const rhoQ = new Float64Array(Nq * D);
  const qBase = (b * q.H + h) * Nq * D;
  for (let i = 0; i < Nq; i++) {
    let max = -Infinity;
    for (let d = 0; d < D; d++) max = Math.max(max, q.data[qBase + i * D + d]);
    let sum = 0;
    for (let d = 0; d < D; d++) {
      rhoQ[i * D + d] = Math.exp(q.data[qBase + i * D + d] - max);
      sum += rhoQ[i * D + d];
    }
    for (let d = 0; d < D; d++) rhoQ[i * D + d] /= sum;
  }
  const rhoK = new Float64Array(Nk * D);
  const kBase = headOffset(k, b, h, q.H);
  for (let d = 0; d < D; d++) {
    let max = -Infinity;
    for (let j = 0; j < Nk; j++) if (isReal(keyPadding, b, Nk, j)) max = Math.max(max, k.data[kBase + j * D + d]);
    if (max === -Infinity) continue; // no real key: the column stays 0
    let sum = 0;
    for (let j = 0; j < Nk; j++) {
      if (!isReal(keyPadding, b, Nk, j)) continue;
      rhoK[j * D + d] = Math.exp(k.data[kBase + j * D + d] - max);
      sum += rhoK[j * D + d];
    }
    for (let j = 0; j < Nk; j++) rhoK[j * D + d] /= sum;
  }
  return { rhoQ, rhoK };
}

/** `out = rho_q(q) (rho_k(k)^T v)`: the D x Dv context first, then one product per query. */
function efficientAttention(q: Heads, k: Heads, v: Heads, keyPadding: Uint8Array | null): Float32Array {
  const { B, H, N: Nq, D } = q;
  const { N: Nk } = k;
  const Dv = v.D;
  const out = new Float32Array(B * H * Nq * Dv);
  const context = new Float64Array(D * Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const { rhoQ, rhoK } = efficientNormalisers(q, k, b, h, keyPadding);
      const vBase = headOffset(v, b, h, H);
      // context = rho_k(k)^T v
      context.fill(0);
      for (let j = 0; j < Nk; j++) {
        for (let d = 0; d < D; d++) for (let e = 0; e < Dv; e++) context[d * Dv + e] += rhoK[j * D + d] * v.data[vBase + j * Dv + e];
      }
      // out_i = rho_q(q_i) context
      for (let i = 0; i < Nq; i++) {
        const outOff = ((b * H + h) * Nq + i) * Dv;
        for (let e = 0; e < Dv; e++) {
          let acc = 0;
          for (let d = 0; d < D; d++) acc += rhoQ[i * D + d] * context[d * Dv + e];
          out[outOff + e] = acc;
        }
      }
    }
  }
  return out;
}

/** `P = rho_q(q) rho_k(k)^T`: each row sums to 1 over the real keys. */
function efficientWeights(q: Heads, k: Heads, keyPadding: Uint8Array | null): Float32Array {
  const { B, H, N: Nq, D } = q;
  const { N: Nk } = k;
  const out = new Float32Array(B * H * Nq * Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const { rhoQ, rhoK } = efficientNormalisers(q, k, b, h, keyPadding);
      for (let i = 0; i < Nq; i++) {
        for (let j = 0; j < Nk; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += rhoQ[i * D + d] * rhoK[j * D + d];
          out[((b * H + h) * Nq + i) * Nk + j] = dot;
        }
      }
    }
  }
  return out;
}

/** The sizes of the slices a recurrent state serves. */
export interface RecurrentShape {
  readonly B: number;
  readonly H: number;
  readonly D: number;
  readonly Dv: number;
}

/**
 * Causal linear attention one token at a time (autoregressive decoding),
 * for every (batch, head) slice at once: float64 `S` (F x Dv) and `z` (F)
 * per slice, O(1) work per token whatever the sequence length. Stepping
 * through a sequence gives the causal batch output of `linearAttention`.
 *
 * The sums are stored as `exp(offset) * (S, z)` with a running maximum of
 * the key offsets (FAVOR+ features are exponentials): when a key with a
 * larger offset arrives, the state is rescaled to it, so it stays finite.
 */
export class LinearRecurrentState {
  private readonly config: KernelConfig;
  private readonly shape: RecurrentShape;
  /** Length of one feature vector. */
  private readonly F: number;
  private readonly logEps: number;
  /** `[B, H, F, Dv]`. */
  private readonly S: Float64Array;
  /** `[B, H, F]`. */
  private readonly z: Float64Array;
  /** `[B, H]`: the log scale of S and z; -Infinity before the first real key. */
  private readonly offset: Float64Array;
  private readonly phiK: Float64Array;
  private readonly phiQ: Float64Array;

  /** `config` is typically the parsed options of `linear`; `shape` its problem. */
  constructor(config: LinearConfig, shape: RecurrentShape) {
    if (config.featureMap === 'efficient') {
      throw new RangeError(`options.featureMap: 'efficient' normalises keys over the whole sequence and has no recurrent form, received 'efficient'`);
    }
    this.config = config as KernelConfig;
    this.shape = shape;
    this.F = featureCount(config, shape.D);
    this.logEps = Math.log(config.eps);
    this.S = new Float64Array(shape.B * shape.H * this.F * shape.Dv);
    this.z = new Float64Array(shape.B * shape.H * this.F);
    this.offset = new Float64Array(shape.B * shape.H).fill(-Infinity);
    this.phiK = new Float64Array(this.F);
    this.phiQ = new Float64Array(this.F);
  }

  /** Forgets every key seen so far. */
  reset(): void {
    this.S.fill(0);
    this.z.fill(0);
    this.offset.fill(-Infinity);
  }

  /**
   * Adds the token's key and value to the state, then answers its query:
   * `q`, `k` are `[B, H, D]`, `v` is `[B, H, Dv]`, the result `[B, H, Dv]`.
   * `keyPadding` (`[B]`, 0 = padding) keeps a batch's key out of the state.
   */
  step(q: Float32Array, k: Float32Array, v: Float32Array, keyPadding: Uint8Array | null = null): Float32Array {
    const { B, H, D, Dv } = this.shape;
    const { F, S, z, offset, phiK, phiQ } = this;
    checkLength(q, B * H * D, 'q', '[B, H, D]');
    checkLength(k, B * H * D, 'k', '[B, H, D]');
    checkLength(v, B * H * Dv, 'v', '[B, H, Dv]');
    if (keyPadding) checkLength(keyPadding, B, 'keyPadding', '[B]');
    const out = new Float32Array(B * H * Dv);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const slice = b * H + h;
        if (!keyPadding || keyPadding[b] !== 0) {
          const kOffset = featureRow(this.config, h, k, slice * D, D, phiK);
          // running maximum: rescale the old sums to the new offset (exp(-Infinity) = 0 at the start)
          const next = Math.max(offset[slice], kOffset);
          const decay = Math.exp(offset[slice] - next);
          const gain = Math.exp(kOffset - next);
          offset[slice] = next;
          for (let f = 0; f < F; f++) {
            const zi = slice * F + f;
            z[zi] = z[zi] * decay + gain * phiK[f];
            for (let e = 0; e < Dv; e++) S[zi * Dv + e] = S[zi * Dv + e] * decay + gain * phiK[f] * v[slice * Dv + e];
          }
        }
        if (offset[slice] === -Infinity) continue; // no key yet: zeros
        const qOffset = featureRow(this.config, h, q, slice * D, D, phiQ);
        const den = denominator(phiQ, z.subarray(slice * F, (slice + 1) * F), F, this.logEps, qOffset, offset[slice]);
        readOut(phiQ, S.subarray(slice * F * Dv, (slice + 1) * F * Dv), F, Dv, den, out, slice * Dv);
      }
    }
    return out;
  }
}

function checkLength(x: ArrayLike<number>, expected: number, name: string, dims: string): void {
  if (x.length !== expected) throw new RangeError(`${name}: expected ${expected} values (${dims}), received ${x.length}`);
}
