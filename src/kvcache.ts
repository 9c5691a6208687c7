/**
 * `attn.kvCache(options)` (SPEC "Decoding"): keys and values of a decoder
 * kept in WebAssembly memory in the flash engine's packed layout, so that
 * `append` packs only the new positions in place and `attend` runs the
 * engine loop (attentionRows) straight over the cache, reading it once per
 * kv head: at a single step the G = H / Hkv query heads that share a kv head
 * are the rows of one query tile.
 *
 * With `window: W` the buffer of `capacity` slots is a rolling one: when an
 * append would not fit, the last W - 1 positions move to its front (O(W)
 * once every capacity - W + 1 positions), so a chunk of T positions needs
 * `capacity >= W - 1 + T`.
 */
import { declareOptions, rejectUndeclared } from './options.js';
import { parseLogitOptions, scoringOptions, type ScoringOptions } from './model.js';
import { MAX_PAGES, type WasmTensor } from './runtime/arena.js';
import { scratch, type Job, type JobPlan, type KernelCall } from './runtime/jobs.js';
import { rowJobs, type Runtime } from './runtime/runtime.js';
import { asHeads, headOffset, toTensor, type Heads, type Tensor } from './tensor.js';
import { asOptions, commonOptions, optionalNumber, parseCommon, requiredNumber, type Options } from './validate.js';

/** Options of `attn.kvCache(options)`. */
export interface KvCacheOptions {
  /** Batch size B; default 1. */
  batch?: number;
  /** Key/value heads Hkv; default 1 (queries may have any multiple of it). */
  heads?: number;
  /** Query and key size D. */
  dim: number;
  /** Value size Dv; default `dim`. */
  valueDim?: number;
  /** Positions the buffer holds. */
  capacity: number;
  /** Sliding window W: a query at position p sees positions p - W + 1 .. p (causal); the buffer rolls. */
  window?: number;
}

/** The declaration of {@link KvCacheOptions}. */
export const kvCacheOptions = declareOptions<KvCacheOptions>()({
  batch: { type: '`number`', doc: 'batch size B; default 1' },
  heads: { type: '`number`', doc: 'key/value heads Hkv; default 1 (queries: any multiple H of it, grouped-query attention)' },
  dim: { type: '`number`', doc: 'query and key size D' },
  valueDim: { type: '`number`', doc: 'value size Dv; default `dim`' },
  capacity: { type: '`number`', doc: 'positions the buffer holds; appending past it is a RangeError without a window' },
  window: { type: '`number`', doc: 'W >= 1: a query at position p sees positions p - W + 1 .. p only (causal); the buffer rolls, keeping the last W - 1 positions when full, so a chunk of T needs `capacity >= W - 1 + T`' },
});

/** Options of `cache.attend(q, options)` and `cache.run(q, options)`. */
export interface KvAttendOptions extends ScoringOptions {
  /** Logit scale; default `1 / sqrt(D)`. */
  scale?: number;
  /** Bottom-right causal over the cached positions (implied by a window). */
  causal?: boolean;
}

/** The declaration of {@link KvAttendOptions}. */
export const kvAttendOptions = declareOptions<KvAttendOptions>()({
  scale: commonOptions.scale,
  causal: { type: '`boolean`', doc: 'query at position p (the T queries are the last T positions) sees positions <= p; implied by a window (`false` is then a RangeError)' },
  ...scoringOptions,
});

/**
 * A key/value cache for decoding. `append(k, v)` adds positions; `attend(q)`
 * equals `attn.full(q, K, V, options)` over every position appended so far
 * (with a window: `attn.local(q, K, V, { before: W - 1, after: 0, causal:
 * true, ... })`), q holding the last T positions.
 */
