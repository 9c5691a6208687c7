/**
 * Hand-written SVG charts (no browser, no dependency): log-log line charts
 * and log-log scatter plots with axis labels, grid, and a legend.
 */

export interface Series {
  name: string;
  points: [number, number][];
  color: string;
  /** SVG stroke-dasharray, e.g. '6 3'. */
  dash?: string;
  width?: number;
  marker?: Marker;
}

export type Marker = 'circle' | 'square' | 'triangle' | 'diamond' | 'cross';

export interface ScatterPoint {
  x: number;
  y: number;
  label: string;
  color: string;
  marker: Marker;
}

/** A chart's titles, axes and size. */
export interface Frame {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  /** Tick label of a value on each axis. */
  xTick?: (v: number) => string;
  yTick?: (v: number) => string;
  /** Tick positions on x (default: powers of 10 in range). */
  xTicks?: number[];
  width?: number;
  height?: number;
}

/** Colours that stay apart for up to 16 series (then dashes tell them apart). */
export const PALETTE = [
  '#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2',
  '#bcbd22', '#7f7f7f', '#393b79', '#637939', '#e7298a', '#1b9e77', '#a6761d', '#6a3d9a',
];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString());

/** Nice log-scale ticks: 1, 2, 5 x 10^k within [lo, hi] (only powers of 10 when the range is wide). */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  const wide = Math.log10(hi / lo) > 4;
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of wide ? [1] : [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

/** The data range padded to whole decades' fractions, on a log scale. */
function logRange(values: number[]): [number, number] {
  const positive = values.filter((v) => v > 0 && Number.isFinite(v));
  if (positive.length === 0) return [1, 10];
  let lo = Math.min(...positive);
  let hi = Math.max(...positive);
  if (hi / lo < 10) {
    const mid = Math.sqrt(lo * hi);
    lo = mid / Math.sqrt(10);
    hi = mid * Math.sqrt(10);
  }
  return [lo / 1.3, hi * 1.3];
}

function markerPath(marker: Marker, x: number, y: number, r: number, color: string): string {
  const common = `fill="${color}" stroke="white" stroke-width="0.8"`;
  switch (marker) {
    case 'circle':
      return `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r}" ${common}/>`;
    case 'square':
      return `<rect x="${(x - r).toFixed(1)}" y="${(y - r).toFixed(1)}" width="${2 * r}" height="${2 * r}" ${common}/>`;
    case 'triangle':
      return `<path d="M${x.toFixed(1)},${(y - r * 1.2).toFixed(1)} L${(x + r * 1.1).toFixed(1)},${(y + r * 0.8).toFixed(1)} L${(x - r * 1.1).toFixed(1)},${(y + r * 0.8).toFixed(1)} Z" ${common}/>`;
    case 'diamond':
      return `<path d="M${x.toFixed(1)},${(y - r * 1.3).toFixed(1)} L${(x + r).toFixed(1)},${y.toFixed(1)} L${x.toFixed(1)},${(y + r * 1.3).toFixed(1)} L${(x - r).toFixed(1)},${y.toFixed(1)} Z" ${common}/>`;
    case 'cross':
      return `<path d="M${x - r},${y - r} L${x + r},${y + r} M${x - r},${y + r} L${x + r},${y - r}" stroke="${color}" stroke-width="2.2" fill="none"/>`;
  }
}

interface Layout {
  width: number;
  height: number;
  left: number;
  top: number;
  plotW: number;
  plotH: number;
  sx: (v: number) => number;
  sy: (v: number) => number;
}

/** Background, title, grid, ticks and axis labels of a log-log frame. */
function axes(frame: Frame, xs: number[], ys: number[], legendWidth: number): { svg: string[]; layout: Layout } {
  const width = frame.width ?? 900;
  const height = frame.height ?? 560;
  const left = 78;
  const top = frame.subtitle ? 62 : 46;
  const bottom = 58;
  const plotW = width - left - legendWidth - 24;
  const plotH = height - top - bottom;
  const [x0, x1] = logRange(xs);
  const [y0, y1] = logRange(ys);
  const sx = (v: number) => left + ((Math.log(v) - Math.log(x0)) / (Math.log(x1) - Math.log(x0))) * plotW;
  const sy = (v: number) => top + plotH - ((Math.log(v) - Math.log(y0)) / (Math.log(y1) - Math.log(y0))) * plotH;
  const svg: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">${esc(frame.title)}</text>`,
  ];
  if (frame.subtitle) svg.push(`<text x="${left}" y="42" font-size="12" fill="#555">${esc(frame.subtitle)}</text>`);
  svg.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  const xTicks = (frame.xTicks ?? logTicks(x0, x1)).filter((v) => v >= x0 && v <= x1);
  for (const v of xTicks) {
    const x = sx(v).toFixed(1);
    svg.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + plotH}" stroke="#e3e3e3"/>`);
    svg.push(`<text x="${x}" y="${top + plotH + 17}" text-anchor="middle">${esc((frame.xTick ?? fmt)(v))}</text>`);
  }
  for (const v of logTicks(y0, y1)) {
    const y = sy(v).toFixed(1);
    svg.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#e3e3e3"/>`);
    svg.push(`<text x="${left - 6}" y="${(sy(v) + 4).toFixed(1)}" text-anchor="end">${esc((frame.yTick ?? fmt)(v))}</text>`);
  }
  svg.push(`<text x="${left + plotW / 2}" y="${height - 16}" text-anchor="middle" font-size="13">${esc(frame.xLabel)}</text>`);
  svg.push(
    `<text x="18" y="${top + plotH / 2}" text-anchor="middle" font-size="13" transform="rotate(-90 18 ${top + plotH / 2})">${esc(frame.yLabel)}</text>`,
  );
  return { svg, layout: { width, height, left, top, plotW, plotH, sx, sy } };
}

