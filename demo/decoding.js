// The decoding view: one step of a decoder on `attn.kvCache` (append one
// position, then attend) at growing cache lengths, in tokens per second on
// the reader's own machine, against copying the cache's keys and values once
// (what reading them costs: the memory-bound rate) and against `full` without
// a cache, which re-packs every position at every step.
import { rng } from './cases.js';
import { format, median, time } from './timing.js';

const SVG = 'http://www.w3.org/2000/svg';
/** Steps timed at one length at most: the cache's room beyond its L + 1 positions. */
const MAX_STEPS = 256;
/** Rounds per length: the rows take turns, so that a slow spell of the machine falls on all of them. */
const ROUNDS = 3;

/** The rows of the view, in the order of its legend. */
export const DECODE_SERIES = [
  { key: 'step', label: 'cache step', color: '#3b518b' },
  { key: 'copy', label: 'copy K, V once (memory-bound rate)', color: '#8a8fa3', dash: '5 4' },
  { key: 'full', label: 'full, no cache', color: '#d9822b' },
];

/** The cache lengths measured: five doublings up to `longest` (at least 16 positions). */
export function decodeLengths(longest) {
  return [16, 8, 4, 2, 1].map((f) => Math.max(16, Math.round(longest / f))).filter((L, i, all) => all.indexOf(L) === i);
}

function normals(size, r) {
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = r.normal();
  return data;
}

/**
 * One cache length: the step (`append` of k_t, v_t then `attend(q_t)` over L
 * cached positions, GQA H over Hkv heads), its agreement with `full` over
 * the same L + 1 positions, the copy and `full` without a cache, timed in
 * interleaved rounds (medians; step / copy paired by round). The arrays it
 * makes are freed before it returns, whatever happens.
 */
function measureAt(attn, { H, Hkv, D }, L, seed) {
  const r = rng(seed);
  let K, V, cache;
  try {
    // all L + 1 positions in WebAssembly memory (for full), the first L and the last in JS (for the cache)
    K = attn.tensor([1, Hkv, L + 1, D], normals(Hkv * (L + 1) * D, r));
    V = attn.tensor([1, Hkv, L + 1, D], normals(Hkv * (L + 1) * D, r));
    cache = attn.kvCache({ heads: Hkv, dim: D, capacity: L + 1 + MAX_STEPS });
    const split = (x) => {
      const first = new Float32Array(Hkv * L * D);
      const last = new Float32Array(Hkv * D);
      const data = x.data;
      for (let h = 0; h < Hkv; h++) {
        first.set(data.subarray(h * (L + 1) * D, (h * (L + 1) + L) * D), h * L * D);
        last.set(data.subarray((h * (L + 1) + L) * D, (h + 1) * (L + 1) * D), h * D);
      }
      return [{ data: first, dims: [1, Hkv, L, D] }, { data: last, dims: [1, Hkv, 1, D] }];
    };
    const [k, kt] = split(K);
    const [v, vt] = split(V);
    const qt = { data: normals(H * D, r), dims: [1, H, 1, D] };
    cache.append(k, v);
    cache.append(kt, vt);
    const first = cache.attend(qt).data;
    const reference = attn.full(qt, K, V).data;
    let diff = 0;
    for (let i = 0; i < first.length; i++) diff = Math.max(diff, Math.abs(first[i] - reference[i]));
    // the timed steps add at most MAX_STEPS positions to the L + 1
    const step = () => {
      cache.append(kt, vt);
      cache.attend(qt);
    };
    const copy = new Float32Array(2 * Hkv * L * D);
    const calls = {
      copy: () => {
        copy.set(k.data);
        copy.set(v.data, k.data.length);
      },
      step,
      full: () => attn.full(qt, K, V),
    };
    const keys = Object.keys(calls);
    const times = { copy: [], step: [], full: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (let n = 0; n < keys.length; n++) {
        const key = keys[(n + round) % keys.length];
        times[key].push(time(calls[key], key === 'step' ? Math.floor(MAX_STEPS / ROUNDS) : undefined));
      }
    }
    const ms = { copy: median(times.copy), step: median(times.step), full: median(times.full) };
    const stepPerCopy = median(times.step.map((t, round) => t / times.copy[round]));
    return { L, bytes: 2 * Hkv * L * D * 4, ms, stepPerCopy, diff };
  } finally {
    cache?.dispose();
    K?.free();
    V?.free();
  }
}

