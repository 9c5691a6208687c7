/**
 * The SIMD backward pass of `full` (SPEC "Gradients") as FlashAttention-2's,
 * a plan of three stages (assembly/grad/full.ts): each row's log-sum-exp
 * and `delta = g . out` per (batch, query head); then per (batch, kv head)
 * the key blocks in order, each against every row of the group's query
 * heads, giving dk, dv and the heads' dq; then, with a bias, its gradient per
 * slice of its broadcast dims. No Nq x Nk buffer; every sum runs in a fixed
 * order inside one job, so the pool gives the same bits.
 */
import type { LogitOptions } from '../model.js';
import { viewSize } from '../reference/grad/softmax.js';
import { balancedRowJobs, type Runtime } from '../runtime/runtime.js';
import { sideBySide, scratch, type Job, type JobPlan, type KernelCall } from '../runtime/jobs.js';
import { termsParts, writeTermsCall } from '../engine.js';
import { hasLogitOptions } from '../model.js';
import { headOffset, type Heads } from '../tensor.js';
import type { Common } from '../validate.js';
import type { BackwardPlan, Gradients } from './backward.js';
import { passBufferBytes, passCalls, type KernelPlan } from '../pattern-kernel.js';
import type { PatternParsed } from '../patterns.js';
import type { Inputs } from '../variants/variant.js';

/** The exports of assembly/grad/full.ts (and the forward's packing). */
interface FullGradKernels {
  packBytes(Nk: number, D: number, Dv: number): number;
  groupBytes(D: number, Dv: number): number;
  termsBytes(): number;
  fullGradWorkBytes(): number;
  patternGradRecordBytes(): number;
}

type PassKernels = Parameters<typeof passBufferBytes>[0];

const KEY_BLOCK = 64;
/** Keys a stage-2 call sweeps: four blocks, whose dk and dv stay in cache while each row block meets them. */
const KEY_RANGE = 4 * KEY_BLOCK;
/** Rows a stage-2 call covers: whole 64-row blocks of about 16M multiply-adds (V8 tiers a function up between calls). */
function rowsPerCall(D: number, Dv: number): number {
  return 64 * Math.max(1, Math.floor(2 ** 24 / (KEY_RANGE * (3 * D + 2 * Dv)) / 64));
}

/** What narrows the keys a row sees beyond causal, padding and the terms. */
export type Visibility =
  /** the union of `local` rules: the row at position p sees p - before .. p + after */
  | { readonly window: { readonly before: number; readonly after: number } }
  /** any pattern set, as the forward's plan of passes (whose passes also give the row statistics) */
  | { readonly pattern: { readonly plan: KernelPlan; readonly parsed: PatternParsed; readonly inputs: Inputs } };

/**
 * The backward plan of softmax attention over the keys that causal, key
 * padding, the terms and `visibility` leave visible. `output`: the forward's
 * output when the caller gave it (`'bhnd'`), so that the row statistics need
 * only the log-sum-exp (no P V); a pattern's passes recompute it anyway.
 */
