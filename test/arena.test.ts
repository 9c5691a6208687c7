// The arena: one growth at most per call, no copy for inputs already in
// WebAssembly memory, frames released on success and on failure.
import { describe, expect, it, vi } from 'vitest';
import { Arena } from '../dist/runtime/arena.js';
import { createAttention } from '../dist/index.js';
import { randn } from './random.js';

const fresh = () => new Arena(new WebAssembly.Memory({ initial: 1, maximum: 65536 }), 1024);

describe('arena', () => {
  it('gives 16-byte aligned parts, copies arrays in, and releases the frame', () => {
    const arena = fresh();
    const a = Float32Array.of(1, 2, 3);
    const b = Uint8Array.of(7, 8);
    const pointers = arena.frame([a, 100, b], 'test', (p) => {
      expect(arena.inUse).toBeGreaterThanOrEqual(12 + 100 + 2);
      expect(Array.from(new Float32Array(arena.memory.buffer, p[0], 3))).toEqual([1, 2, 3]);
      expect(Array.from(new Uint8Array(arena.memory.buffer, p[2], 2))).toEqual([7, 8]);
      return p;
    });
    expect(pointers.every((p) => p % 16 === 0)).toBe(true);
    expect(arena.inUse).toBe(0);
  });

  it('grows memory at most once per frame, before the body runs', () => {
    const arena = fresh();
    const grow = vi.spyOn(arena.memory, 'grow');
    arena.frame([new Float32Array(100_000), 300_000, new Float32Array(50_000)], 'test', () => {
      expect(grow).toHaveBeenCalledTimes(1);
    });
    expect(grow).toHaveBeenCalledTimes(1);
  });

  it('does not copy what already lives in its memory', () => {
    const arena = fresh();
    const t = arena.tensor([4, 4], new Float32Array(16).fill(2));
    arena.frame([t.data, 64], 'test', ([p]) => {
      expect(p).toBe(t.byteOffset);
    });
    expect(arena.inUse).toBe(64);
    t.free();
    expect(arena.inUse).toBe(0);
  });

  it('releases the frame when the body throws', () => {
    const arena = fresh();
    expect(() =>
      arena.frame([new Float32Array(10)], 'test', () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(arena.inUse).toBe(0);
  });

  it('reuses freed tensor space first-fit and keeps data views fresh after growth', () => {
    const arena = fresh();
    const a = arena.tensor([8], Array.from({ length: 8 }, (_, i) => i));
    const b = arena.tensor([8]);
    const c = arena.tensor([4]);
    b.free();
    const d = arena.tensor([4]);
    expect(d.byteOffset).toBe(b.byteOffset);
    c.free();
    d.free();
    arena.frame([40 * 65536], 'test', () => {});
    expect(Array.from(a.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    a.free();
    expect(arena.inUse).toBe(0);
  });

  it('a call with pinned inputs makes a smaller frame than one with copies', async () => {
    const attn = await createAttention({ backend: 'wasm' });
    const q = randn([1, 4, 256, 32], 1);
    const pinned = attn.tensor(q.dims, q.data);
    const arena = (attn as unknown as { runtime: { arena: Arena } }).runtime.arena;
    const sizes: number[] = [];
    const frame = arena.frame.bind(arena);
    arena.frame = (parts, what, body) => frame(parts, what, (p) => (sizes.push(arena.inUse), body(p)));
    attn.full(pinned, pinned, pinned);
    attn.full(q, q, q);
    expect(sizes[1] - sizes[0]).toBe(3 * q.data.byteLength);
    pinned.free();
  });
});
