// The demo: every variant of the registry, its attention matrix as a heatmap
// (heatmap.js), its mask, time, speed-up over `full` and error against `full`;
// and a decoding view (decoding.js), tokens per second against cache length.
// Plain ES modules, no framework; the package is imported from /dist like any
// unbundled page would (the import map in index.html maps its dependency).
import * as lib from '/dist/index.js';
import { callInputs, defaultOptions, fullKeys, makeInputs, meanAbsError, resolveOptions } from './cases.js';
import { DECODE_COLUMNS, DECODE_SERIES, decodeTableRows, drawDecodeChart, measureDecoding } from './decoding.js';
import { drawColorbar, drawMask, drawMatrix, drawTiled } from './heatmap.js';
import { format, time } from './timing.js';

const { createAttention, variantNames } = lib;

const $ = (selector, root = document) => root.querySelector(selector);
const form = $('#controls');
const status = $('#status');

// ---------------------------------------------------------------- computing

let attn;
const maskless = new Set();

function settings() {
  const data = new FormData(form);
  const int = (key, min, max, fallback) => {
    const n = Math.round(Number(data.get(key)));
    return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
  };
  const H = int('H', 1, 16, 4);
  return {
    N: int('N', 1, 2048, 128),
    H,
    D: int('D', 1, 256, 32),
    head: int('head', 0, H - 1, 0),
    seed: int('seed', 0, 2 ** 31, 1),
    inputs: data.get('inputs') === 'random' ? 'random' : 'smooth',
    scale: data.get('scale') === 'linear' ? 'linear' : 'log',
    compare: data.get('compare') === 'on',
    decode: { H: int('qHeads', 1, 64, 32), Hkv: int('kvHeads', 1, 64, 8), D: int('headDim', 1, 256, 128) },
    longest: int('longest', 16, 8192, 4096),
  };
}

let inputsKey = '';
let inputs;
const fullCache = new Map();

function currentInputs(s) {
  const key = `${s.N},${s.H},${s.D},${s.seed},${s.inputs}`;
  if (key !== inputsKey) {
    inputs = makeInputs({ N: s.N, H: s.H, D: s.D, seed: s.seed, kind: s.inputs });
    inputsKey = key;
    fullCache.clear();
  }
  return inputs;
}

/** Counts renders: `full` is timed again in each render, next to the variants it is compared with. */
let renderCount = 0;

/** `full` on the same inputs (for lsh: over its normalised shared keys); output kept per inputs, time per render. */
function fullRun(name, x) {
  const kind = name === 'lsh' ? 'shared' : 'k';
  let entry = fullCache.get(kind);
  if (!entry || entry.render !== renderCount) {
    const k = fullKeys(name, x);
    let out;
    const ms = time(() => (out = attn.full(x.q, k, x.v)));
    entry = { out, ms, render: renderCount };
    fullCache.set(kind, entry);
  }
  return entry;
}

/** Runs one variant: output, time, weights, mask (pattern variants), and the comparison with full. */
function compute(name, optionsText, s) {
  const x = currentInputs(s);
  const json = JSON.parse(optionsText || '{}');
  const options = resolveOptions(json, lib, { N: s.N, H: s.H, D: s.D, q: x.q, k: x.k, v: x.v });
  const args = callInputs(name, x);
  const full = fullRun(name, x);
  if (name === 'full' && Object.keys(options).length === 0) {
    // the baseline itself: one measurement, so that its speed-up is exactly 1
    return { out: full.out, ms: full.ms, weights: attn.weights(name, args.q, args.k, options), mask: null, fullMs: full.ms, error: 0 };
  }
  let out;
  const ms = time(() => (out = attn.apply(name, args.q, args.k, args.v, options)));
  const weights = attn.weights(name, args.q, args.k, options);
  let mask = null;
  if (!maskless.has(name)) {
    try {
      mask = attn.mask(name, s.N, s.N, options);
    } catch (error) {
      if (!(error instanceof TypeError && /pattern-based/.test(error.message))) throw error;
      maskless.add(name);
    }
  }
  return { out, ms, weights, mask, fullMs: full.ms, error: meanAbsError(out.data, full.out.data) };
}

// ---------------------------------------------------------------- options per variant

