/**
 * The sweep's charts (docs/*.svg): time and peak memory against N for every
 * implementation, and error against speed-up over full for the approximate
 * variants on structured inputs. Returns the paths written.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AccuracyRow } from './accuracy.js';
import type { TimingRow } from './processes.js';
import { PALETTE, lineChart, scatterChart, type Frame, type Marker, type ScatterPoint, type Series } from './svg.js';

const MiB = 2 ** 20;

export interface ChartInputs {
  /** The sweep's rows, and the implementations and sizes that have some. */
  rows: readonly TimingRow[];
  implIds: readonly string[];
  sizesRun: readonly number[];
  accuracy: readonly AccuracyRow[];
  accuracyN: number;
  /** The machine and the problem's shape, for the subtitles. */
  machine: string;
}

export function writeCharts(chartDir: string, { rows, implIds, sizesRun, accuracy, accuracyN, machine }: ChartInputs): string[] {
  const peerStyle: Record<string, { color: string; dash: string; marker: Marker }> = {
    'tfjs-wasm': { color: '#000000', dash: '7 4', marker: 'square' },
    'ort MultiHeadAttention': { color: '#555555', dash: '2 3', marker: 'triangle' },
    'ort MatMul-Softmax-MatMul': { color: '#555555', dash: '7 4', marker: 'diamond' },
    'full (js backend)': { color: '#999999', dash: '1 3', marker: 'cross' },
  };
  const oursIds = implIds.filter((id) => !peerStyle[id]);
  const styleOf = (id: string) => {
    if (peerStyle[id]) return { ...peerStyle[id], width: 2.2 };
    const i = oursIds.indexOf(id);
    return { color: PALETTE[i % PALETTE.length], dash: i >= PALETTE.length ? '4 2' : undefined, marker: 'circle' as Marker, width: id === 'full' ? 3.2 : 2 };
  };
  const nTicks = { xTicks: [...sizesRun], xTick: (v: number) => (v >= 1024 ? `${v / 1024}K` : String(v)) };
  const seriesOf = (value: (r: TimingRow) => number | undefined): Series[] =>
    implIds
      .map((id) => ({
        name: id,
        points: rows.filter((r) => r.impl === id && r.status === 'ok' && value(r)).map((r) => [r.N, value(r)!] as [number, number]),
        ...styleOf(id),
      }))
      .filter((s) => s.points.length > 0);

  mkdirSync(chartDir, { recursive: true });
  const written: string[] = [];
  /** One line per implementation against N, when some row has a value; the frame's height fits the legend. */
  const nChart = (file: string, value: (r: TimingRow) => number | undefined, frame: Omit<Frame, 'height' | 'xTicks' | 'xTick'>) => {
    const series = seriesOf(value);
    if (series.length === 0) return;
    const path = join(chartDir, file);
    writeFileSync(path, lineChart({ ...frame, ...nTicks, height: Math.max(560, 90 + series.length * 19) }, series));
    written.push(path);
  };
  nChart('time-vs-n.svg', (r) => r.medianMs, {
    title: 'Time per call vs sequence length (log-log)',
    subtitle: `${machine}; dashed grey/black: peers`,
    xLabel: 'sequence length N',
    yLabel: 'time per call (ms, median)',
    yTick: (v) => (v >= 1000 ? `${v / 1000} s` : `${v} ms`),
  });
  nChart('memory-vs-n.svg', (r) => (r.maxRssBytes ? r.maxRssBytes / MiB : undefined), {
    title: 'Peak memory (max RSS of its own process) vs sequence length',
    subtitle: `${machine}; includes Node itself (~50 MiB) and the inputs`,
    xLabel: 'sequence length N',
    yLabel: 'max RSS (MiB)',
  });
  if (accuracy.length > 0) {
    // the structured inputs only: on iid noise exact attention averages to ~0, so relative errors say little
    const markers: Record<string, Marker> = { clustered: 'square', local: 'triangle' };
    const points: ScatterPoint[] = [];
    for (const a of accuracy.filter((x) => markers[x.dataset])) {
      const speed = rows.find((r) => r.impl === a.variant && r.N === accuracyN)?.speedupVsFull;
      if (!speed || !Number.isFinite(a.meanAbs)) continue;
      // relative to the exact output's mean magnitude, so that the datasets compare
      const relative = a.meanAbs / a.refMeanAbs;
      points.push({ x: speed, y: Math.max(relative, 1e-6), label: a.dataset === 'clustered' ? a.variant : '', color: styleOf(a.variant).color, marker: markers[a.dataset] });
    }
    if (points.length > 0) {
      const path = join(chartDir, 'error-vs-speedup.svg');
      writeFileSync(
        path,
        scatterChart(
          {
            title: `Error against exact attention vs speed-up over full, N=${accuracyN}`,
            subtitle: `${machine}; structured inputs (see bench/accuracy.ts), labels on the clustered points`,
            xLabel: `speed-up over full at N=${accuracyN} (x, log)`,
            yLabel: 'mean |error| / mean |exact output| (log)',
            xTick: (v) => `${v}x`,
            yTick: (v) => (v >= 0.01 ? String(v) : v.toExponential(0)),
          },
          points,
          [
            ...Object.entries(markers).map(([label, marker]) => ({ label: `${label} inputs`, color: '#333', marker })),
            ...[...new Set(points.map((p) => p.label).filter(Boolean))].map((id) => ({ label: id, color: styleOf(id).color, marker: 'circle' as Marker })),
          ],
        ),
      );
      written.push(path);
    }
  }
  return written;
}
