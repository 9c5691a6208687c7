/**
 * The child-process side of the suite: every implementation (each of our
 * variants, tfjs-wasm, onnxruntime-web) is measured in a process of its own,
 * one per size, so that its peak memory (max RSS) is its own. The parent
 * (bench/run.ts) forks `dist-bench/peers/<worker>.js` and talks to it by
 * IPC: `setup` (load, make the inputs), `warm` (one timed call, and a few
 * output values to check against ours; optionally more calls to warm up), `time` (k calls timed by tinybench:
 * one round), `stats` (memory), then it disconnects.
 *
 * Import this module first in a worker: it hooks WebAssembly before any
 * library instantiates a module, to read every WebAssembly memory's size.
 */
import { Bench } from 'tinybench';

const memories = new Set<WebAssembly.Memory>();

/** Records every WebAssembly memory created or exported, whoever makes it. */
function hookWebAssembly(): void {
  const W = WebAssembly as unknown as Record<string, unknown>;
  const NativeMemory = WebAssembly.Memory;
  const NativeInstance = WebAssembly.Instance;
  const record = (instance: WebAssembly.Instance) => {
    for (const value of Object.values(instance.exports)) if (value instanceof NativeMemory) memories.add(value);
    return instance;
  };
  W.Memory = class extends NativeMemory {
    constructor(descriptor: WebAssembly.MemoryDescriptor) {
      super(descriptor);
      memories.add(this);
    }
  };
  W.Instance = class extends NativeInstance {
    constructor(module: WebAssembly.Module, imports?: WebAssembly.Imports) {
      super(module, imports);
      record(this);
    }
  };
  const instantiate = WebAssembly.instantiate;
  W.instantiate = async (source: never, imports?: WebAssembly.Imports) => {
    const result = (await instantiate(source, imports)) as WebAssembly.Instance | WebAssembly.WebAssemblyInstantiatedSource;
    record(result instanceof NativeInstance ? result : result.instance);
    return result;
  };
  const streaming = WebAssembly.instantiateStreaming;
  if (streaming) {
    W.instantiateStreaming = async (source: never, imports?: WebAssembly.Imports) => {
      const result = await streaming(source, imports);
      record(result.instance);
      return result;
    };
  }
}
hookWebAssembly();

/** Bytes of all WebAssembly memories of this process now (they never shrink: this is their peak). */
export const wasmBytes = () => [...memories].reduce((sum, m) => sum + m.buffer.byteLength, 0);

/** What the parent asks a worker to set up. */
export interface SetupRequest {
  N: number;
  H: number;
  D: number;
  /** Worker-specific parameters (which variant, which model...). */
  params: Record<string, unknown>;
  /** Flat indices into the `[1, H, N, D]` output whose values `warm` returns. */
  sampleAt: number[];
}

/** What a worker's setup returns: one call, and how to read its output in `[1, H, N, D]` order. */
export interface Prepared {
  call: () => unknown;
  /** Value at flat index i of the `[1, H, N, D]` output, given what `call` returned. */
  read: (result: unknown, i: number) => number;
  /** Extra facts for the report (versions, layouts...). */
  info?: Record<string, unknown>;
}

export type Message =
  | { cmd: 'setup'; request: SetupRequest }
  | { cmd: 'warm'; calls?: number; ms?: number }
  | { cmd: 'time'; iterations: number }
  | { cmd: 'stats' };

/** The first values of an error message (the stack stays in the child). */
const describeError = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n').slice(0, 3).join(' ').slice(0, 400);

/** Serves the parent's requests with `setup` (dynamic imports of the libraries go inside it). */
export function serve(setup: (request: SetupRequest) => Promise<Prepared>): void {
  let prepared: Prepared | null = null;
  let sampleAt: number[] = [];
  const reply = (value: object) => process.send!(value);
  const handle = async (message: Message): Promise<object> => {
    switch (message.cmd) {
      case 'setup': {
        sampleAt = message.request.sampleAt;
        prepared = await setup(message.request);
        return { rssAfterSetup: process.memoryUsage().rss, wasmAfterSetup: wasmBytes(), info: prepared.info ?? {} };
      }
      case 'warm': {
        const start = performance.now();
        const result = await prepared!.call();
        const ms = performance.now() - start;
        const sample = sampleAt.map((i) => prepared!.read(result, i));
        // then at least `calls` more calls and `ms` of them (at most 200): V8 optimises between calls
        let lastMs = ms;
        const warmStart = performance.now();
        for (let n = 0; n < 200 && (n < (message.calls ?? 0) || performance.now() - warmStart < (message.ms ?? 0)); n++) {
          const t = performance.now();
          await prepared!.call();
          lastMs = performance.now() - t;
        }
        return { ms, lastMs, sample };
      }
      case 'time': {
        // one round: `iterations` calls back to back, no warm-up (`warm` did it)
        const bench = new Bench({ time: 0, iterations: message.iterations, warmup: false, throws: true, retainSamples: true });
        bench.add('call', prepared!.call);
        // CPU time of the process over the round: unlike wall time, it does not count time
        // spent descheduled while other processes run (a shared machine)
        const cpu = process.cpuUsage();
        await bench.run();
        const { user, system } = process.cpuUsage(cpu);
        const result = bench.tasks[0].result;
        if (!('latency' in result)) throw new Error(`the timed calls did not complete (${result.state})`);
        return { samples: [...(result.latency.samples ?? [result.latency.p50])], cpuMs: (user + system) / 1000 / message.iterations };
      }
      case 'stats':
        // maxRSS is in KiB
        return { maxRss: process.resourceUsage().maxRSS * 1024, wasmBytes: wasmBytes() };
    }
  };
  process.on('message', (message: Message) => {
    handle(message).then(reply, (e: unknown) => reply({ error: describeError(e) }));
  });
  process.on('disconnect', () => process.exit(0));
  reply({ ready: true });
}
