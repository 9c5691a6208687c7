/**
 * Measuring implementations in child processes, shared by the sections of
 * bench/run.ts: `Child` (one worker process, bench/peers/<worker>.ts, serving
 * one implementation at one size) and `measureGroup`, which starts one child
 * per member of a group, warms each, times them in interleaved rounds (every
 * member once per round, the order rotated, so that drift on a shared machine
 * spreads evenly over them) and reads their memory. Also the formatting
 * helpers of the report.
 */
import { fork, type ChildProcess, type Serializable } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './measure.js';
import type { Message, SetupRequest } from './peers/child.js';

const here = dirname(fileURLToPath(import.meta.url));

interface Reply {
  error?: string;
  [key: string]: unknown;
}

/** One worker process (bench/peers/<worker>.ts) serving one implementation at one size. */
export class Child {
  private pending: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  private stderr = '';
  private exited: string | null = null;
  private constructor(private readonly proc: ChildProcess) {
    proc.stderr!.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-2000)));
    proc.on('message', (m: Reply) => {
      const p = this.pending;
      this.pending = null;
      p?.resolve(m);
    });
    proc.on('exit', (code, signal) => {
      this.exited = `exited (${signal ?? `code ${code}`})${this.stderr ? `: ${this.stderr.trim().split('\n').slice(-3).join(' ')}` : ''}`;
      const p = this.pending;
      this.pending = null;
      p?.reject(new Error(this.exited));
    });
  }

  static async start(worker: string, execArgv: string[] = []): Promise<Child> {
    const proc = fork(join(here, 'peers', `${worker}.js`), [], { execArgv, serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const child = new Child(proc);
    await child.next();
    return child;
  }

  private next(): Promise<Reply> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise((resolve, reject) => (this.pending = { resolve, reject }));
  }

  /** Sends a request and waits for its reply; a child silent for `timeoutMs` is killed. */
  async request(message: Message, timeoutMs = 15 * 60_000): Promise<Reply> {
    const reply = this.next();
    this.proc.send(message);
    const timer = setTimeout(() => this.proc.kill(), timeoutMs);
    try {
      const r = await reply;
      if (r.error) throw new Error(r.error);
      return r;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    if (this.exited) return;
    if (this.proc.connected) this.proc.disconnect();
    setTimeout(() => this.exited || this.proc.kill(), 5000).unref();
  }
}

/**
 * Runs a section's measurement in a child process of its own: forks
 * `moduleUrl` (a section's module) with `flag`, sends it `request`, relays
 * its progress lines and resolves with its result. The module answers with
 * {@link serveSection}.
 */
export function sectionInChild<T>(moduleUrl: string, flag: string, request: Serializable, progress: (message: string) => void, execArgv: string[] = []): Promise<T> {
  const child = fork(fileURLToPath(moduleUrl), [flag], { execArgv, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.on('message', (m: { progress?: string; result?: T }) => {
      if (m.progress) progress(m.progress);
      if (m.result !== undefined) resolve(m.result);
    });
    child.on('exit', (code) => reject(new Error(`${flag}: the section's process exited (code ${code}) before its results`)));
    child.send(request);
  });
}

/** In a process that {@link sectionInChild} started with `flag`: measures with `measure` and sends back its result. */
export function serveSection<R, T>(flag: string, measure: (request: R, progress: (message: string) => void) => Promise<T>): void {
  if (process.argv[2] !== flag || !process.send) return;
  process.once('message', async (request: R) => {
    const result = await measure(request, (message) => process.send!({ progress: message }));
    process.send!({ result }, () => process.exit(0));
  });
}

/** One row of a report: one implementation at one size. */
export interface TimingRow {
  impl: string;
  kind: 'ours' | 'ours-js' | 'peer';
  family?: string;
  N: number;
  status: 'ok' | 'skipped' | 'error';
  reason?: string;
  medianMs?: number;
  minMs?: number;
  maxMs?: number;
  samples?: number;
  /** Starting the process, loading the library, making the inputs and parameters (in parallel with the others). */
  setupMs?: number;
  /** CPU time of the process per call (median over rounds): what a call costs when the machine is shared. */
  cpuMs?: number;
  /** The first call (compiles, grows memory). */
  firstCallMs?: number;
  gflops?: number;
  /** full's time / this time, at the same N. */
  speedupVsFull?: number;
  /** WebAssembly memory of the process after the calls (its peak: it never shrinks). */
  wasmBytes?: number;
  /** Peak resident memory of the process (its own: one process per implementation and size). */
  maxRssBytes?: number;
  /** Resident memory after loading and making the inputs, before the first call. */
  rssAfterSetupBytes?: number;
  /** Max |output - full's output| on 64 sampled entries (peers and our JS backend). */
  maxDiffVsFull?: number;
  /** With `keepRounds`: the median wall time per call of each round, in order (for ratios paired by round). */
  roundMs?: number[];
  /** With `keepRounds`: the CPU time per call of each round, in order. */
  roundCpuMs?: number[];
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms >= 1000) return `${(ms / 1000).toPrecision(3)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(3)} ms`;
}