/** Options text per variant: the defaults for the current sizes, until the user edits them. */
const optionTexts = new Map();

function defaultText(name, s) {
  return JSON.stringify(defaultOptions(name, s.N, s.H, s.D));
}

function optionsFor(name, s) {
  const entry = optionTexts.get(name);
  if (!entry || !entry.edited) optionTexts.set(name, { text: defaultText(name, s), edited: false });
  return optionTexts.get(name).text;
}

function pretty(text) {
  try {
    const json = JSON.parse(text);
    const one = JSON.stringify(json);
    return one.length <= 60 ? one : JSON.stringify(json, null, 1).replace(/\n\s*/g, ' ');
  } catch {
    return text;
  }
}

/**
 * A short reading of options for the grid's cards: `{"window":8}` is
 * `window 8`, a `$call` is `helper(args)`, a pattern or head spec is
 * `type(options)`.
 */
function summarize(value) {
  if (Array.isArray(value)) return value.map(summarize).join(' + ');
  if (value === null || typeof value !== 'object') return typeof value === 'string' ? value.replace(/^\$/, '') : String(value);
  if ('$call' in value) return `${value.$call}(${(value.args ?? []).map((a) => (a && typeof a === 'object' ? '…' : summarize(a))).join(', ')})`;
  const head = value.type ?? value.kind;
  const body = Object.entries(value)
    .filter(([key]) => key !== 'type' && key !== 'kind')
    .map(([key, v]) => (Array.isArray(v) && v.every((x) => typeof x !== 'object') ? `${key} [${v.join(', ')}]` : `${key} ${summarize(v)}`))
    .join(', ');
  return head === undefined ? body : `${head}(${body})`;
}

// ---------------------------------------------------------------- rendering

function statsList(target, rows) {
  target.replaceChildren(
    ...rows.flatMap(([term, value, title]) => {
      const dt = Object.assign(document.createElement('dt'), { textContent: term });
      const dd = Object.assign(document.createElement('dd'), { textContent: value });
      if (title) dd.title = title;
      return [dt, dd];
    }),
  );
}

function caption(name, weights, s) {
  const [, , Nq, Nk] = weights.dims;
  const keys = name === 'compressed' ? `${Nk} slots` : `${Nk} keys`;
  return `${name}, head ${s.head}: ${Nq} queries × ${keys}`;
}

function renderPanel(panel, s) {
  const select = $('.variant', panel);
  const textarea = $('.options', panel);
  const error = $('.error', panel);
  const name = select.value;
  if (document.activeElement !== textarea) textarea.value = pretty(optionsFor(name, s));
  error.hidden = true;
  try {
    const r = compute(name, textarea.value, s);
    const [, H, Nq, Nk] = r.weights.dims;
    const head = Math.min(s.head, H - 1);
    drawMatrix($('.weights', panel), r.weights.data, head * Nq * Nk, Nq, Nk, s.scale);
    $('.weights-caption', panel).textContent = caption(name, r.weights, { ...s, head });
    const maskFigure = $('.mask-figure', panel);
    maskFigure.hidden = !r.mask;
    if (r.mask) drawMask($('.mask', panel), r.mask, s.N, s.N);
    statsList($('.stats', panel), [
      ['time', format(r.ms), `median of repeated calls, backend ${attn.backend}`],
      ['full', format(r.fullMs)],
      ['speed-up', `×${(r.fullMs / r.ms).toFixed(2)}`, 'time of full / time of this variant'],
      ['error vs full', r.error.toExponential(2), 'mean |out - full(q, k, v)| over all outputs'],
      ['output', `[${r.out.dims.join(', ')}]`],
    ]);
  } catch (e) {
    error.textContent = `${e.name}: ${e.message}`;
    error.hidden = false;
    statsList($('.stats', panel), []);
  }
}

