/**
 * A pool thread (Node worker_threads or a browser module Worker): it
 * instantiates the shared-memory build against the pool's shared memory,
 * then runs the jobs it is sent, each taken from the run's shared counter.
 * Plain WebAssembly here: workers cannot see the page's import map.
 */
import { runJob, type Job } from './jobs.js';

export type WorkerRequest =
  | { readonly type: 'init'; readonly module: WebAssembly.Module; readonly memory: WebAssembly.Memory }
  | { readonly type: 'jobs'; readonly jobs: readonly Job[]; readonly counter: number; readonly scratch: readonly number[] };

export type WorkerReply = { readonly type: 'ready' } | { readonly type: 'done' } | { readonly type: 'error'; readonly message: string };

interface Port {
  post(message: WorkerReply): void;
  listen(handler: (message: WorkerRequest) => void): void;
}

/** Answers the pool's requests on `channel`. */
function serve(channel: Port): void {
  let exports: Record<string, unknown> | null = null;
  let memory: WebAssembly.Memory | null = null;
  channel.listen((request) => {
    try {
      if (request.type === 'init') {
        memory = request.memory;
        exports = new WebAssembly.Instance(request.module, { env: { memory } }).exports as Record<string, unknown>;
        channel.post({ type: 'ready' });
      } else {
        // taken anew each run: the memory may have grown since
        const shared = new Int32Array(memory!.buffer);
        const next = () => Atomics.add(shared, request.counter >> 2, 1);
        for (let i = next(); i < request.jobs.length; i = next()) runJob(exports!, request.jobs[i], request.scratch);
        channel.post({ type: 'done' });
      }
    } catch (error) {
      channel.post({ type: 'error', message: error instanceof Error ? error.message : String(error) });
    }
  });
}

// no top-level await: bundlers emit workers in formats without it
const scope = globalThis as unknown as { postMessage?: (m: unknown) => void; addEventListener?: (t: string, h: (e: MessageEvent) => void) => void };
if (typeof scope.postMessage === 'function' && typeof scope.addEventListener === 'function' && typeof process === 'undefined') {
  serve({ post: (m) => scope.postMessage!(m), listen: (h) => scope.addEventListener!('message', (e) => h(e.data as WorkerRequest)) });
} else {
  const threads = 'node:worker_threads'; // computed: bundlers leave it to Node
  void (import(/* @vite-ignore */ threads) as Promise<typeof import('node:worker_threads')>).then(({ parentPort }) =>
    serve({ post: (m) => parentPort!.postMessage(m), listen: (h) => parentPort!.on('message', h) }),
  );
}
