/**
 * A pool thread (Node worker_threads or a browser module Worker): it
 * instantiates the shared-memory build against the pool's shared memory,
 * then runs the jobs it is sent. Plain WebAssembly here: workers cannot see
 * the page's import map.
 */
import { runJob, type Job } from './jobs.js';

export type WorkerRequest =
  | { readonly type: 'init'; readonly module: WebAssembly.Module; readonly memory: WebAssembly.Memory }
  | { readonly type: 'job'; readonly job: Job; readonly scratch: readonly number[] };

export type WorkerReply = { readonly type: 'ready' } | { readonly type: 'done' } | { readonly type: 'error'; readonly message: string };

interface Port {
  post(message: WorkerReply): void;
  listen(handler: (message: WorkerRequest) => void): void;
}

/** Answers the pool's requests on `channel`. */
function serve(channel: Port): void {
  let exports: Record<string, unknown> | null = null;
  channel.listen((request) => {
    try {
      if (request.type === 'init') {
        exports = new WebAssembly.Instance(request.module, { env: { memory: request.memory } }).exports as Record<string, unknown>;
        channel.post({ type: 'ready' });
      } else {
        runJob(exports!, request.job, request.scratch);
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