function renderGrid(s) {
  const grid = $('#grid-view');
  const cards = variantNames.map((name) => {
    const card = document.createElement('article');
    card.className = 'card';
    card.dataset.variant = name;
    const title = document.createElement('h2');
    title.textContent = name;
    const canvas = document.createElement('canvas');
    canvas.className = 'weights';
    const options = document.createElement('p');
    options.className = 'card-options';
    const stats = document.createElement('p');
    stats.className = 'card-stats';
    card.append(title, canvas, options, stats);
    return card;
  });
  grid.replaceChildren(...cards);
  for (const card of cards) {
    const name = card.dataset.variant;
    const text = optionsFor(name, s);
    try {
      $('.card-options', card).textContent = summarize(JSON.parse(text)) || 'defaults';
    } catch {
      $('.card-options', card).textContent = text;
    }
    try {
      const r = compute(name, text, s);
      const [, H, Nq, Nk] = r.weights.dims;
      const head = Math.min(s.head, H - 1);
      if (name === 'mixed' && H > 1) {
        // a different variant in each head: show up to 4 heads from the chosen one
        const heads = Array.from({ length: Math.min(4, H) }, (_, t) => (head + t) % H);
        drawTiled($('canvas', card), r.weights.data, heads, Nq, Nk, s.scale);
        $('h2', card).textContent = `mixed (${heads.length === H ? 'all' : heads.length} heads)`;
      } else {
        drawMatrix($('canvas', card), r.weights.data, head * Nq * Nk, Nq, Nk, s.scale);
      }
      const lines = name === 'full' ? [format(r.ms), 'the baseline'] : [`${format(r.ms)} · ×${(r.fullMs / r.ms).toFixed(2)} vs full`, `error vs full ${r.error.toExponential(1)}`];
      $('.card-stats', card).replaceChildren(...lines.map((text) => Object.assign(document.createElement('span'), { textContent: text })));
    } catch (e) {
      $('.card-stats', card).textContent = `${e.name}: ${e.message}`;
      card.classList.add('failed');
    }
  }
}

/**
 * Measures the decoding view's rows one cache length after another, drawing
 * each as it comes. Resolves to false when a newer render took over.
 */
async function renderDecode(s) {
  const generation = renderCount;
  const section = $('#decode-view');
  const chart = $('.decode-chart', section);
  const body = $('tbody', section);
  const error = $('.error', section);
  const cells = (tag, texts) => {
    const tr = document.createElement('tr');
    tr.append(...texts.map((text) => Object.assign(document.createElement(tag), { textContent: text })));
    return tr;
  };
  $('thead', section).replaceChildren(cells('th', DECODE_COLUMNS));
  body.replaceChildren();
  chart.replaceChildren();
  error.hidden = true;
  const { H, Hkv, D } = s.decode;
  status.textContent = `measuring one step at H = ${H}, Hkv = ${Hkv}, D = ${D}…`;
  try {
    return await measureDecoding(
      attn,
      s.decode,
      s.longest,
      (rows) => {
        drawDecodeChart(chart, rows);
        body.replaceChildren(...decodeTableRows(rows).map((row) => cells('td', row)));
        status.textContent = `measuring one step at H = ${H}, Hkv = ${Hkv}, D = ${D}: ${rows[rows.length - 1].L} cached positions done…`;
      },
      () => generation === renderCount,
    );
  } catch (e) {
    error.textContent = `${e.name}: ${e.message}`;
    error.hidden = false;
    return generation === renderCount;
  }
}

let view = 'compare';

function setView(next) {
  view = next;
  for (const tab of form.querySelectorAll('[role=tab]')) tab.setAttribute('aria-selected', String(tab.dataset.view === view));
  $('#compare-view').hidden = view !== 'compare';
  $('#grid-view').hidden = view !== 'grid';
  $('#decode-view').hidden = view !== 'decode';
  for (const element of document.querySelectorAll('[data-views]')) element.hidden = !element.dataset.views.split(' ').includes(view);
}

/** Draws the current view; the decoding view resolves when measured (false: a newer render took over). */
function render() {
  renderCount++;
  const s = settings();
  if (view === 'decode') return renderDecode(s);
  drawColorbar($('#colorbar'), $('#colorbar-labels'), s.scale);
  if (view === 'grid') renderGrid(s);
  else {
    const [a, b] = document.querySelectorAll('.panel');
    b.hidden = !s.compare;
    renderPanel(a, s);
    if (s.compare) renderPanel(b, s);
  }
  return true;
}

function describeBackend() {
  if (attn.backend !== 'wasm') return 'js (no WebAssembly SIMD: the plain-JS reference)';
  return attn.features?.relaxedSimd ? 'wasm (relaxed SIMD: fused multiply-add)' : 'wasm (WebAssembly SIMD)';
}

