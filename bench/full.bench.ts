/**
 * `full` on the WebAssembly backend vs the plain-JS backend, B=1, H=8, D=64:
 * ms, GFLOP/s (4 H N^2 D flops; causal counts only the kept pairs) and the
 * peak WebAssembly memory of a fresh instance.
 */
import { createAttention } from 'wasm-attention';
import { MiB, printTable, randomTensor, time } from './measure.js';

export interface FullRow {
  backend: string;
  N: number;
  causal: string;
  ms: number;
  'GFLOP/s': number;
  'wasm MiB': number;
}

const H = 8;
const D = 64;

/** Query-key pairs that causal attention keeps: N (N + 1) / 2 per head. */
const pairs = (N: number, causal: boolean) => (causal ? (N * (N + 1)) / 2 : N * N);

export async function benchFull({ sizes = [256, 1024, 4096], jsUpTo = 1024 } = {}): Promise<FullRow[]> {
  const rows: FullRow[] = [];
  for (const N of sizes) {
    const q = randomTensor([1, H, N, D], 1);
    const k = randomTensor([1, H, N, D], 2);
    const v = randomTensor([1, H, N, D], 3);
    for (const backend of ['wasm', 'js'] as const) {
      if (backend === 'js' && N > jsUpTo) continue;
      for (const causal of [false, true]) {
        const attn = await createAttention({ backend });
        const t = await time(`${backend} N=${N}`, () => attn.full(q, k, v, { causal }), {
          iterations: backend === 'js' ? 1 : 5,
          ms: backend === 'js' ? 0 : 500,
        });
        const flops = 4 * H * pairs(N, causal) * D;
        rows.push({ backend, N, causal: causal ? 'yes' : 'no', ms: t.median, 'GFLOP/s': flops / t.median / 1e6, 'wasm MiB': attn.memory.size / MiB });
      }
    }
  }
  return rows;
}

/** One call at a long sequence: the WebAssembly memory it needs beyond its inputs and output. */
export async function benchLongSequence(N = 32768): Promise<Record<string, number>> {
  const attn = await createAttention({ backend: 'wasm' });
  const q = attn.tensor([1, 1, N, D], randomTensor([1, 1, N, D], 4).data);
  const start = performance.now();
  attn.full(q, q, q);
  const ms = performance.now() - start;
  const tensors = 2 * N * D * 4; // q (also k and v, pinned in WebAssembly memory) and the output
  return { N, D, ms, 'GFLOP/s': (4 * N * N * D) / ms / 1e6, 'MiB beyond tensors': (attn.memory.size - tensors) / MiB };
}

export function printFull(rows: FullRow[]): void {
  printTable(`full, B=1 H=${H} D=${D}, one thread`, rows as unknown as Record<string, number | string>[]);
  const at = (backend: string, N: number, causal: string) => rows.find((r) => r.backend === backend && r.N === N && r.causal === causal);
  for (const N of new Set(rows.map((r) => r.N))) {
    const wasm = at('wasm', N, 'no');
    const js = at('js', N, 'no');
    const causal = at('wasm', N, 'yes');
    const parts = [`N=${N}:`];
    if (wasm && js) parts.push(`wasm is ${(js.ms / wasm.ms).toFixed(0)}x the JS backend`);
    if (wasm && causal) parts.push(`causal costs ${(causal.ms / wasm.ms).toFixed(2)}x non-causal`);
    console.log(parts.join(' '));
  }
}