export interface KvCache {
  /** Where the cache lives: WebAssembly memory ('wasm') or JS arrays ('js'). */
  readonly backend: 'wasm' | 'js';
  /** Positions appended since creation or the last `reset()` (with a window, older ones are no longer held). */
  readonly length: number;
  readonly capacity: number;
  /** The window W, or null. */
  readonly window: number | null;
  /** Bytes of WebAssembly memory the cache pins (0 for 'js'). */
  readonly bytes: number;
  /** Adds positions: `k: [B, Hkv, T, D]`, `v: [B, Hkv, T, Dv]` (ranks 2 and 3 when B = 1, as everywhere). */
  append(k: Tensor, v: Tensor): void;
  /**
   * `q: [B, H, T, D]` (H a multiple of Hkv) at the last T positions: the
   * attention output `[B, H, T, Dv]`. mask / bias dims broadcast to
   * `[B, H, T, length]` (the key axis: every position appended).
   */
  attend(q: Tensor, options?: KvAttendOptions): Tensor;
  /** `attend` on the instance's thread pool (split by batch and kv head): the same bits. Do not append before it settles. */
  run(q: Tensor, options?: KvAttendOptions): Promise<Tensor>;
  /** Forgets every position. */
  reset(): void;
  /** Frees the cache's memory; using it afterwards is an error. */
  dispose(): void;
}

/** The full or local call that the JS backend's cache makes: Instance.apply. */
export type Reference = (name: 'full' | 'local', q: Tensor, k: Tensor, v: Tensor, options: object) => Tensor;

interface Shape {
  readonly B: number;
  readonly Hkv: number;
  readonly D: number;
  readonly Dv: number;
  readonly capacity: number;
  readonly window: number | null;
}

/** `attn.kvCache(options)`: WebAssembly-backed when `runtime` is given, else the JS reference. */
export function createKvCache(runtime: Runtime | null, reference: Reference, options: KvCacheOptions): KvCache {
  const o = asOptions(options);
  rejectUndeclared(o, kvCacheOptions, 'kvCache', 'options');
  const D = requiredNumber(o, 'dim', { integer: true, min: 1 });
  const capacity = requiredNumber(o, 'capacity', { integer: true, min: 1 });
  const B = optionalNumber(o, 'batch', 1, { integer: true, min: 1 });
  const Hkv = optionalNumber(o, 'heads', 1, { integer: true, min: 1 });
  const Dv = optionalNumber(o, 'valueDim', D, { integer: true, min: 1 });
  const window = o.window === undefined ? null : requiredNumber(o, 'window', { integer: true, min: 1, max: capacity });
  const shape = { B, Hkv, D, Dv, capacity, window };
  return runtime ? new WasmKvCache(runtime, shape) : new JsKvCache(reference, shape);
}

const roundUp4 = (n: number) => Math.ceil(n / 4) * 4;

/** The bookkeeping and the checks both backends share. */
abstract class KvCacheBase implements KvCache {
  abstract readonly backend: 'wasm' | 'js';
  length = 0;
  readonly capacity: number;
  readonly window: number | null;
  protected disposed = false;
  protected running = 0;

  constructor(protected readonly shape: Shape) {
    this.capacity = shape.capacity;
    this.window = shape.window;
  }

  get bytes(): number {
    return 0;
  }

  protected usable(what: string): void {
    if (this.disposed) throw new TypeError(`cache: ${what}() on a disposed cache`);
    if (this.running > 0) throw new TypeError(`cache: ${what}() while a run() is pending (await it first)`);
  }

  /** Checks an append; returns k and v as heads. */
  protected readAppend(k: unknown, v: unknown): { k: Heads; v: Heads } {
    this.usable('append');
    const { B, Hkv, D, Dv } = this.shape;
    const kh = asHeads(k, 'k');
    const vh = asHeads(v, 'v');
    const want = (x: Heads, name: string, width: number, widthName: string) => {
      if (x.B !== B || x.H !== Hkv || x.D !== width) {
        throw new RangeError(`${name}.dims: expected [B, Hkv, T, ${widthName}] = [${B}, ${Hkv}, T, ${width}], received [${(name === 'k' ? (k as Tensor) : (v as Tensor)).dims.join(', ')}]`);
      }
    };
    want(kh, 'k', D, 'D');
    want(vh, 'v', Dv, 'Dv');
    if (vh.N !== kh.N) throw new RangeError(`v.dims: expected T = ${kh.N} positions as in k, received [${(v as Tensor).dims.join(', ')}]`);
    const T = kh.N;
    const { capacity, window } = this.shape;
    if (window === null && this.length + T > capacity) {
      throw new RangeError(`k.dims: ${T} more positions would hold ${this.length + T}, past options.capacity ${capacity} (received [${(k as Tensor).dims.join(', ')}])`);
    }
    if (window !== null && T > capacity - (window - 1)) {
      throw new RangeError(`k.dims: a chunk of T = ${T} positions needs capacity >= window - 1 + T = ${window - 1 + T}, the cache has ${capacity} (received [${(k as Tensor).dims.join(', ')}])`);
    }
    return { k: kh, v: vh };
  }

