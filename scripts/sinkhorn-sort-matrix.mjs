// Prints the sort matrix S (nb = 8) of a small sinkhorn example as a markdown table and an ASCII picture.
// Key block t is built to resemble query block (3t + 1) mod 8, so S should approach that permutation.
// After `npm run build`: node scripts/sinkhorn-sort-matrix.mjs
import { readInputs } from '../dist/inputs.js';
import { Runtime } from '../dist/runtime/runtime.js';
import { sinkhorn, sinkhornKernelSortMatrices } from '../dist/variants/sinkhorn.js';

const [N, D, b] = [64, 16, 8];
const nb = N / b;
let seed = 7;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const direction = Array.from({ length: nb }, () => Array.from({ length: D }, rand));
const q = new Float32Array(N * D);
const k = new Float32Array(N * D);
for (let i = 0; i < N; i++) {
  const block = Math.floor(i / b);
  for (let d = 0; d < D; d++) {
    q[i * D + d] = direction[block][d] + rand();
    k[i * D + d] = direction[(3 * block + 1) % nb][d] + rand(); // like query block 3t + 1
  }
}
const tensor = (data) => ({ data, dims: [1, 1, N, D] });
const options = { blockSize: b }; // temperature 0.75, 7 iterations
const inputs = readInputs(sinkhorn, tensor(q), tensor(k), null, false);
const parsed = sinkhorn.parse(inputs, options, () => null);
const S = sinkhornKernelSortMatrices(await Runtime.create(), inputs, parsed).data;

console.log(`| u \\ t | ${[...Array(nb).keys()].join(' | ')} |`);
console.log(`|---|${'---|'.repeat(nb)}`);
for (let u = 0; u < nb; u++) console.log(`| ${u} | ${[...S.subarray(u * nb, (u + 1) * nb)].map((s) => s.toFixed(2)).join(' | ')} |`);
const shades = ' .:-=+*#%@';
console.log();
for (let u = 0; u < nb; u++) console.log([...S.subarray(u * nb, (u + 1) * nb)].map((s) => shades[Math.min(9, Math.floor(s * 10))].repeat(2)).join(''));