/** What runs one row of a group: a worker with its parameters. */
export interface GroupMember {
  /** The row's label. */
  id: string;
  kind: TimingRow['kind'];
  family?: string;
  /** bench/peers/<worker>.ts runs it. */
  worker: string;
  /** Node flags of its process. */
  execArgv?: string[];
  params: Record<string, unknown>;
  /** Counted flops of one call at size N (for GFLOP/s). */
  flops?: (N: number) => number;
}

export interface GroupSettings<M extends GroupMember> {
  /** The problem every member of the group runs (B = 1). */
  N: number;
  H: number;
  D: number;
  rounds: number;
  /** Calls per round, given the time of a call (ms). */
  perRound: (ms: number) => number;
  /**
   * Warm-up after the first call, in the child: at least `calls` more calls
   * and `ms` of them (V8 moves a WebAssembly function to optimised code
   * between calls, not during one). None by default.
   */
  warm?: { calls: number; ms: number };
  /** A member whose first call takes longer (ms) is measured by that call alone. */
  oneCallAbove: (member: M) => number;
  /** Flat indices of the `[1, H, N, D]` output that each member's first call returns. */
  sampleAt: number[];
  /** Keep each round's time in the rows (`roundMs`, `roundCpuMs`). */
  keepRounds?: boolean;
  /** What the progress lines name the group by. */
  label: string;
  progress: (message: string) => void;
}

export interface GroupResult {
  rows: TimingRow[];
  /** Output values of each member's first call at `sampleAt`, by row id. */
  samples: Map<string, number[]>;
  /** What each member's setup reported (versions, layouts...), by row id. */
  info: Map<string, Record<string, unknown>>;
  /** Seconds spent starting the processes and making the inputs (in parallel). */
  setupS: number;
}

/**
 * Starts one child per member, warms each, times them in interleaved rounds
 * (wall time of every call and the process's CPU time per call), reads their
 * memory. A member that fails has a row of status 'error' with the reason.
 */