  /** Checks an attend: q as heads, its output shape, and the parsed options. */
  protected readAttend(q: unknown, options: unknown, what: string) {
    this.usable(what);
    const { B, Hkv, D, window } = this.shape;
    const qh = asHeads(q, 'q');
    const dims = (q as Tensor).dims.join(', ');
    if (qh.B !== B || qh.D !== D) throw new RangeError(`q.dims: expected [B, H, T, D] = [${B}, H, T, ${D}], received [${dims}]`);
    if (qh.H % Hkv !== 0) throw new RangeError(`q.dims: H mod Hkv must be 0 (H = ${qh.H}, the cache has Hkv = ${Hkv} heads), received [${dims}]`);
    const T = qh.N;
    if (T < 1 || T > this.length) throw new RangeError(`q.dims: expected 1 <= T <= ${this.length} (the queries are the last T of the ${this.length} cached positions), received [${dims}]`);
    if (window !== null && T > this.heldFor(window)) {
      throw new RangeError(`q.dims: the window of the first of T = ${T} queries reaches positions the cache no longer holds (at most T = ${this.heldFor(window)} now), received [${dims}]`);
    }
    const o = asOptions(options) as Options;
    rejectUndeclared(o, kvAttendOptions, 'kvCache.attend', 'options');
    const common = parseCommon(o, D, B, 0);
    if (window !== null && o.causal === false) throw new RangeError(`options.causal: a cache with a window is causal, received false`);
    const terms = parseLogitOptions(o, { B, H: qh.H, Nq: T, Nk: this.length });
    return { q: qh, T, H: qh.H, scale: common.scale, causal: window !== null || common.causal, terms, options: o };
  }

  /** With a window: how many trailing queries the held positions can answer. */
  protected abstract heldFor(window: number): number;

  abstract append(k: Tensor, v: Tensor): void;
  abstract attend(q: Tensor, options?: KvAttendOptions): Tensor;
  abstract run(q: Tensor, options?: KvAttendOptions): Promise<Tensor>;
  abstract reset(): void;
  abstract dispose(): void;
}

/** The JS backend's cache: every position in float32 arrays, attended by the float64 reference. */
class JsKvCache extends KvCacheBase {
  readonly backend = 'js';
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];

  constructor(
    private readonly reference: Reference,
    shape: Shape,
  ) {
    super(shape);
  }

  protected heldFor(): number {
    return this.length;
  }

  append(k: Tensor, v: Tensor): void {
    const read = this.readAppend(k, v);
    this.keys.push(Float32Array.from(read.k.data));
    this.values.push(Float32Array.from(read.v.data));
    this.length += read.k.N;
  }

  /** The appended chunks concatenated along the position axis: [B, Hkv, length, width]. */
  private concat(chunks: Float32Array[], width: number): Tensor {
    const { B, Hkv } = this.shape;
    const out = new Float32Array(B * Hkv * this.length * width);
    let at = 0;
    for (const chunk of chunks) {
      const T = chunk.length / (B * Hkv * width);
      for (let bh = 0; bh < B * Hkv; bh++) out.set(chunk.subarray(bh * T * width, (bh + 1) * T * width), (bh * this.length + at) * width);
      at += T;
    }
    return { data: out, dims: [B, Hkv, this.length, width] };
  }

  attend(q: Tensor, options?: KvAttendOptions): Tensor {
    const read = this.readAttend(q, options, 'attend');
    const K = this.concat(this.keys, this.shape.D);
    const V = this.concat(this.values, this.shape.Dv);
    const { B, H, T } = { B: this.shape.B, H: read.H, T: read.T };
    const q4 = { data: read.q.data, dims: [B, H, T, this.shape.D] };
    const { window } = this.shape;
    const out =
      window === null
        ? this.reference('full', q4, K, V, read.options)
        : this.reference('local', q4, K, V, { ...read.options, before: window - 1, after: 0, causal: true });
    return toTensor(out.data, B, H, T, this.shape.Dv, read.q.rank);
  }

  async run(q: Tensor, options?: KvAttendOptions): Promise<Tensor> {
    return this.attend(q, options);
  }

  reset(): void {
    this.usable('reset');
    this.keys = [];
    this.values = [];
    this.length = 0;
  }

  dispose(): void {
    this.keys = [];
    this.values = [];
    this.disposed = true;
  }
}

