/**
 * Plain-JS float64 reference of recurrent linear attention (SPEC "Recurrent
 * linear attention", the ONNX `LinearAttention` family): per batch and kv head
 * a state matrix `S [D, Dv]`, updated token by token by a rule,
 *
 * - linear:     `S_t = S_{t-1} + k_t v_t^T`
 * - gated:      `S_t = A_t S_{t-1} + k_t v_t^T`
 * - delta:      `S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T`
 * - gatedDelta: `S_t = A_t S_{t-1} + beta_t k_t (v_t - (A_t S_{t-1})^T k_t)^T`
 *
 * with `A_t = exp(decay_t)` (a scalar per head, or `diag` over the key dim),
 * and every query head of the kv head's group reading `o_t = scale S_t^T q_t`
 * (after token t is written). This is the JS backend and the test oracle of
 * the chunked SIMD kernels.
 */
import type { Layout } from '../tensor.js';

/** The update rules. */
export const RULES = ['linear', 'gated', 'delta', 'gatedDelta'] as const;

/** An update rule name. */
export type Rule = (typeof RULES)[number];

/** Whether the rule decays the state (needs `decay`). */
export const isGated = (rule: Rule): boolean => rule === 'gated' || rule === 'gatedDelta';
/** Whether the rule corrects by the state's prediction (needs `beta`). */
export const isDelta = (rule: Rule): boolean => rule === 'delta' || rule === 'gatedDelta';

/**
 * A per-token input (decay, beta) of one layout: `heads` heads (the kv
 * heads, or 1 shared by all) of `width` values per token (1, or D for a
 * per-key-dim decay).
 */
export interface TokenParam {
  readonly data: Float32Array;
  readonly heads: number;
  readonly width: number;
  readonly layout: Layout;
}

/** Where the N tokens of (batch b, kv head h) of a token input start, in floats. */
export function tokenParamOffset(p: TokenParam, b: number, h: number, N: number): number {
  const head = p.heads === 1 ? 0 : h;
  return p.layout === 'bnhd' ? (b * N * p.heads + head) * p.width : (b * p.heads + head) * N * p.width;
}

/** The distance between consecutive tokens of a token input, in floats. */
export function tokenParamStride(p: TokenParam): number {
  return p.layout === 'bnhd' ? p.heads * p.width : p.width;
}

/** The sizes of a call: q has H heads, k and v Hkv (H mod Hkv == 0). */
export interface RecurrentShape {
  readonly B: number;
  readonly H: number;
  readonly Hkv: number;
  readonly N: number;
  readonly D: number;
  readonly Dv: number;
}

/** What the recurrence needs besides q, k, v. */
export interface RecurrentConfig {
  readonly rule: Rule;
  readonly scale: number;
  /** Log-space decay, per head (width 1) or per key dim (width D); gated rules only. */
  readonly decay: TokenParam | null;
  /** Delta rules only: the write strength, per kv head or shared (heads 1). */
  readonly beta: TokenParam | null;
  /** `[B, Hkv, D, Dv]`, or null for zeros. */
  readonly initialState: Float32Array | null;
}

/** One (batch, kv head) slice's state and the float64 work of a token. */
export class SliceRecurrence {
  /** `[D, Dv]` row-major: rows are the key dim. */
  readonly S: Float64Array;
  private readonly predicted: Float64Array;

  constructor(
    private readonly D: number,
    private readonly Dv: number,
  ) {
    this.S = new Float64Array(D * Dv);
    this.predicted = new Float64Array(Dv);
  }

  /**
   * Writes one token: `decay` (log space) at `decayAt` with `decayWidth`
   * values (0: no decay), `beta` (NaN: no delta correction), k and v at
   * their offsets.
   */
  write(k: Float32Array, kAt: number, v: Float32Array, vAt: number, decay: Float32Array | null, decayAt: number, decayWidth: number, beta: number): void {
    const { S, D, Dv, predicted } = this;
    if (decay) {
      for (let i = 0; i < D; i++) {
        const a = Math.exp(decay[decayAt + (decayWidth === 1 ? 0 : i)]);
        for (let c = 0; c < Dv; c++) S[i * Dv + c] *= a;
      }
    }
    if (Number.isNaN(beta)) {
      for (let i = 0; i < D; i++) {
        const ki = k[kAt + i];
        for (let c = 0; c < Dv; c++) S[i * Dv + c] += ki * v[vAt + c];
      }
      return;
    }
    predicted.fill(0);
    for (let i = 0; i < D; i++) {
      const ki = k[kAt + i];
      for (let c = 0; c < Dv; c++) predicted[c] += S[i * Dv + c] * ki;
    }
    for (let c = 0; c < Dv; c++) predicted[c] = beta * (v[vAt + c] - predicted[c]);
    for (let i = 0; i < D; i++) {
      const ki = k[kAt + i];
      for (let c = 0; c < Dv; c++) S[i * Dv + c] += ki * predicted[c];
    }
  }

