/**
 * `recurrent`: linear attention with a matrix state updated by a rule (SPEC
 * "Recurrent linear attention"): linear attention as an RNN, gated linear
 * attention, DeltaNet and Gated DeltaNet, the family of ONNX
 * `LinearAttention`. Options parsing, the float64 JS backend
 * (src/reference/recurrent.ts) and the chunked SIMD kernel's plan
 * (assembly/variants/recurrent.ts): one job per (batch, kv head), the same
 * calls on one thread or on the pool.
 */
import { declareOptions, rejectUndeclared } from '../options.js';
import { readLayout } from '../layout.js';
import { RULES, isDelta, isGated, recurrentAttention, recurrentWeights, tokenParamOffset as tokenOffset, tokenParamStride as tokenStride, type RecurrentConfig, type RecurrentShape, type Rule, type TokenParam } from '../reference/recurrent.js';
import { scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import type { Runtime } from '../runtime/runtime.js';
import { asHeads, asTensor, describe, headOffset, rowStride, toTensor, type Heads, type Layout, type Tensor } from '../tensor.js';
import { asOptions, checkFits, checkQKV, optionalNumber, type Options } from '../validate.js';

export type { Rule } from '../reference/recurrent.js';

/** Options of `attn.recurrent(q, k, v, options)`. */
export interface RecurrentOptions {
  /**
   * The update rule of the state `S [D, Dv]` (per batch and kv head):
   * - `'linear'`: `S_t = S_{t-1} + k_t v_t^T`;
   * - `'gated'`: `S_t = exp(decay_t) S_{t-1} + k_t v_t^T` (gated linear attention, RetNet, Mamba-2 style);
   * - `'delta'`: `S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T` (DeltaNet);
   * - `'gatedDelta'`: the delta rule on the decayed state `exp(decay_t) S_{t-1}` (Gated DeltaNet).
   *
   * Every rule reads `o_t = scale S_t^T q_t`.
   */
  rule: Rule;
  /**
   * Gated rules only (required there): the log-space decay, per head
   * `[B, Hkv, N]` or per key dim `[B, Hkv, N, D]` (k's dims without or with
   * its last axis; `[B, N, Hkv]` / `[B, N, Hkv, D]` with `layout: 'bnhd'`).
   * A per-key-dim decay scales the rows of S.
   */
  decay?: Tensor;
  /**
   * Delta rules only (required there): the write strength, `[B, Hkv, N]`
   * (k's dims without the last axis), or with a head axis of 1 shared by all kv heads.
   */
  beta?: Tensor;
  /** The state before the first token, `[B, Hkv, D, Dv]` (or `[Hkv, D, Dv]`, `[D, Dv]` for rank-3 and rank-2 inputs); default zeros. */
  initialState?: Tensor;
  /** Multiplies the output only (the state carries no scale); default `1 / sqrt(D)`. */
  scale?: number;
  /** `'bhnd'` (default) or `'bnhd'`: rank-4 q, k, v, decay, beta and the output as `[B, N, H, D]`. */
  layout?: Layout;
}

/** The declaration of {@link RecurrentOptions}. */
export const recurrentOptions = declareOptions<RecurrentOptions>()({
  rule: { type: "`'linear' | 'gated' | 'delta' | 'gatedDelta'`", doc: 'the update rule of the state (required)' },
  decay: { type: '`Tensor`', doc: 'gated rules: log-space decay `[B, Hkv, N]` (per head) or `[B, Hkv, N, D]` (per key dim)' },
  beta: { type: '`Tensor`', doc: 'delta rules: write strength `[B, Hkv|1, N]`' },
  initialState: { type: '`Tensor`', doc: 'the state before the first token, `[B, Hkv, D, Dv]`; default zeros' },
  scale: { type: '`number`', doc: 'output scale; default `1 / sqrt(D)`' },
  layout: { type: "`'bhnd' | 'bnhd'`", doc: 'rank-4 tensors as `[B, H, N, D]` (default) or `[B, N, H, D]`' },
});

/** The result of `attn.recurrent`: the output in q's rank and layout, and the state after the last token. */
export interface RecurrentResult extends Tensor {
  /** `[B, Hkv, D, Dv]` (`[Hkv, D, Dv]`, `[D, Dv]` for rank-3 and rank-2 inputs). */
  readonly state: Tensor;
}

/** A call validated: the heads, their sizes and what the recurrence needs. */
export interface RecurrentCall {
  readonly q: Heads;
  readonly k: Heads;
  /** Null for `weights()`, which reads no values. */
  readonly v: Heads | null;
  readonly shape: RecurrentShape;
  readonly config: RecurrentConfig;
  readonly layout: Layout;
}

/** Parses `options.rule`: required, one of RULES. */
export function parseRule(value: unknown, name = 'options.rule'): Rule {
  const list = RULES.map((r) => `'${r}'`).join(', ');
  if (value === undefined) throw new TypeError(`${name}: required option is missing; expected one of ${list}`);
  if (typeof value !== 'string') throw new TypeError(`${name}: expected one of ${list}, received ${describe(value)}`);
  if (!(RULES as readonly string[]).includes(value)) throw new RangeError(`${name}: expected one of ${list}, received ${describe(value)}`);
  return value as Rule;
}

/** The dims of k without its last axis: one value per token and head. */
function perTokenDims(k: Tensor): number[] {
  return k.dims.slice(0, -1);
}

/** The index of the head axis in a per-token tensor of `rank` (-1: none, rank-1 `[N]`). */
function headAxis(rank: number, layout: Layout): number {
  if (rank < 2) return -1;
  return layout === 'bnhd' ? 2 : rank - 2;
}

const dimsText = (dims: readonly number[]) => `[${dims.join(', ')}]`;

/** `options.decay` of a gated rule: per head (k's dims minus the last) or per key dim (k's dims). */
function parseDecay(value: unknown, k: Tensor, kh: Heads, layout: Layout): TokenParam {
  const t = asTensor(value, 'options.decay');
  const perHead = perTokenDims(k);
  const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (same(t.dims, perHead)) return { data: t.data, heads: kh.H, width: 1, layout };
  if (same(t.dims, k.dims)) return { data: t.data, heads: kh.H, width: kh.D, layout };
  throw new RangeError(`options.decay.dims: expected ${dimsText(perHead)} (per head) or ${dimsText(k.dims)} (per key dim), k's dims without or with its last axis, received ${dimsText(t.dims)}`);
}

/** `options.beta` of a delta rule: k's dims minus the last, the head axis Hkv or 1. */
function parseBeta(value: unknown, k: Tensor, kh: Heads, layout: Layout): TokenParam {
  const t = asTensor(value, 'options.beta');
  const want = perTokenDims(k);
  const axis = headAxis(want.length, layout);
  const ok = t.dims.length === want.length && t.dims.every((x, i) => x === want[i] || (i === axis && x === 1));
  if (!ok) {
    const shared = axis >= 0 ? ` (or ${dimsText(want.map((x, i) => (i === axis ? 1 : x)))}, one rate shared by the kv heads)` : '';
    throw new RangeError(`options.beta.dims: expected ${dimsText(want)}${shared}, k's dims without its last axis, received ${dimsText(t.dims)}`);
  }
  return { data: t.data, heads: axis >= 0 && t.dims[axis] === 1 ? 1 : kh.H, width: 1, layout };
}

/** The state's dims in the inputs' rank: `[B, Hkv, D, Dv]`, `[Hkv, D, Dv]` or `[D, Dv]`. */
export function stateDims(rank: number, { B, Hkv, D, Dv }: Pick<RecurrentShape, 'B' | 'Hkv' | 'D' | 'Dv'>): number[] {
  return rank === 4 ? [B, Hkv, D, Dv] : rank === 3 ? [Hkv, D, Dv] : [D, Dv];
}

/** `options.initialState`: the state dims in the inputs' rank, or always `[B, Hkv, D, Dv]`. */
export function parseInitialState(value: unknown, rank: number, shape: Pick<RecurrentShape, 'B' | 'Hkv' | 'D' | 'Dv'>, name = 'options.initialState'): Float32Array {
  const t = asTensor(value, name);
  const full = stateDims(4, shape);
  const short = stateDims(rank, shape);
  const same = (want: number[]) => t.dims.length === want.length && t.dims.every((x, i) => x === want[i]);
  if (!same(full) && !same(short)) throw new RangeError(`${name}.dims: expected [B, Hkv, D, Dv] = ${dimsText(full)}, received ${dimsText(t.dims)}`);
  return t.data;
}

/** Reads the rule's decay and beta: required where the rule uses them, refused where it does not. */
export function ruleInputs(rule: Rule, decay: unknown, beta: unknown, read: { decay: () => TokenParam; beta: () => TokenParam }, prefix = 'options'): Pick<RecurrentConfig, 'decay' | 'beta'> {
  const given = (x: unknown) => x !== undefined && x !== null;
  if (isGated(rule) && !given(decay)) throw new TypeError(`${prefix}.decay: rule '${rule}' decays the state and needs a log-space decay tensor, received ${describe(decay)}`);
  if (!isGated(rule) && given(decay)) throw new RangeError(`${prefix}.decay: only the rules 'gated' and 'gatedDelta' decay the state, received a decay with rule '${rule}'`);
  if (isDelta(rule) && !given(beta)) throw new TypeError(`${prefix}.beta: rule '${rule}' needs the write strength beta, received ${describe(beta)}`);
  if (!isDelta(rule) && given(beta)) throw new RangeError(`${prefix}.beta: only the rules 'delta' and 'gatedDelta' take beta, received a beta with rule '${rule}'`);
  return { decay: isGated(rule) ? read.decay() : null, beta: isDelta(rule) ? read.beta() : null };
}

/**
 * Validates a call of `attn.recurrent` (v null: `weights()`): q `[B, H, N,
 * D]`, k `[B, Hkv, N, D]`, v `[B, Hkv, N, Dv]` (ranks 2 to 4, or `'bnhd'`),
 * the rule and its tensors. TypeError / RangeError naming the argument.
 */
export function parseRecurrent(q: unknown, k: unknown, v: unknown, options: unknown, withValues = true): RecurrentCall {
  const o = asOptions(options) as Options;
  rejectUndeclared(o, recurrentOptions, 'recurrent', 'options');
  const layout = readLayout(o);
  const rule = parseRule(o.rule);
  const qh = asHeads(q, 'q', layout);
  const kh = asHeads(k, 'k', layout);
  const vh = withValues ? asHeads(v, 'v', layout) : null;
  checkQKV(qh, kh, vh);
  if (qh.rank !== kh.rank || (vh && vh.rank !== qh.rank)) {
    throw new RangeError(`k.dims: q, k and v must have the same rank, received ranks ${qh.rank}, ${kh.rank}${vh ? `, ${vh.rank}` : ''}`);
  }
  if (kh.N !== qh.N) throw new RangeError(`k.dims: recurrent attention reads one key per query position, so Nk must equal Nq = ${qh.N}, received Nk = ${kh.N}`);
  const shape: RecurrentShape = { B: qh.B, H: qh.H, Hkv: kh.H, N: qh.N, D: qh.D, Dv: vh ? vh.D : qh.D };
  const kt = k as Tensor;
  const { decay, beta } = ruleInputs(rule, o.decay, o.beta, { decay: () => parseDecay(o.decay, kt, kh, layout), beta: () => parseBeta(o.beta, kt, kh, layout) });
  const initialState = o.initialState === undefined || o.initialState === null ? null : parseInitialState(o.initialState, qh.rank, shape);
  const scale = optionalNumber(o, 'scale', 1 / Math.sqrt(shape.D), { float32: true });
  const { B, H, N, Dv, Hkv, D } = shape;
  checkFits(B * H * N * Dv * 4 + B * Hkv * D * Dv * 4, 'q.dims, v.dims', `the output [B, H, N, Dv] = [${B}, ${H}, ${N}, ${Dv}] and the state`);
  return { q: qh, k: kh, v: vh, shape, config: { rule, scale, decay, beta, initialState }, layout };
}

/** The result tensors in the caller's rank and layout. */
export function recurrentResult(call: RecurrentCall, out: Float32Array, state: Float32Array): RecurrentResult {
  const { B, H, N, Dv } = call.shape;
  const output = toTensor(out, B, H, N, Dv, call.q.rank, call.layout);
  return { data: output.data, dims: output.dims, state: { data: state, dims: stateDims(call.q.rank, call.shape) } };
}

/** The float64 reference (the JS backend): output and final state. */
export function recurrentReference(call: RecurrentCall): { out: Float32Array; state: Float32Array } {
  return recurrentAttention({ q: call.q.data, k: call.k.data, v: call.v!.data, layout: call.layout }, call.shape, call.config);
}

/**
 * The dense matrix `[B, H, N, N]` with `out = P v`: defined for the rules
 * without a delta correction and without an initial state (a delta rule's
 * output is not linear in v; an initial state adds a term without v).
 */
export function recurrentDense(call: RecurrentCall): Tensor {
  const { rule, initialState } = call.config;
  if (isDelta(rule)) throw new TypeError(`options.rule: weights() exist for the rules whose output is linear in v ('linear', 'gated'); rule '${rule}' corrects by the state's prediction, received '${rule}'`);
  if (initialState) throw new RangeError(`options.initialState: weights() are those of a call that starts from zeros (an initial state adds a term that is not P v), received an initialState`);
  const { B, H, N } = call.shape;
  checkFits(B * H * N * N * 4, 'q.dims, k.dims', `the matrix [B, H, N, N] = [${B}, ${H}, ${N}, ${N}]`);
  return { data: recurrentWeights(call.q.data, call.k.data, call.layout, call.shape, call.config), dims: [B, H, N, N] };
}

/** The kernels of assembly/variants/recurrent.ts. */
export interface RecurrentKernels {
  /** Tokens per chunk of a mode: calls start at multiples of it. */
  recurrentChunk(mode: number): number;
  recurrentStateBytes(D: number, Dv: number): number;
  recurrentWorkBytes(D: number, Dv: number, group: number): number;
  /** A state block from `init` [D][Dv] float32 (0: zeros). */
  recurrentLoad(state: number, init: number, D: number, Dv: number): void;
  /** A state block out as float32 [D][Dv]. */
  recurrentStore(state: number, dst: number, D: number, Dv: number): void;
  recurrentRows(
    work: number, state: number, q: number, qLd: number, qHead: number, k: number, kLd: number, v: number, vLd: number,
    decay: number, decayLd: number, beta: number, betaLd: number, out: number, oLd: number, oHead: number,
    group: number, D: number, Dv: number, mode: number, scale: number, t0: number, t1: number,
  ): void;
}

/** The kernel's mode bits. */
export function modeOf(config: Pick<RecurrentConfig, 'rule' | 'decay'>): number {
  return (isGated(config.rule) ? 1 : 0) | (config.decay && config.decay.width > 1 ? 2 : 0) | (isDelta(config.rule) ? 4 : 0);
}

/** Multiply-adds per call: V8 tiers a WebAssembly function up between calls, so long heads go in several. */
const WORK_PER_CALL = 2 ** 24;

/** Where the output row t of query head hq of batch b starts, and the strides between rows and heads: the layout of q with Dv. */
function outputAddressing(layout: Layout, b: number, hq: number, H: number, N: number, Dv: number) {
  return layout === 'bnhd'
    ? { offset: (b * N * H + hq) * Dv, rowLd: H * Dv, headLd: Dv }
    : { offset: (b * H + hq) * N * Dv, rowLd: Dv, headLd: N * Dv };
}

/**
 * The SIMD kernel as a plan: one job per (batch, kv head), which loads the
 * state (initialState or zeros) into its thread's scratch, runs the head's
 * tokens in calls of whole chunks for all the query heads that read it, and
 * stores the final state. The output and the state are read back in that order.
 */
export function recurrentPlan(runtime: Runtime, call: RecurrentCall): JobPlan {
  const x = runtime.exports as unknown as RecurrentKernels;
  const { q, k, v, shape, config, layout } = call;
  const { B, H, Hkv, N, D, Dv } = shape;
  const group = H / Hkv;
  const mode = modeOf(config);
  const { decay, beta, initialState } = config;
  const outLength = B * H * N * Dv;
  const stateLength = B * Hkv * D * Dv;
  const chunk = x.recurrentChunk(mode);
  const perToken = 3 * D * Dv * (1 + group) + chunk * (D + Dv) * (1 + group) + (decay && decay.width > 1 ? chunk * D * (2 + group) * 4 : 0);
  const rowsPerCall = chunk * Math.max(1, Math.floor(WORK_PER_CALL / (perToken * chunk)));
  const qLd = rowStride(q);
  const qHead = layout === 'bnhd' ? D : N * D;
  const workBytes = x.recurrentWorkBytes(D, Dv, group);
  const stateBytes = x.recurrentStateBytes(D, Dv);
  checkFits(workBytes + stateBytes, 'q.dims, k.dims, v.dims', `the kernel's work block for D = ${D}, Dv = ${Dv} and ${group} query heads per kv head`);
  return {
    what: 'recurrent',
    parts: [q.data, k.data, v!.data, decay?.data ?? 0, beta?.data ?? 0, initialState ?? 0, outLength * 4, stateLength * 4],
    output: 6,
    length: outLength + stateLength,
    gather: (p) => [[p[6], outLength], [p[7], stateLength]],
    scratch: [workBytes, stateBytes],
    jobs: ([qp, kp, vp, dp, bp, ip, out, st]) =>
      Array.from({ length: B * Hkv }, (_, slice): Job => {
        const b = Math.floor(slice / Hkv);
        const h = slice % Hkv;
        const hq = h * group;
        const o = outputAddressing(layout, b, hq, H, N, Dv);
        const work = scratch(0);
        const state = scratch(1);
        const job: KernelCall[] = [['recurrentLoad', state, initialState ? ip + slice * D * Dv * 4 : 0, D, Dv]];
        for (let t0 = 0; t0 < N; t0 += rowsPerCall) {
          job.push([
            'recurrentRows', work, state,
            qp + headOffset(q, b, hq, H) * 4, qLd, qHead, kp + headOffset(k, b, hq, H) * 4, rowStride(k), vp + headOffset(v!, b, hq, H) * 4, rowStride(v!),
            decay ? dp + tokenOffset(decay, b, h, N) * 4 : 0, decay ? tokenStride(decay) : 0,
            beta ? bp + tokenOffset(beta, b, h, N) * 4 : 0, beta ? tokenStride(beta) : 0,
            out + o.offset * 4, o.rowLd, o.headLd,
            group, D, Dv, mode, config.scale, t0, Math.min(N, t0 + rowsPerCall),
          ]);
        }
        job.push(['recurrentStore', state, st + slice * D * Dv * 4, D, Dv]);
        return job;
      }),
  };
}

/** Splits a plan's gathered floats (a fresh array) into the output and the state, as views without a copy. */
export function splitResult(call: RecurrentCall, floats: Float32Array): RecurrentResult {
  const { B, H, N, Dv } = call.shape;
  const outLength = B * H * N * Dv;
  return recurrentResult(call, floats.subarray(0, outLength), floats.subarray(outLength));
}
