/**
 * The WebAssembly backend: the module's exports bound once, the arena over
 * its memory, and the one call shape every kernel shares: copy inputs in,
 * run the kernel, copy the output out.
 */
import { Arena, MAX_PAGES, type FramePart } from './arena.js';
import type { Exports } from './exports.js';
import { instantiateModule, type WasmSource } from './load.js';
import type { Heads } from '../tensor.js';
import type { Common } from '../validate.js';

export class Runtime {
  private constructor(
    readonly exports: Exports,
    readonly arena: Arena,
  ) {}

  /** The default build is the relaxed-SIMD one when `relaxed`; a given `source` is used as it is. */
  static async create(source?: WasmSource, relaxed = false): Promise<Runtime> {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
    const exports = await instantiateModule(source, memory, relaxed);
    return new Runtime(exports, new Arena(memory, exports.heapBase()));
  }

  /** Whether the loaded build fuses multiply-adds (relaxed SIMD). */
  get relaxedSimd(): boolean {
    return this.exports.relaxedSimd() !== 0;
  }

  /**
   * One kernel call: `parts` are the buffers (inputs to copy in, byte counts
   * for outputs and scratch); `run` gets their pointers. The output is the
   * part at index `output`, `length` floats, copied out.
   */
  call(what: string, parts: readonly FramePart[], output: number, length: number, run: (p: number[]) => void): Float32Array {
    return this.arena.frame(parts, what, (p) => {
      run(p);
      return this.arena.readF32(p[output], length);
    });
  }

  /** Exact softmax attention of q over k, v with the common options (causal, key padding). */
  full(q: Heads, k: Heads, v: Heads, common: Common): Float32Array {
    const { B, H, N: Nq, D } = q;
    const { N: Nk } = k;
    const Dv = v.D;
    const x = this.exports;
    const outLength = B * H * Nq * Dv;
    const pad = common.keyPadding;
    const parts = [q.data, k.data, v.data, outLength * 4, x.packBytes(Nk, D, Dv), x.groupBytes(D, Dv), pad ?? 0];
    return this.call('full', parts, 3, outLength, ([qp, kp, vp, out, pack, tiles, padp]) => {
      for (let bh = 0; bh < B * H; bh++) {
        const b = Math.floor(bh / H);
        x.packHead(kp + bh * Nk * D * 4, vp + bh * Nk * Dv * 4, Nk, D, Dv, pad ? padp + b * Nk : 0, pack);
        const qHead = qp + bh * Nq * D * 4;
        const outHead = out + bh * Nq * Dv * 4;
        forRowChunks(Nq, Nk, D + Dv, (start, end) =>
          x.fullAttentionRows(qHead, outHead, Nq, Nk, D, Dv, common.scale, common.causal ? 1 : 0, pack, tiles, start, end),
        );
      }
    });
  }
}

/** Rows the kernels process together (TILE_GROUP tiles of 8 rows): chunks are multiples of it. */
const ROW_GROUP = 32;

/**
 * Splits a head's rows into calls of about 16 million multiply-adds each
 * (and whole row groups): V8 tiers a WebAssembly function up between calls,
 * never within one, so a long first call would otherwise run entirely in
 * baseline code.
 */
export function forRowChunks(Nq: number, Nk: number, width: number, body: (start: number, end: number) => void): void {
  const rows = ROW_GROUP * Math.max(1, Math.ceil(2 ** 24 / Math.max(1, Nk * width) / ROW_GROUP));
  for (let start = 0; start < Nq; start += rows) body(start, Math.min(Nq, start + rows));
}