export async function measureGroup<M extends GroupMember>(group: M[], settings: GroupSettings<M>): Promise<GroupResult> {
  const { N, H, D, rounds, label, progress } = settings;
  progress(`${label}: starting ${group.length} processes`);
  const rows: TimingRow[] = [];
  const samples = new Map<string, number[]>();
  const info = new Map<string, Record<string, unknown>>();
  const live: { member: M; child: Child; row: TimingRow; times: number[]; cpu: number[]; roundMs: number[]; k: number }[] = [];
  const fail = (member: M, e: unknown) => {
    const reason = e instanceof Error ? e.message : String(e);
    rows.push({ impl: member.id, kind: member.kind, family: member.family, N, status: 'error', reason });
  };
  // load and make inputs in parallel (untimed)
  const setupStart = performance.now();
  await Promise.all(
    group.map(async (member) => {
      let child: Child | null = null;
      try {
        const t0 = performance.now();
        child = await Child.start(member.worker, member.execArgv);
        const request: SetupRequest = { N, H, D, params: member.params, sampleAt: settings.sampleAt };
        const setup = await child.request({ cmd: 'setup', request });
        const setupMs = performance.now() - t0;
        const row: TimingRow = { impl: member.id, kind: member.kind, family: member.family, N, status: 'ok', setupMs, rssAfterSetupBytes: setup.rssAfterSetup as number };
        info.set(member.id, setup.info as Record<string, unknown>);
        live.push({ member, child, row, times: [], cpu: [], roundMs: [], k: 1 });
      } catch (e) {
        child?.close();
        fail(member, e);
      }
    }),
  );
  const setupS = (performance.now() - setupStart) / 1000;
  live.sort((a, b) => group.indexOf(a.member) - group.indexOf(b.member));
  // the first call of each (and its warm-up), one at a time
  for (const entry of [...live]) {
    progress(`${label}: first call${settings.warm ? 's' : ''} of ${entry.member.id}`);
    try {
      const warm = await entry.child.request({ cmd: 'warm', ...settings.warm });
      entry.row.firstCallMs = warm.ms as number;
      samples.set(entry.member.id, warm.sample as number[]);
      entry.k = settings.perRound((warm.lastMs as number | undefined) ?? (warm.ms as number));
      // far slower than predicted: the first call is its one measurement
      if ((warm.ms as number) > settings.oneCallAbove(entry.member)) {
        entry.times.push(warm.ms as number);
        entry.row.reason = 'one call (too slow to repeat)';
      }
    } catch (e) {
      entry.child.close();
      live.splice(live.indexOf(entry), 1);
      fail(entry.member, e);
    }
  }
  // interleaved rounds: every configuration once per round, the order rotated
  const timed = live.filter((e) => e.times.length === 0);
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < timed.length; j++) {
      const entry = timed[(j + r) % timed.length];
      if (entry.row.status !== 'ok') continue;
      progress(`${label}: round ${r + 1}/${rounds}, ${entry.member.id} (${entry.k} call${entry.k > 1 ? 's' : ''})`);
      try {
        const reply = await entry.child.request({ cmd: 'time', iterations: entry.k });
        entry.times.push(...(reply.samples as number[]));
        entry.roundMs.push(median(reply.samples as number[]));
        entry.cpu.push(reply.cpuMs as number);
      } catch (e) {
        entry.row.status = 'error';
        entry.row.reason = e instanceof Error ? e.message : String(e);
      }
    }
  }
  for (const entry of live) {
    const { row, times, member } = entry;
    try {
      const stats = await entry.child.request({ cmd: 'stats' });
      row.maxRssBytes = stats.maxRss as number;
      row.wasmBytes = stats.wasmBytes as number;
    } catch {
      // memory figures stay unknown
    }
    entry.child.close();
    if (row.status === 'ok' && times.length > 0) {
      row.medianMs = median(times);
      row.minMs = Math.min(...times);
      row.maxMs = Math.max(...times);
      row.samples = times.length;
      if (entry.cpu.length > 0) row.cpuMs = median(entry.cpu);
      if (settings.keepRounds && entry.roundMs.length > 0) [row.roundMs, row.roundCpuMs] = [entry.roundMs, entry.cpu];
      if (member.flops) row.gflops = member.flops(N) / row.medianMs / 1e6;
    }
    rows.push(row);
  }
  return { rows, samples, info, setupS };
}

/** Prints an aligned table: the first column left-aligned, the others right-aligned. */
export function table(title: string, header: string[], body: string[][]): void {
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  ');
  console.log(`\n${title}\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of body) console.log(line(r));
}