/**
 * Measures every length of `decodeLengths(longest)` in turn, calling
 * `onRow(rows)` after each; between lengths it yields to the browser, and it
 * stops (returning false) as soon as `current()` turns false.
 */
export async function measureDecoding(attn, shape, longest, onRow, current) {
  const rows = [];
  for (const L of decodeLengths(longest)) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (!current()) return false;
    rows.push(measureAt(attn, shape, L, L));
    onRow(rows);
  }
  return true;
}

// ---------------------------------------------------------------- drawing

function node(name, attributes = {}, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** Steps per second of a step of `ms` (a step timed at 0 by a coarse clock counts as 1 ns). */
function tokensPerSecond(ms) {
  return 1000 / Math.max(ms, 1e-6);
}

function label(n) {
  return n >= 1e4 ? `${n / 1e3}k` : n >= 1 ? String(n) : String(+n.toPrecision(1));
}

/**
 * Draws tokens per second against cached positions (both axes logarithmic)
 * into `svg`: a line per series of DECODE_SERIES, a point per measured length.
 */
export function drawDecodeChart(svg, rows) {
  const width = 640;
  const height = 320;
  const pad = { left: 64, right: 16, top: 12, bottom: 42 };
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const values = rows.flatMap((row) => DECODE_SERIES.map((s) => tokensPerSecond(row.ms[s.key])));
  const lo = Math.floor(Math.log10(Math.min(...values)));
  const hi = Math.ceil(Math.log10(Math.max(...values)));
  const x0 = Math.log2(rows[0].L);
  const x1 = Math.log2(rows[rows.length - 1].L);
  const x = (L) => pad.left + (x1 > x0 ? (Math.log2(L) - x0) / (x1 - x0) : 0.5) * (width - pad.left - pad.right);
  const y = (t) => pad.top + (1 - (Math.log10(t) - lo) / Math.max(1, hi - lo)) * (height - pad.top - pad.bottom);
  const parts = [];
  for (let e = lo; e <= hi; e++) {
    parts.push(node('line', { x1: pad.left, x2: width - pad.right, y1: y(10 ** e), y2: y(10 ** e), class: 'grid-line' }));
    parts.push(node('text', { x: pad.left - 6, y: y(10 ** e) + 4, 'text-anchor': 'end' }, label(10 ** e)));
  }
  for (const row of rows) parts.push(node('text', { x: x(row.L), y: height - pad.bottom + 16, 'text-anchor': 'middle' }, label(row.L)));
  parts.push(node('text', { x: (pad.left + width - pad.right) / 2, y: height - 6, 'text-anchor': 'middle' }, 'cached positions'));
  parts.push(node('text', { x: 14, y: (pad.top + height - pad.bottom) / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${(pad.top + height - pad.bottom) / 2})` }, 'tokens / s'));
  for (const s of DECODE_SERIES) {
    const points = rows.map((row) => [x(row.L), y(tokensPerSecond(row.ms[s.key]))]);
    parts.push(node('polyline', { points: points.map((p) => p.join(',')).join(' '), stroke: s.color, 'stroke-dasharray': s.dash ?? 'none', class: 'series', 'data-series': s.key }));
    for (const [px, py] of points) parts.push(node('circle', { cx: px, cy: py, r: 3.5, fill: s.color }));
  }
  svg.replaceChildren(...parts);
}

/** The table under the chart: a row per cache length. */
export function decodeTableRows(rows) {
  return rows.map((row) => [
    String(row.L),
    `${(row.bytes / 1e6).toFixed(1)} MB`,
    format(row.ms.step),
    tokensPerSecond(row.ms.step).toFixed(0),
    `${row.stepPerCopy.toFixed(2)}x`,
    format(row.ms.copy),
    format(row.ms.full),
    `${(row.ms.full / row.ms.step).toFixed(1)}x`,
    row.diff.toExponential(1),
  ]);
}

export const DECODE_COLUMNS = ['cached positions', 'K + V', 'cache step', 'tokens/s', 'step / copy', 'copy K, V', 'full, no cache', 'full / step', 'max |step − full|'];