/** The kernels of the cache (assembly/variants/kvcache.ts, attentionRows). */
interface KvKernels {
  kvBlockBytes(D: number, Dv: number): number;
  kvAppend(head: number, k: number, v: number, T: number, D: number, Dv: number, kLd: number, vLd: number, slot0: number): void;
  kvShift(head: number, from: number, count: number, D: number, Dv: number): void;
  groupBytes(D: number, Dv: number): number;
  termsBytes(): number;
}

/**
 * One pinned block: the key bias (0 for held slots, -inf for the rest of the
 * last key tile) of capPad floats, then B Hkv heads in the cache layout.
 */
class WasmKvCache extends KvCacheBase {
  readonly backend = 'wasm';
  private block: WasmTensor | null;
  private readonly x: KvKernels;
  private readonly headBytes: number;
  /** Bytes from one block of 64 positions to the next. */
  private readonly blockBytes: number;
  private readonly capPad: number;
  /** Slots held (positions base .. base + count). */
  private count = 0;
  private base = 0;

  constructor(
    private readonly runtime: Runtime,
    shape: Shape,
  ) {
    super(shape);
    const { B, Hkv, D, Dv, capacity } = shape;
    this.x = runtime.exports as unknown as KvKernels;
    this.capPad = roundUp4(capacity);
    // the cache layout (blocks of 64 positions, keys then values), sized in doubles: no size can overflow
    this.blockBytes = this.x.kvBlockBytes(D, Dv);
    this.headBytes = Math.ceil(capacity / 64) * this.blockBytes;
    const bytes = this.capPad * 4 + B * Hkv * this.headBytes;
    const limit = MAX_PAGES * 65536;
    if (!(bytes < limit - runtime.arena.memory.buffer.byteLength)) {
      throw new RangeError(`options.batch, options.heads, options.dim, options.valueDim, options.capacity: a cache of ${capacity} positions ([B, Hkv] = [${B}, ${Hkv}], D = ${D}, Dv = ${Dv}) needs ${bytes} bytes, more than WebAssembly memory can hold`);
    }
    try {
      this.block = runtime.arena.tensor([bytes / 4]);
    } catch (error) {
      if (error instanceof RangeError) throw new RangeError(`options.batch, options.heads, options.dim, options.valueDim, options.capacity: a cache of ${capacity} positions needs ${bytes} bytes: ${error.message}`);
      throw error;
    }
    this.block.data.fill(0);
  }

  override get bytes(): number {
    return this.block ? this.capPad * 4 + this.shape.B * this.shape.Hkv * this.headBytes : 0;
  }

  protected heldFor(window: number): number {
    // the first query at position length - T needs positions from length - T - W + 1 (or 0)
    return this.base === 0 ? this.length : this.length - this.base - (window - 1);
  }

  private head(bh: number): number {
    return this.block!.byteOffset + this.capPad * 4 + bh * this.headBytes;
  }

  private keyBias(): Float32Array {
    return new Float32Array(this.runtime.arena.memory.buffer, this.block!.byteOffset, this.capPad);
  }

  append(k: Tensor, v: Tensor): void {
    const read = this.readAppend(k, v);
    const T = read.k.N;
    if (T === 0) return;
    const { B, Hkv, D, Dv, capacity, window } = this.shape;
    const x = this.x;
    let shifted = false;
    this.runtime.arena.frame([read.k.data, read.v.data], 'cache.append', ([kp, vp]) => {
      if (window !== null && this.count + T > capacity) {
        const keep = Math.min(this.count, window - 1);
        const from = this.count - keep;
        for (let bh = 0; bh < B * Hkv; bh++) x.kvShift(this.head(bh), from, keep, D, Dv);
        this.base += from;
        this.count = keep;
        shifted = true;
      }
      for (let bh = 0; bh < B * Hkv; bh++) {
        const [b, h] = [Math.floor(bh / Hkv), bh % Hkv];
        x.kvAppend(this.head(bh), kp + headOffset(read.k, b, h, Hkv) * 4, vp + headOffset(read.v, b, h, Hkv) * 4, T, D, Dv, D, Dv, this.count);
      }
    });
    const bias = this.keyBias();
    const end = this.count + T;
    bias.fill(0, shifted ? 0 : this.count, end);
    bias.fill(-Infinity, end, roundUp4(end));
    this.count = end;
    this.length += T;
  }

