#!/usr/bin/env node
// A small static server for the demo and the browser test (node:http, no
// dependency). It serves the repository root, so /dist/index.js and
// /node_modules/@assemblyscript/loader/index.js resolve as the demo's import
// map expects, with `application/wasm` for .wasm (streaming compilation) and
// the COOP/COEP headers that make the page cross-origin isolated
// (SharedArrayBuffer, which the threads need).
//
//   node scripts/serve.mjs [--port 8080] [--host 127.0.0.1]   (or PORT=8080; 0 = a free port)
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.md': 'text/markdown; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

function send(res, status, text) {
  res.writeHead(status, { ...ISOLATION, 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(text);
}

/** The file a request path names inside `root`, or null when it would leave it. */
function fileOf(root, pathname) {
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  const file = normalize(join(root, decoded));
  return file === root || file.startsWith(root + sep) ? file : null;
}

/**
 * Starts the server. Resolves to `{ server, url, close }` once it listens;
 * `port: 0` picks a free port (the tests use it).
 */
export function serve({ port = 8080, host = '127.0.0.1', root = ROOT, log = false } = {}) {
  const server = createServer(async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed');
    const { pathname } = new URL(req.url ?? '/', 'http://localhost');
    let file = fileOf(root, pathname);
    if (!file) return send(res, 403, 'forbidden');
    try {
      let info = await stat(file);
      if (info.isDirectory()) {
        if (!pathname.endsWith('/')) {
          res.writeHead(301, { ...ISOLATION, Location: `${pathname}/` });
          return res.end();
        }
        file = join(file, 'index.html');
        info = await stat(file).catch(() => null);
        if (!info && pathname === '/') {
          // the repository root has no page of its own: the demo is the page
          res.writeHead(302, { ...ISOLATION, Location: '/demo/' });
          return res.end();
        }
        if (!info) return send(res, 404, 'not found');
      }
      if (!info.isFile()) return send(res, 404, 'not found');
      res.writeHead(200, {
        ...ISOLATION,
        'Content-Type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': info.size,
        'Cache-Control': 'no-store',
      });
      if (req.method === 'HEAD') return res.end();
      createReadStream(file).on('error', () => res.destroy()).pipe(res);
    } catch {
      send(res, 404, 'not found');
    } finally {
      if (log) console.log(`${req.method} ${pathname} ${res.statusCode}`);
    }
  });
  return new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      const url = `http://${host}:${address.port}/`;
      resolveListen({ server, url, close: () => new Promise((done) => server.close(() => done())) });
    });
  });
}

function portArgument(argv) {
  const at = argv.findIndex((a) => a === '--port' || a.startsWith('--port='));
  const raw = at < 0 ? process.env.PORT : argv[at].includes('=') ? argv[at].split('=')[1] : argv[at + 1];
  if (raw === undefined || raw === '') return 8080;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`--port: expected an integer in [0, 65535], received ${JSON.stringify(raw)}`);
  return port;
}

function hostArgument(argv) {
  const at = argv.findIndex((a) => a === '--host' || a.startsWith('--host='));
  if (at < 0) return process.env.HOST || '127.0.0.1';
  return argv[at].includes('=') ? argv[at].split('=')[1] : argv[at + 1];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const { url } = await serve({ port: portArgument(argv), host: hostArgument(argv), log: argv.includes('--log') });
  console.log(`wasm-attention demo: ${url}demo/`);
  console.log(`(serving ${ROOT}; Ctrl-C to stop)`);
}
