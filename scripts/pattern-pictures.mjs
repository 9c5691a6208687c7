// Prints the attention patterns of the README (`node scripts/pattern-pictures.mjs`
// after `npm run build`): mask() of each pattern variant at N = 16, one row per query.
import { createAttention } from '../dist/index.js';

const attn = await createAttention({ backend: 'js' });
const N = 16;
const pictures = [
  ['local { window: 2 }', 'local', { window: 2 }],
  ['local { before: 3, after: 0, causal: true }', 'local', { before: 3, after: 0, causal: true }],
  ['strided { stride: 4 }', 'strided', { stride: 4 }],
  ['global { tokens: [0, 8] }', 'global', { tokens: [0, 8] }],
  ['Longformer: local 2 + global [0]', 'sparse', { patterns: [{ type: 'local', window: 2 }, { type: 'global', tokens: [0] }] }],
  ['BigBird: local 1 + global [0] + random 2', 'sparse', { patterns: [{ type: 'local', window: 1 }, { type: 'global', tokens: [0] }, { type: 'random', count: 2, seed: 1 }] }],
  ['Sparse Transformer: local before 3 + strided 4, causal', 'sparse', { causal: true, patterns: [{ type: 'local', before: 3, after: 0 }, { type: 'strided', stride: 4 }] }],
];
const lines = pictures.map(([title, name, options]) => {
  const mask = attn.mask(name, N, N, options);
  const rows = Array.from({ length: N }, (_, i) => Array.from(mask.subarray(i * N, (i + 1) * N), (m) => (m ? '█' : '·')).join(''));
  return { title, rows };
});
// side by side, three or four to a block
for (let at = 0; at < lines.length; at += 4) {
  const block = lines.slice(at, at + 4);
  const width = Math.max(N, ...block.map((b) => b.title.length)) + 3;
  console.log(block.map((b) => b.title.padEnd(width)).join(''));
  for (let i = 0; i < N; i++) console.log(block.map((b) => b.rows[i].padEnd(width)).join(''));
  console.log();
}
