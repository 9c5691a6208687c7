// Kernels never allocate: the TypeScript arena hands them every buffer.
// This is where the arena may start (after the module's static data).

export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}
