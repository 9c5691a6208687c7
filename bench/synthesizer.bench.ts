/**
 * `synthesizer`'s three forms on the WebAssembly backend vs `full` at the
 * same N: B=1, H=8, D=Dv=64; random logits `[1, N, N]` (one matrix shared by
 * the heads, copied into WebAssembly memory on every call), factorized R=8
 * per head, dense Dm=64 Dh=64 per head (Nmax = N).
 */
import { createAttention, synthesizerParams, type Attention } from 'wasm-attention';
import { printTable, randomTensor, time } from './measure.js';

export interface SynthesizerRow {
  form: string;
  N: number;
  ms: number;
  /** full's time at the same N over this one's. */
  'x faster than full': number;
}

const H = 8;
const D = 64;
const R = 8;
const Dm = 64;
const Dh = 64;

/** sizes: the N swept; causalUpTo: the largest N of the causal pair (full causal vs factorized causal). */
export async function benchSynthesizer({ sizes = [1024, 4096], causalUpTo = 1024 } = {}): Promise<SynthesizerRow[]> {
  const attn: Attention = await createAttention({ backend: 'wasm' });
  const rows: SynthesizerRow[] = [];
  for (const N of sizes) {
    const q = randomTensor([1, H, N, D], 1);
    const k = randomTensor([1, H, N, D], 2);
    const v = randomTensor([1, H, N, D], 3);
    const x = randomTensor([1, N, Dm], 4);
    const forms: [string, object][] = [
      ['random (logits [1, N, N])', synthesizerParams('random', { Nq: N, Nk: N }, 5)],
      [`factorized R=${R}`, synthesizerParams('factorized', { H, Nq: N, Nk: N, R }, 6)],
      [`dense Dm=${Dm} Dh=${Dh}`, synthesizerParams('dense', { H, x, Dh, Nmax: N }, 7)],
    ];
    const opts = { iterations: 3, ms: 300 };
    const fullMs = (await time(`full N=${N}`, () => attn.full(q, k, v), opts)).median;
    rows.push({ form: 'full', N, ms: fullMs, 'x faster than full': 1 });
    for (const [form, params] of forms) {
      const ms = (await time(`${form} N=${N}`, () => attn.synthesizer(null, null, v, params), opts)).median;
      rows.push({ form, N, ms, 'x faster than full': fullMs / ms });
    }
    if (N > causalUpTo) continue;
    const causalMs = (await time(`full causal N=${N}`, () => attn.full(q, k, v, { causal: true }), opts)).median;
    const params = synthesizerParams('factorized', { H, Nq: N, Nk: N, R }, 6);
    const ms = (await time(`factorized causal N=${N}`, () => attn.synthesizer(null, null, v, { ...params, causal: true }), opts)).median;
    rows.push({ form: 'full causal', N, ms: causalMs, 'x faster than full': 1 });
    rows.push({ form: `factorized R=${R} causal`, N, ms, 'x faster than full': causalMs / ms });
  }
  return rows;
}

export function printSynthesizer(rows: SynthesizerRow[]): void {
  printTable(`synthesizer vs full (causal rows vs full causal), B=1 H=${H} D=Dv=${D}, one thread`, rows);
}
