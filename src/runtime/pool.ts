/**
 * A pool of threads over one shared WebAssembly memory: Node worker_threads
 * or browser module Workers, started once and released by dispose(). Every
 * thread gets a plan's jobs in one message and takes them one at a time from
 * a counter in the shared memory, so that the work spreads evenly whatever
 * the jobs cost (the heads of `mixed`) and however the machine slows a
 * thread down; a thread that fails or dies rejects the run and is replaced.
 */
import type { Job } from './jobs.js';
import type { WorkerReply, WorkerRequest } from './worker.js';

const isNode = typeof process === 'object' && typeof process.versions === 'object' && !!process.versions.node;

/** The little that the pool needs of a Node or a browser worker. */
interface Thread {
  post(message: WorkerRequest): void;
  /** Called with each reply, or with an Error when the thread dies. */
  onReply: (reply: WorkerReply | Error) => void;
  /** Node: whether an idle thread may keep the process alive. */
  hold(busy: boolean): void;
  terminate(): void;
}

async function startThread(): Promise<Thread> {
  if (isNode) {
    const threads = 'node:worker_threads';
    const { Worker } = (await import(/* @vite-ignore */ threads)) as typeof import('node:worker_threads');
    const worker = new Worker(new URL('./worker.js', import.meta.url));
    const thread: Thread = {
      post: (m) => worker.postMessage(m),
      onReply: () => {},
      hold: (busy) => (busy ? worker.ref() : worker.unref()),
      terminate: () => void worker.terminate(),
    };
    worker.on('message', (m: WorkerReply) => thread.onReply(m));
    worker.on('error', (e) => thread.onReply(e instanceof Error ? e : new Error(String(e))));
    worker.on('exit', (code) => thread.onReply(new Error(`wasm-attention: a worker thread exited (code ${code})`)));
    worker.unref();
    return thread;
  }
  // written out in full, so that bundlers (Vite, webpack) find and emit the worker
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  const thread: Thread = {
    post: (m) => worker.postMessage(m),
    onReply: () => {},
    hold: () => {},
    terminate: () => worker.terminate(),
  };
  worker.onmessage = (e: MessageEvent<WorkerReply>) => thread.onReply(e.data);
  worker.onerror = (e: ErrorEvent) => thread.onReply(new Error(`wasm-attention: a worker thread failed: ${e.message}`));
  return thread;
}

/** Sends one request and waits for its reply (an error reply or a dead thread rejects). */
function request(thread: Thread, message: WorkerRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    thread.onReply = (reply) => {
      thread.onReply = () => {};
      if (reply instanceof Error) reject(reply);
      else if (reply.type === 'error') reject(new Error(`wasm-attention: kernel failed in a worker thread: ${reply.message}`));
      else resolve();
    };
    thread.post(message);
  });
}

export class Pool {
  private threads: (Thread | null)[];
  private disposed = false;

  private constructor(
    readonly size: number,
    private readonly module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
  ) {
    this.threads = new Array<Thread | null>(size).fill(null);
  }

  /** Starts `size` threads on the shared-memory module. */
  static async create(size: number, module: WebAssembly.Module, memory: WebAssembly.Memory): Promise<Pool> {
    const pool = new Pool(size, module, memory);
    await Promise.all(pool.threads.map((_, i) => pool.thread(i)));
    return pool;
  }

  /** Thread i, started (again, after a failure) when needed. */
  private async thread(i: number): Promise<Thread> {
    if (this.disposed) throw new Error('wasm-attention: the instance was disposed');
    let thread = this.threads[i];
    if (!thread) {
      thread = await startThread();
      thread.hold(true);
      try {
        await request(thread, { type: 'init', module: this.module, memory: this.memory });
      } finally {
        thread.hold(false);
      }
      this.threads[i] = thread;
    }
    return thread;
  }

  /**
   * Runs every job: each thread takes the next job from the Int32 counter at
   * byte `counter` (which must hold 0), with its scratch pointers scratch[i];
   * the calling thread only waits. Rejects with the first failure; a failed
   * thread is terminated and replaced for the next run.
   */
  async run(jobs: readonly Job[], scratch: readonly (readonly number[])[], counter: number): Promise<void> {
    let failure: unknown = null;
    const lane = async (i: number): Promise<void> => {
      const thread = await this.thread(i);
      thread.hold(true);
      try {
        await request(thread, { type: 'jobs', jobs, counter, scratch: scratch[i] });
      } catch (error) {
        failure ??= error;
        thread.terminate();
        this.threads[i] = null;
      } finally {
        thread.hold(false);
      }
    };
    await Promise.all(this.threads.slice(0, Math.min(this.size, jobs.length)).map((_, i) => lane(i)));
    if (failure !== null) throw failure;
  }

  /** Stops every thread; the pool cannot run afterwards. */
  dispose(): void {
    this.disposed = true;
    for (const thread of this.threads) {
      if (!thread) continue;
      thread.onReply = () => {};
      thread.terminate();
    }
    this.threads.fill(null);
  }
}
