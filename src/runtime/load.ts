/**
 * Finding, compiling and instantiating the SIMD module, in Node and in
 * browsers alike. The `.wasm` sits next to the built package and is found
 * with `new URL(..., import.meta.url)`; `init.wasm` overrides that.
 */
import { instantiate } from '@assemblyscript/loader';
import type { Exports } from './exports.js';

/** Where the WebAssembly module comes from: a URL, its bytes, or a compiled module. */
export type WasmSource = string | URL | ArrayBuffer | Uint8Array | WebAssembly.Module;

/** The smallest module that uses a SIMD instruction: (func (result v128) v128.const 0). */
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 11,
]);

/** (func (result v128) three v128.const 0, f32x4.relaxed_madd). */
const RELAXED_SIMD_PROBE = (() => {
  const zero = [253, 12, ...new Array<number>(16).fill(0)];
  const body = [0, ...zero, ...zero, ...zero, 253, 133, 2, 11];
  return new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, body.length + 2, 1, body.length, ...body]);
})();

/** Does this runtime run WebAssembly SIMD (128-bit)? */
export function hasSimd(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
}

/** Does this runtime run relaxed SIMD (Chromium does; Node 20 with --experimental-wasm-relaxed-simd)? */
export function hasRelaxedSimd(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(RELAXED_SIMD_PROBE);
}

const isNode = typeof process === 'object' && typeof process.versions === 'object' && !!process.versions.node;

async function readBytes(url: URL): Promise<ArrayBuffer | Response> {
  if (url.protocol === 'file:' && isNode) {
    // a computed specifier keeps bundlers from pulling node:fs into browser builds
    const fs = 'node:fs/promises';
    const { readFile } = (await import(/* @vite-ignore */ fs)) as typeof import('node:fs/promises');
    const buf = await readFile(url);
    return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`wasm-attention: cannot fetch ${url.href}: HTTP ${response.status}`);
  if (response.headers.get('content-type')?.startsWith('text/html')) {
    throw new Error(`wasm-attention: ${url.href} answered with an HTML page, not the WebAssembly module (pass init.wasm, or see the README on bundlers)`);
  }
  // streaming compilation needs the application/wasm type; otherwise compile the bytes
  return response.headers.get('content-type')?.startsWith('application/wasm') ? response : response.arrayBuffer();
}

/**
 * Compiles and instantiates the module against `memory`: `source`, or the
 * build next to this package (relaxed SIMD when `relaxed`; the shared-memory
 * build, for threads, when `shared`). The compiled module comes back too, for
 * the pool's threads.
 */
export async function instantiateModule(
  source: WasmSource | undefined,
  memory: WebAssembly.Memory,
  relaxed: boolean,
  shared: boolean,
): Promise<{ exports: Exports; module: WebAssembly.Module }> {
  let input: ArrayBuffer | Uint8Array | WebAssembly.Module | Response;
  if (source === undefined) {
    // literal URLs, so that bundlers (Vite, webpack) see and emit every build
    const url = shared
      ? relaxed
        ? new URL('../attention-relaxed-shared.wasm', import.meta.url)
        : new URL('../attention-shared.wasm', import.meta.url)
      : relaxed
        ? new URL('../attention-relaxed.wasm', import.meta.url)
        : new URL('../attention.wasm', import.meta.url);
    input = await readBytes(url);
  } else if (typeof source === 'string' || source instanceof URL) input = await readBytes(new URL(source, defaultBase()));
  else input = source;
  const { exports, module } = await instantiate<Exports>(input as never, { env: { memory } });
  return { exports: exports as unknown as Exports, module };
}

/** Relative URLs resolve against the page in browsers, the working directory in Node. */
function defaultBase(): string {
  if (typeof location === 'object' && location.href) return location.href;
  return isNode ? `file://${process.cwd()}/` : import.meta.url;
}
