/**
 * Small problems for the finite-difference checks of the backward passes:
 * every variant, every parameter tensor, and the options that change the
 * math (causal, keyPadding, grouped-query heads, mask, broadcast bias,
 * softcap, layout 'bnhd').
 */
import { randn, padding, type T } from './random.js';

export interface GradCase {
  readonly name: string;
  readonly variant: string;
  readonly q: T | null;
  readonly k: T | null;
  readonly v: T;
  readonly options: Record<string, unknown>;
}

const mask = (Nq: number, Nk: number, seed: number): { data: Uint8Array; dims: number[] } => {
  const m = padding(Nq, Nk, seed, 0.25);
  for (let i = 0; i < Nq; i++) m[i * Nk + Math.min(i, Nk - 1)] = 1; // every row keeps a key
  return { data: m, dims: [Nq, Nk] };
};

const qkv = (B: number, H: number, Hkv: number, Nq: number, Nk: number, D: number, Dv: number, seed: number) => ({
  q: randn([B, H, Nq, D], seed),
  k: randn([B, Hkv, Nk, D], seed + 1),
  v: randn([B, Hkv, Nk, Dv], seed + 2),
});

export const gradCases: GradCase[] = [
  // full and the pattern family
  { name: 'full gqa causal cross padded', variant: 'full', ...qkv(2, 4, 2, 4, 7, 4, 3, 10), options: { causal: true, keyPadding: padding(2, 7, 11) } },
  { name: 'full mask, bias broadcast [1, Nk], softcap', variant: 'full', ...qkv(1, 2, 2, 5, 5, 4, 4, 20), options: { mask: mask(5, 5, 21), bias: randn([1, 5], 22), softcap: 0.8 } },
  { name: 'full bias [H, 1, Nk] bnhd', variant: 'full', q: randn([1, 5, 2, 4], 30), k: randn([1, 6, 1, 4], 31), v: randn([1, 6, 1, 3], 32), options: { layout: 'bnhd', bias: randn([2, 1, 6], 33) } },
  { name: 'local causal bias [B, 1, Nq, Nk] softcap', variant: 'local', ...qkv(2, 2, 1, 6, 6, 4, 4, 40), options: { window: 1, causal: true, bias: randn([2, 1, 6, 6], 41), softcap: 1.5 } },
  { name: 'strided mask', variant: 'strided', ...qkv(1, 2, 2, 7, 7, 4, 4, 50), options: { stride: 2, mask: mask(7, 7, 51) } },
  { name: 'global padded bias [Nq, Nk]', variant: 'global', ...qkv(2, 1, 1, 6, 6, 4, 4, 60), options: { tokens: [0], keyPadding: padding(2, 6, 61), bias: randn([6, 6], 62) } },
  { name: 'sparse local + random', variant: 'sparse', ...qkv(1, 2, 1, 6, 6, 4, 4, 70), options: { patterns: [{ type: 'local', window: 1 }, { type: 'random', count: 2, seed: 3 }] } },
  {
    name: 'mixed heads with own and inherited bias, gqa',
    variant: 'mixed',
    ...qkv(1, 2, 1, 5, 5, 4, 4, 80),
    options: { heads: [{ kind: 'local', window: 1, bias: randn([5, 5], 81) }, { kind: 'full' }], bias: randn([1, 2, 5, 5], 82), causal: true },
  },
  {
    name: 'mixed linformer, synthesizer, sinkhorn heads',
    variant: 'mixed',
    ...qkv(1, 3, 3, 6, 6, 4, 4, 90),
    options: { heads: [{ kind: 'linformer', e: randn([3, 6], 91, 0.5) }, { kind: 'synthesizer', logits: randn([6, 6], 92) }, { kind: 'sinkhorn', blockSize: 2 }] },
  },
  (() => {
    // q given as k too: the lsh head reads it in both roles, the full head as queries and keys
    const x = randn([1, 2, 6, 4], 95);
    return { name: 'mixed lsh and full heads on one tensor', variant: 'mixed', q: x, k: x, v: randn([1, 2, 6, 3], 96), options: { heads: [{ kind: 'lsh', bucketSize: 3, rotations: randn([1, 1, 4, 1], 97) }, { kind: 'full' }] } };
  })(),
  // clustering
  { name: 'lsh causal padded', variant: 'lsh', q: randn([2, 1, 8, 4], 100), k: null, v: randn([2, 1, 8, 3], 101), options: { bucketSize: 2, rotations: randn([1, 2, 4, 2], 102), causal: true, keyPadding: padding(2, 8, 103) } },
  { name: 'lsh', variant: 'lsh', q: randn([1, 2, 8, 4], 110), k: null, v: randn([1, 2, 8, 4], 111), options: { bucketSize: 3, rotations: randn([2, 3, 4, 1], 112) } },
  { name: 'routing gqa causal padded', variant: 'routing', ...qkv(2, 2, 1, 6, 8, 4, 3, 120), options: { window: 4, centroids: randn([2, 3, 4], 121), causal: true, keyPadding: padding(2, 8, 122) } },
  // learnable pattern
  { name: 'sinkhorn sortLogits [1, H, nb, nb]', variant: 'sinkhorn', ...qkv(2, 2, 2, 6, 6, 4, 4, 130), options: { blockSize: 2, sortLogits: randn([1, 2, 3, 3], 131) } },
  { name: 'sinkhorn gqa padded', variant: 'sinkhorn', ...qkv(1, 2, 1, 8, 8, 4, 3, 140), options: { blockSize: 2, keyPadding: padding(1, 8, 141), iterations: 3 } },
  { name: 'sinkhorn causal', variant: 'sinkhorn', ...qkv(1, 1, 1, 8, 8, 4, 4, 150), options: { blockSize: 2, causal: true } },
  // fewer keys
  { name: 'linformer e, f gqa padded', variant: 'linformer', ...qkv(2, 2, 1, 5, 6, 4, 3, 160), options: { e: randn([2, 3, 6], 161, 0.5), f: randn([3, 6], 162, 0.5), keyPadding: padding(2, 6, 163) } },
  { name: 'linformer e serves as f', variant: 'linformer', ...qkv(1, 2, 2, 5, 6, 4, 4, 170), options: { e: randn([1, 3, 6], 171, 0.5) } },
  {
    name: 'compressed conv per head, null slot, causal padded',
    variant: 'compressed',
    ...qkv(2, 2, 2, 7, 7, 3, 2, 180),
    options: {
      factor: 2,
      causal: true,
      keyPadding: padding(2, 7, 181),
      convK: { weight: randn([2, 3, 3, 2], 182, 0.5), bias: randn([2, 3], 183) },
      convV: { weight: randn([2, 2, 2, 2], 184, 0.5) },
      nullKey: randn([2, 3], 185),
      nullValue: randn([1, 2], 186),
    },
  },
  { name: 'compressed mean gqa', variant: 'compressed', ...qkv(1, 2, 1, 5, 7, 4, 4, 190), options: { factor: 3 } },
  // linear
  { name: 'linear elu causal padded gqa', variant: 'linear', ...qkv(2, 2, 1, 5, 6, 4, 3, 200), options: { causal: true, keyPadding: padding(2, 6, 201) } },
  { name: 'linear relu', variant: 'linear', ...qkv(1, 2, 2, 6, 6, 4, 4, 210), options: { featureMap: 'relu' } },
  { name: 'linear favor causal', variant: 'linear', ...qkv(1, 2, 2, 6, 6, 4, 4, 220), options: { featureMap: 'favor', projection: randn([5, 4], 221), causal: true } },
  { name: 'linear favor scale', variant: 'linear', ...qkv(1, 1, 1, 5, 5, 4, 3, 230), options: { featureMap: 'favor', projection: randn([1, 6, 4], 231), scale: 0.3 } },
  { name: 'linear rfa', variant: 'linear', ...qkv(1, 2, 2, 6, 6, 4, 4, 240), options: { featureMap: 'rfa', projection: randn([2, 8, 4], 241) } },
  { name: 'linear efficient padded', variant: 'linear', ...qkv(2, 2, 1, 5, 6, 4, 3, 250), options: { featureMap: 'efficient', keyPadding: padding(2, 6, 251) } },
  // attention matrix as parameters
  { name: 'synthesizer logits causal padded', variant: 'synthesizer', q: null, k: null, v: randn([2, 2, 6, 3], 260), options: { logits: randn([2, 6, 6], 261), causal: true, keyPadding: padding(2, 6, 262) } },
  { name: 'synthesizer factors', variant: 'synthesizer', q: null, k: null, v: randn([1, 2, 6, 4], 270), options: { factors: { a: randn([1, 6, 2], 271), b: randn([2, 6, 2], 272) } } },
  {
    name: 'synthesizer dense',
    variant: 'synthesizer',
    q: null,
    k: null,
    v: randn([2, 2, 5, 3], 280),
    options: { dense: { x: randn([2, 5, 3], 281), w1: randn([2, 3, 4], 282), b1: randn([2, 4], 283), w2: randn([1, 4, 7], 284), b2: randn([2, 7], 285) } },
  },
];
