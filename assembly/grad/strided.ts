// The residue gather of strided's backward (src/grad/strided.ts): rows of
// one head in sequence order moved to residue order modulo s and back, so
// that each residue's rows form a sequence of their own.

/**
 * Moves the N rows (D floats each) of one head between sequence order at
 * `sequence` and residue order at `residues`: residue r's rows p = r, r + s,
 * ... as rows 0, 1, ... of its own block of M = ceil(N / s) rows, the block
 * of residue r `rBytes` bytes after the block of residue r - 1. Into residue
 * order (`toResidues`), the slots past a residue's last row are zeroed.
 */
export function residueRows(sequence: usize, residues: usize, N: i32, D: i32, s: i32, rBytes: usize, toResidues: bool): void {
  const M = (N + s - 1) / s;
  const rowBytes = <usize>D << 2;
  for (let r = 0; r < s; r++) {
    let slot = residues + <usize>r * rBytes;
    let count = 0;
    for (let p = r; p < N; p += s) {
      const row = sequence + <usize>p * rowBytes;
      if (toResidues) memory.copy(slot, row, rowBytes);
      else memory.copy(row, slot, rowBytes);
      slot += rowBytes;
      count++;
    }
    if (toResidues && count < M) memory.fill(slot, 0, <usize>(M - count) * rowBytes);
  }
}