export function fullBackwardPlan(
  runtime: Runtime, q: Heads, k: Heads, v: Heads, gradOutput: Heads, common: Common, terms: LogitOptions,
  { visibility = null, output = null }: { visibility?: Visibility | null; output?: Heads | null } = {},
): BackwardPlan {
  const x = runtime.exports as unknown as FullGradKernels & PassKernels;
  const window = visibility && 'window' in visibility ? visibility.window : null;
  const pattern = visibility && 'pattern' in visibility ? visibility.pattern : null;
  const given = pattern ? null : output;
  const { B, H, N: Nq, D } = q;
  const { H: Hkv, N: Nk } = k;
  const Dv = v.D;
  const group = H / Hkv;
  const { scale, causal } = common;
  // the band of keys p - lo .. p + hi each row sees (-1: unbounded)
  const lo = window ? window.before : -1;
  const hi = causal ? 0 : window ? window.after : -1;
  const pad = common.keyPadding;
  const bias = terms.bias;
  const lengths = [B * H * Nq * D, B * Hkv * Nk * D, B * Hkv * Nk * Dv, bias ? viewSize(bias) : 0];
  const starts = sideBySide(lengths);
  const length = starts[3] + lengths[3];
  const tiled = Math.ceil(Nq / 8) * 8;
  const [pack, tiles, record, rows, gTiles, vKeys, residues, state, gathered, patternRecord] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(scratch);
  const passes = pattern ? passBufferBytes(x, pattern.plan, pattern.parsed.problem) : [0, 0, 0, 0, 0, 0];
  const patternArg = pattern ? patternRecord : 0;
  const withTerms = hasLogitOptions(terms);
  const chunk = rowsPerCall(D, Dv);
  const plan: JobPlan = {
    what: 'full backward',
    parts: [
      q.data, k.data, v.data, gradOutput.data, length * 4, pad ?? 0, ...termsParts(terms), B * H * Nq * 2 * 4,
      pattern?.plan.isToken ?? 0, pattern?.plan.extra?.offsets ?? 0, pattern?.plan.extra?.keys ?? 0, pattern?.plan.extra?.bits ?? 0,
      given?.data ?? 0,
    ],
    output: 4,
    length,
    scratch: [
      x.packBytes(Nk, D, Dv), Math.max(x.groupBytes(D, Dv), x.fullGradWorkBytes()), x.termsBytes(),
      Math.max(Nq * Dv, tiled * D) * 4, tiled * Dv * 4, Math.ceil(Nk / 4) * 4 * Dv * 4,
      passes[1], passes[3], passes[4], pattern ? x.patternGradRecordBytes() : 0,
    ],
    // stage 1: row statistics, by the forward's own row jobs (or passes)
    jobs: (pointers) =>
      Array.from({ length: B * H }, (_, bh) => {
        const [b, h] = [Math.floor(bh / H), bh % H];
        const head = headCalls(b, h, pointers);
        if (pattern) {
          const [qp, kp, vp, , , padp, maskp, biasp, , tokens, offsets, keys, bits] = pointers;
          const buffers = { pack, residues, tile: tiles, rows: state, gathered, record };
          const passPointers = [qp, kp, vp, padp, tokens, offsets, keys, bits, maskp, biasp];
          const stats: KernelCall = ['patternGradRowStats', state, Nq, Dv, head.g, head.lse, head.delta];
          return [[...passCalls(pattern.plan, pattern.parsed, pattern.inputs, passPointers, buffers, b, h), stats]];
        }
        return balancedRowJobs(Nq, Nk, D + Dv, causal).map((ranges): Job => [
          head.pack,
          ...head.terms,
          ...ranges.map(([start, end]): KernelCall => [
            'fullGradRowStats', head.q, head.g, given ? pointers[13] + (b * H + h) * Nq * Dv * 4 : rows, given ? 1 : 0,
            Nq, Nk, D, Dv, scale, lo, hi, head.record, pack, tiles, start, end, head.lse, head.delta,
          ]),
        ]);
      }).flat(),
    stages: [
      // stage 2: per (batch, kv head), its key blocks against every row of its query heads
      (pointers) =>
        Array.from({ length: B * Hkv }, (_, bg): Job => {
          const [b, kvHead] = [Math.floor(bg / Hkv), bg % Hkv];
          const out = pointers[4];
          const dk = out + (starts[1] + bg * Nk * D) * 4;
          const dv = out + (starts[2] + bg * Nk * Dv) * 4;
          const job: KernelCall[] = [...patternRecordCalls(pointers), ['fullGradZero', dk, Nk * D], ['fullGradZero', dv, Nk * Dv]];
          for (let h = kvHead * group; h < (kvHead + 1) * group; h++) {
            const head = headCalls(b, h, pointers);
            const dq = out + (starts[0] + (b * H + h) * Nq * D) * 4;
            if (h === kvHead * group) job.push(head.pack, ['fullGradPackValueKeys', head.v, Nk, Dv, vKeys]);
            job.push(...head.terms, ...head.packRows, ['fullGradZero', dq, Nq * D]);
            for (let j0 = 0; j0 < Nk; j0 += KEY_RANGE) {
              const j1 = Math.min(Nk, j0 + KEY_RANGE);
              for (let r0 = 0; r0 < Nq; r0 += chunk) {
                job.push([
                  'fullGradKeyBlocks', head.q, head.g, head.k, rows, gTiles, Nq, Nk, D, Dv, lo, hi, head.record, patternArg,
                  pack, vKeys, head.lse, head.delta, tiles, dq, dk, dv, j0, j1, r0, Math.min(Nq, r0 + chunk),
                ]);
              }
            }
            job.push(['fullGradScale', dq, Nq * D, scale]);
          }
          job.push(['fullGradScale', dk, Nk * D, scale]);
          return job;
        }),
      // stage 3: each slice of the bias's broadcast dims sums the heads that read it, in order
      (pointers) => {
        if (!bias) return [];
        const [db, dh, di, dj] = bias.dims;
        return Array.from({ length: db * dh }, (_, slice): Job => {
          const [sb, sh] = [Math.floor(slice / dh), slice % dh];
          const grad = pointers[4] + (starts[3] + slice * di * dj) * 4;
          const job: KernelCall[] = [...patternRecordCalls(pointers), ['fullGradZero', grad, di * dj]];
          for (let b = db === 1 ? 0 : sb; b < (db === 1 ? B : sb + 1); b++) {
            for (let h = dh === 1 ? 0 : sh; h < (dh === 1 ? H : sh + 1); h++) {
              const head = headCalls(b, h, pointers);
              job.push(head.pack, ['fullGradPackValueKeys', head.v, Nk, Dv, vKeys], ...head.terms, ...head.packRows);
              for (let j0 = 0; j0 < Nk; j0 += KEY_BLOCK) {
                job.push([
                  'fullGradBiasBlock', rows, gTiles, Nq, Nk, D, Dv, lo, hi, head.record, patternArg,
                  pack, vKeys, head.lse, head.delta, tiles, grad, di === 1 ? 0 : dj, dj === 1 ? 0 : 1, j0,
                ]);
              }
            }
          }
          return job;
        });
      },
    ],
  };

  /** The call that writes the pattern's record (grad/patterns.ts) into this thread's buffer, when there is a pattern. */
  function patternRecordCalls(pointers: readonly number[]): KernelCall[] {
    if (!pattern) return [];
    const [tokens, offsets, keys, bits] = pointers.slice(9);
    const { A, B: after, isToken, stride, extra } = pattern.plan;
    return [['writePatternRecord', patternRecord, A, after, isToken ? tokens : 0, stride?.s ?? 0, stride?.reach ?? -1, extra ? offsets : 0, extra ? keys : 0, extra ? bits : 0]];
  }

  /** The pointers and preparing calls of query head h of batch b. */
  function headCalls(b: number, h: number, [qp, kp, vp, gp, , padp, maskp, biasp, statsp]: readonly number[]) {
    const bh = b * H + h;
    const kvHead = Math.floor(h / group);
    const [qh, kh, vh, gh] = [qp + headOffset(q, b, h, H) * 4, kp + headOffset(k, b, kvHead, Hkv) * 4, vp + headOffset(v, b, kvHead, Hkv) * 4, gp + bh * Nq * Dv * 4];
    return {
      q: qh,
      k: kh,
      v: vh,
      g: gh,
      lse: statsp + bh * 2 * Nq * 4,
      delta: statsp + (bh * 2 + 1) * Nq * 4,
      record: withTerms ? record : 0,
      pack: ['packHead', kh, vh, Nk, D, Dv, D, Dv, pad ? padp + b * Nk : 0, pack] as KernelCall,
      terms: withTerms ? [writeTermsCall(terms, maskp, biasp, b, h, record)] : [],
      packRows: [['fullGradPackRows', qh, Nq, D, scale, rows], ['fullGradPackRows', gh, Nq, Dv, 1, gTiles]] as KernelCall[],
    };
  }

  return {
    plan,
    split: (flat): Gradients => ({
      q: flat.subarray(0, starts[1]),
      k: flat.subarray(starts[1], starts[2]),
      v: flat.subarray(starts[2], starts[3]),
      params: bias ? { bias: { data: flat.subarray(starts[3], length), dims: [...bias.dims] } } : {},
    }),
  };
}