/** Renders after the browser has painted the "computing" state. */
function schedule() {
  status.textContent = 'computing…';
  document.body.dataset.ready = '0';
  requestAnimationFrame(() =>
    setTimeout(async () => {
      if (!(await render())) return;
      status.textContent = `backend: ${describeBackend()} · ${variantNames.length} variants · cross-origin isolated: ${self.crossOriginIsolated ? 'yes' : 'no'}`;
      document.body.dataset.ready = '1';
    }, 0),
  );
}

function setupPanels(params) {
  const template = $('#panel-template');
  const initial = { a: params.get('a') ?? 'local', b: params.get('b') ?? 'lsh' };
  for (const panel of document.querySelectorAll('.panel')) {
    panel.append(template.content.cloneNode(true));
    const select = $('.variant', panel);
    select.append(...variantNames.map((name) => new Option(name, name)));
    const wanted = initial[panel.dataset.panel];
    select.value = variantNames.includes(wanted) ? wanted : variantNames[0];
    const textarea = $('.options', panel);
    select.addEventListener('change', schedule);
    textarea.addEventListener('change', () => {
      const name = select.value;
      const s = settings();
      const edited = textarea.value.trim() !== '' && pretty(textarea.value) !== pretty(defaultText(name, s));
      optionTexts.set(name, { text: textarea.value.trim() || '{}', edited });
      schedule();
    });
    $('.reset', panel).addEventListener('click', () => {
      optionTexts.delete(select.value);
      textarea.value = '';
      textarea.blur();
      schedule();
    });
  }
}

function applyParams(params) {
  for (const key of ['N', 'H', 'D', 'head', 'seed', 'inputs', 'scale', 'qHeads', 'kvHeads', 'headDim', 'longest']) {
    const value = params.get(key) ?? params.get(key.toLowerCase());
    if (value !== null && form.elements[key]) form.elements[key].value = value;
  }
  if (params.get('compare') === '0') form.elements.compare.checked = false;
}

// ---------------------------------------------------------------- test hook

/**
 * For the browser test: runs `name` on the given tensors with JSON options
 * (resolved as in the panels) and returns the output, the weights and the
 * mask, so that Node can compare them with its own results.
 */
async function runCase(name, q, k, v, options = {}) {
  const resolved = resolveOptions(options, lib, { N: q.dims[q.dims.length - 2], H: q.dims.length > 2 ? q.dims[q.dims.length - 3] : 1, D: q.dims[q.dims.length - 1], q, k, v });
  const args = callInputs(name, { q, k, v });
  const out = attn.apply(name, args.q, args.k, args.v, resolved);
  const weights = attn.weights(name, args.q, args.k, resolved);
  let mask = null;
  try {
    mask = attn.mask(name, q.dims[q.dims.length - 2], k.dims[k.dims.length - 2], resolved);
  } catch (error) {
    if (!(error instanceof TypeError && /pattern-based/.test(error.message))) throw error;
  }
  return { out: out.data, dims: out.dims, weights: weights.data, weightDims: weights.dims, mask, backend: attn.backend };
}

async function main() {
  const params = new URLSearchParams(location.search);
  applyParams(params);
  setupPanels(params);
  for (const tab of form.querySelectorAll('[role=tab]')) {
    tab.addEventListener('click', () => {
      setView(tab.dataset.view);
      schedule();
    });
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    schedule();
  });
  form.addEventListener('change', (event) => {
    if (event.target.closest('.panel')) return;
    schedule();
  });
  $('.decode-legend').replaceChildren(
    ...DECODE_SERIES.map(({ label, color, dash }) => {
      const item = Object.assign(document.createElement('span'), { textContent: label });
      item.style.setProperty('--swatch', color);
      if (dash) item.classList.add('dashed');
      return item;
    }),
  );
  attn = await createAttention();
  window.demo = { lib, attn, runCase, render };
  window.runCase = runCase;
  setView(['grid', 'decode'].includes(params.get('view')) ? params.get('view') : 'compare');
  schedule();
}

main().catch((error) => {
  status.textContent = `failed to start: ${error.message}`;
  status.classList.add('failed');
  document.body.dataset.ready = 'failed';
  throw error;
});