  private plan(q: Tensor, options: KvAttendOptions | undefined, what: string): { plan: JobPlan; output: (data: Float32Array) => Tensor } {
    const read = this.readAttend(q, options, what);
    const { B, Hkv, D, Dv, window } = this.shape;
    const { H, T, scale, causal, terms } = read;
    const G = H / Hkv;
    const x = this.x;
    const count = this.count;
    const keyBias = count % 4 !== 0 ? this.block!.byteOffset : 0;
    const before = window === null ? -1 : window - 1;
    const [tiles, record] = [scratch(0), scratch(1)];
    const base = this.base;
    const { mask, bias, softcap } = terms;
    const hasTerms = mask !== null || bias !== null || softcap !== null;
    // the record of the rows of head h (b, h): T = 1 rows are the G heads of a kv head (row stride: the head stride)
    const termsCall = (maskp: number, biasp: number, b: number, h: number, rowsAreHeads: boolean): KernelCall => {
      const at = (s: readonly number[]) => b * s[0] + h * s[1] + base * s[3];
      return [
        'writeTerms', record,
        mask ? maskp + at(mask.strides) : 0, mask ? mask.strides[rowsAreHeads ? 1 : 2] : 0, mask?.strides[3] ?? 0,
        bias ? biasp + at(bias.strides) * 4 : 0, bias ? bias.strides[rowsAreHeads ? 1 : 2] : 0, bias?.strides[3] ?? 0,
        softcap ?? 0,
      ];
    };
    const qShape = { H, N: T, D, layout: 'bhnd' as const };
    const oShape = { H, N: T, D: Dv, layout: 'bhnd' as const };
    const plan: JobPlan = {
      what: `cache.${what}`,
      parts: [read.q.data, B * H * T * Dv * 4, mask?.data ?? 0, bias?.data ?? 0],
      output: 1,
      length: B * H * T * Dv,
      scratch: [x.groupBytes(D, Dv), x.termsBytes()],
      jobs: ([qp, op, maskp, biasp]) => {
        const jobs: Job[] = [];
        for (let bh = 0; bh < B * Hkv; bh++) {
          const [b, g] = [Math.floor(bh / Hkv), bh % Hkv];
          const kp = this.head(bh);
          const engine = (h: number, rows: [number, number], step: number, rowsAreHeads: boolean): Job => {
            const call: KernelCall = [
              'attentionRows', qp + headOffset(qShape, b, h, H) * 4, op + headOffset(oShape, b, h, H) * 4, count, D, Dv, D, Dv,
              scale, causal ? 1 : 0, hasTerms ? record : 0, kp, 0, this.blockBytes, keyBias, tiles, rows[0], rows[1], step === 0 ? count - 1 : count - T, step, before, 0,
            ];
            return hasTerms ? [termsCall(maskp, biasp, b, h, rowsAreHeads), call] : [call];
          };
          if (T === 1) {
            // one step: the G query heads of kv head g are the rows of one tile (rows D floats apart), all at the last position
            jobs.push(engine(g * G, [0, G], 0, true));
          } else {
            for (let h = g * G; h < (g + 1) * G; h++) for (const rows of rowJobs(T, count, D + Dv)) jobs.push(engine(h, rows, 1, false));
          }
        }
        return jobs;
      },
    };
    return { plan, output: (data) => toTensor(data, B, H, T, Dv, read.q.rank) };
  }

  attend(q: Tensor, options?: KvAttendOptions): Tensor {
    const { plan, output } = this.plan(q, options, 'attend');
    return output(this.runtime.execute(plan));
  }

  async run(q: Tensor, options?: KvAttendOptions): Promise<Tensor> {
    const { plan, output } = this.plan(q, options, 'run');
    if (this.runtime.threads === 1) return output(this.runtime.execute(plan));
    this.running++;
    try {
      return output(await this.runtime.executeParallel(plan));
    } finally {
      this.running--;
    }
  }

  reset(): void {
    this.usable('reset');
    this.count = 0;
    this.base = 0;
    this.length = 0;
  }

  dispose(): void {
    if (this.running > 0) throw new TypeError('cache: dispose() while a run() is pending (await it first)');
    this.block?.free();
    this.block = null;
    this.disposed = true;
  }
}