  /** `out[outAt + c] = scale (S^T q)_c`. */
  read(q: Float32Array, qAt: number, scale: number, out: Float32Array, outAt: number): void {
    const { S, D, Dv } = this;
    for (let c = 0; c < Dv; c++) {
      let sum = 0;
      for (let i = 0; i < D; i++) sum += S[i * Dv + c] * q[qAt + i];
      out[outAt + c] = scale * sum;
    }
  }
}

/** Where the rows of q, k, v and the output sit: head offsets and row strides in the call's layout. */
export interface RecurrentInputs {
  readonly q: Float32Array;
  readonly k: Float32Array;
  readonly v: Float32Array;
  readonly layout: Layout;
}

/** Offset of (b, head, t) of a tensor of `heads` heads of `width`, in a layout. */
function rowAt(layout: Layout, b: number, head: number, t: number, heads: number, N: number, width: number): number {
  return layout === 'bnhd' ? ((b * N + t) * heads + head) * width : ((b * heads + head) * N + t) * width;
}

/**
 * The whole call in float64, token by token: the output `[B, H, N, Dv]`
 * (`[B, N, H, Dv]` for 'bnhd') and the final state `[B, Hkv, D, Dv]`.
 */
export function recurrentAttention(inputs: RecurrentInputs, shape: RecurrentShape, config: RecurrentConfig): { out: Float32Array; state: Float32Array } {
  const { B, H, Hkv, N, D, Dv } = shape;
  const { layout } = inputs;
  const group = H / Hkv;
  const out = new Float32Array(B * H * N * Dv);
  const state = new Float32Array(B * Hkv * D * Dv);
  const slice = new SliceRecurrence(D, Dv);
  const { decay, beta } = config;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hkv; h++) {
      const s = (b * Hkv + h) * D * Dv;
      if (config.initialState) for (let i = 0; i < D * Dv; i++) slice.S[i] = config.initialState[s + i];
      else slice.S.fill(0);
      const decayAt = decay ? tokenParamOffset(decay, b, h, N) : 0;
      const betaAt = beta ? tokenParamOffset(beta, b, h, N) : 0;
      for (let t = 0; t < N; t++) {
        const betaT = beta ? beta.data[betaAt + t * tokenParamStride(beta)] : NaN;
        slice.write(inputs.k, rowAt(layout, b, h, t, Hkv, N, D), inputs.v, rowAt(layout, b, h, t, Hkv, N, Dv), decay?.data ?? null, decay ? decayAt + t * tokenParamStride(decay) : 0, decay?.width ?? 0, betaT);
        for (let g = 0; g < group; g++) {
          const hq = h * group + g;
          slice.read(inputs.q, rowAt(layout, b, hq, t, H, N, D), config.scale, out, rowAt(layout, b, hq, t, H, N, Dv));
        }
      }
      for (let i = 0; i < D * Dv; i++) state[s + i] = slice.S[i];
    }
  }
  return { out, state };
}

/**
 * The dense matrix `P [B, H, N, N]` with `out = P v` of the rules without a
 * delta correction and without an initial state: `P_tj = scale q_t .
 * (exp(G_t - G_j) k_j)` for `j <= t`, `G` the running sum of the log decay
 * (0 for 'linear'), per head or per key dim.
 */
export function recurrentWeights(q: Float32Array, k: Float32Array, layout: Layout, shape: RecurrentShape, config: RecurrentConfig): Float32Array {
  const { B, H, Hkv, N, D } = shape;
  const group = H / Hkv;
  const { decay } = config;
  const width = decay ? decay.width : 1;
  const P = new Float32Array(B * H * N * N);
  const G = new Float64Array(N * width);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hkv; h++) {
      G.fill(0);
      if (decay) {
        const at = tokenParamOffset(decay, b, h, N);
        const stride = tokenParamStride(decay);
        for (let t = 0; t < N; t++) for (let i = 0; i < width; i++) G[t * width + i] = (t > 0 ? G[(t - 1) * width + i] : 0) + decay.data[at + t * stride + i];
      }
      for (let g = 0; g < group; g++) {
        const hq = h * group + g;
        for (let t = 0; t < N; t++) {
          const qAt = rowAt(layout, b, hq, t, H, N, D);
          for (let j = 0; j <= t; j++) {
            const kAt = rowAt(layout, b, h, j, Hkv, N, D);
            let sum = 0;
            for (let i = 0; i < D; i++) {
              const w = width === 1 ? 0 : i;
              sum += q[qAt + i] * k[kAt + i] * Math.exp(G[t * width + w] - G[j * width + w]);
            }
            P[((b * H + hq) * N + t) * N + j] = config.scale * sum;
          }
        }
      }
    }
  }
  return P;
}