/** A log-log line chart: one polyline with markers per series, legend on the right. */
export function lineChart(frame: Frame, series: Series[]): string {
  const drawn = series.filter((s) => s.points.length > 0);
  const legendWidth = 230;
  const { svg, layout } = axes(frame, drawn.flatMap((s) => s.points.map((p) => p[0])), drawn.flatMap((s) => s.points.map((p) => p[1])), legendWidth);
  const { sx, sy, left, top, plotW } = layout;
  for (const s of drawn) {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    const d = pts.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    svg.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 2}"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    for (const [x, y] of pts) svg.push(markerPath(s.marker ?? 'circle', sx(x), sy(y), 3.5, s.color));
  }
  const lx = left + plotW + 18;
  drawn.forEach((s, i) => {
    const y = top + 8 + i * 19;
    svg.push(`<line x1="${lx}" y1="${y}" x2="${lx + 30}" y2="${y}" stroke="${s.color}" stroke-width="${s.width ?? 2}"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    svg.push(markerPath(s.marker ?? 'circle', lx + 15, y, 3.5, s.color));
    svg.push(`<text x="${lx + 38}" y="${y + 4}">${esc(s.name)}</text>`);
  });
  svg.push('</svg>');
  return svg.join('\n');
}

/** A log-log scatter plot with a label beside each point; `legend` explains colours and markers. */
export function scatterChart(frame: Frame, points: ScatterPoint[], legend: { label: string; color: string; marker: Marker }[]): string {
  const shown = points.filter((p) => p.x > 0 && p.y > 0 && Number.isFinite(p.x) && Number.isFinite(p.y));
  const legendWidth = 190;
  const { svg, layout } = axes(frame, shown.map((p) => p.x), shown.map((p) => p.y), legendWidth);
  const { sx, sy, left, top, plotW } = layout;
  for (const p of shown) svg.push(markerPath(p.marker, sx(p.x), sy(p.y), 5, p.color));
  // labels: right of the point, nudged down when one already sits there
  const taken: [number, number][] = [];
  for (const p of shown) {
    if (!p.label) continue;
    const x = sx(p.x) + 8;
    let y = sy(p.y) + 4;
    while (taken.some(([tx, ty]) => Math.abs(tx - x) < 70 && Math.abs(ty - y) < 12)) y += 12;
    taken.push([x, y]);
    svg.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-size="11" fill="${p.color}">${esc(p.label)}</text>`);
  }
  const lx = left + plotW + 18;
  legend.forEach((l, i) => {
    const y = top + 8 + i * 19;
    svg.push(markerPath(l.marker, lx + 8, y, 5, l.color));
    svg.push(`<text x="${lx + 22}" y="${y + 4}">${esc(l.label)}</text>`);
  });
  svg.push('</svg>');
  return svg.join('\n');
}
