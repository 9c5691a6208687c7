/**
 * A JS-side arena over WebAssembly memory. Kernels never allocate: each call
 * reserves one frame of buffers (inputs, output, scratch) on top of the
 * pinned tensors, growing memory at most once and before any view is made
 * (growing detaches every view), and releases it when the call ends, failed
 * calls included.
 */
import type { Tensor } from '../tensor.js';

const PAGE = 65536;
/** wasm32 addresses 4 GiB; the memory is declared with this many pages at most. */
export const MAX_PAGES = 65536;
/** Bytes WebAssembly memory can hold at most: no call may need more. */
export const MEMORY_LIMIT = MAX_PAGES * PAGE;
const ALIGN = 16;

const alignUp = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/** A buffer of one frame: a typed array to copy in (unless it already lives in this memory), or bare bytes. */
export type FramePart = Float32Array | Int32Array | Uint8Array | number;

/** A tensor whose data lives in WebAssembly memory, so calls read it without a copy. */
export interface WasmTensor extends Tensor {
  /** A fresh view each time: views made before memory grew are detached. */
  readonly data: Float32Array;
  /** Byte offset in WebAssembly memory. */
  readonly byteOffset: number;
  /** Returns the memory; the tensor must not be used afterwards. */
  free(): void;
}

interface Block {
  offset: number;
  bytes: number;
}

export class Arena {
  /** Pinned blocks (user tensors), sorted by offset. */
  private readonly pinned: Block[] = [];
  /** Where the current frame ends; equals pinnedEnd when no call runs. */
  private top: number;

  constructor(
    readonly memory: WebAssembly.Memory,
    private readonly base: number,
  ) {
    this.top = base;
  }

  private get pinnedEnd(): number {
    const last = this.pinned[this.pinned.length - 1];
    return last ? last.offset + last.bytes : this.base;
  }

  /** Bytes in use: pinned tensors and the running call's frame. */
  get inUse(): number {
    return this.top - this.base;
  }

  /** Makes sure memory reaches `end` bytes, growing it once. */
  private reserve(end: number, what: string): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    if (end > MEMORY_LIMIT) {
      throw new RangeError(`${what}: needs ${end} bytes of WebAssembly memory, more than the ${MEMORY_LIMIT} bytes it can address`);
    }
    try {
      this.memory.grow(pages);
    } catch {
      throw new RangeError(`${what}: could not grow WebAssembly memory to ${end} bytes (out of memory)`);
    }
  }

  /**
   * Runs `body` with one frame: every part gets a 16-byte aligned pointer (a
   * typed array already inside this memory keeps its own), typed arrays are
   * copied in, and the frame is released when body returns or throws.
   */
  frame<T>(parts: readonly FramePart[], what: string, body: (pointers: number[]) => T): T {
    const start = this.top;
    const pointers = this.reserveFrame(parts, what);
    try {
      return body(pointers);
    } finally {
      this.top = start;
    }
  }

  /**
   * {@link frame} for work that completes later (the thread pool). The caller
   * runs one such frame at a time; synchronous frames may come and go on top
   * of it meanwhile.
   */
  async frameAsync<T>(parts: readonly FramePart[], what: string, body: (pointers: number[]) => Promise<T>): Promise<T> {
    const start = this.top;
    const pointers = this.reserveFrame(parts, what);
    try {
      return await body(pointers);
    } finally {
      this.top = start;
    }
  }

  /** Whether a view of this memory lies inside a live pinned tensor. */
  private isPinned(view: Exclude<FramePart, number>): boolean {
    const end = view.byteOffset + view.byteLength;
    return this.pinned.some((block) => view.byteOffset >= block.offset && end <= block.offset + block.bytes);
  }

  /** Reserves and fills one frame's parts; the frame is released by the caller. */
  private reserveFrame(given: readonly FramePart[], what: string): number[] {
    const start = this.top;
    // a view of this memory outside every live tensor (a freed one's) is read now, as a copy: the frame may overwrite it
    const parts = given.map((p) => (typeof p !== 'number' && p.buffer === this.memory.buffer && !this.isPinned(p) ? p.slice() : p));
    // decided before growing: growth detaches the views of tensors already inside
    const inside = parts.map((p) => typeof p !== 'number' && p.buffer === this.memory.buffer);
    let end = start;
    const offsets = parts.map((p, i) => {
      if (inside[i]) return (p as Exclude<FramePart, number>).byteOffset;
      const at = end;
      end = alignUp(end + (typeof p === 'number' ? p : p.byteLength));
      return at;
    });
    this.reserve(end, what);
    this.top = end;
    try {
      const bytes = new Uint8Array(this.memory.buffer);
      parts.forEach((p, i) => {
        if (typeof p !== 'number' && !inside[i]) bytes.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), offsets[i]);
      });
    } catch (error) {
      this.top = start;
      throw error;
    }
    return offsets;
  }

  /** A copy of `length` floats at `pointer`. */
  readF32(pointer: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, pointer, length).slice();
  }

  /** Allocates a tensor in WebAssembly memory (first fit among freed blocks), optionally filled with `values`. */
  tensor(dims: readonly number[], values?: ArrayLike<number>): WasmTensor {
    if (this.top !== this.pinnedEnd) throw new Error('wasm-attention: tensors cannot be allocated while a call runs');
    const length = dims.reduce((a, b) => a * b, 1);
    const bytes = alignUp(Math.max(length * 4, ALIGN));
    let offset = this.pinnedEnd;
    let index = this.pinned.length;
    for (let i = 0, at = this.base; i < this.pinned.length; at = this.pinned[i].offset + this.pinned[i].bytes, i++) {
      if (this.pinned[i].offset - at >= bytes) {
        offset = at;
        index = i;
        break;
      }
    }
    this.reserve(offset + bytes, 'tensor');
    const block = { offset, bytes };
    this.pinned.splice(index, 0, block);
    this.top = this.pinnedEnd;
    const memory = this.memory;
    const view = (): Float32Array => new Float32Array(memory.buffer, offset, length);
    if (values) view().set(values);
    return {
      dims: [...dims],
      byteOffset: offset,
      get data() {
        return view();
      },
      free: () => {
        const i = this.pinned.indexOf(block);
        if (i < 0) return;
        this.pinned.splice(i, 1);
        this.top = this.pinnedEnd;
      },
    };
  }
}
