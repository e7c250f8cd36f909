/**
 * The HTTP endpoint Prometheus scrapes (`proxy --metrics HOST:PORT`): GET /metrics, nothing
 * else. A scrape that fails answers 500 and is logged; it never touches the sessions.
 */
import { Worker } from 'node:worker_threads';
import type { Registry } from 'prom-client';

export interface MetricsAddress {
  host: string;
  port: number;
}

/**
 * "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464" (every address: say so) or ":9464" (loopback:
 * the endpoint has no authentication, and its labels name every VM's socket paths).
 */
export function parseMetricsAddress(v: string): MetricsAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`--metrics ${v}: give HOST:PORT, e.g. 127.0.0.1:9464 (:9464 is loopback; 0.0.0.0:9464 every address)`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** Whether only this host can reach the address. */
export function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === '::1' || host === 'localhost';
}

/** How long a scrape waits for fresh figures from the forwarding thread before the last ones are served. */
export const FRESH_WAIT_MS = 2000;
/** connections the endpoint holds at once; more are closed as they come (each is a daemon fd) */
export const MAX_CONNECTIONS = 32;

/**
 * The HTTP server runs in a worker thread: the forwarding event loop, saturated by many
 * sessions' traffic, answered scrapes only after seconds (5.7 s measured by bench/soak.js with 64
 * flooding sessions), and Prometheus gives up after 10 s. A scrape asks the main thread for the
 * figures and waits FRESH_WAIT_MS for them; if the loop is that far behind, it gets the last
 * figures at once, marked stale in a header, and the late ones are kept for the next scrape.
 * Plain JS, evaluated: the same code runs from dist/ and from the sources under test.
 */
const WORKER = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const waiting = new Map();
let next = 0;
let last;
// one request for figures at a time: scrapes that come while it is out share its answer
let asked = false;
parentPort.on('message', (m) => {
  if (m.type !== 'figures') return;
  asked = false;
  if (m.body !== undefined) last = { body: m.body, contentType: m.contentType, at: Date.now() };
  for (const [id, w] of waiting) {
    if (w.askedAt > m.askedAt) continue; // came after this build began: the next one answers it
    waiting.delete(id);
    clearTimeout(w.timer);
    if (m.body !== undefined) w.res.writeHead(200, { 'content-type': m.contentType }).end(m.body);
    else w.res.writeHead(500, { 'content-type': 'text/plain' }).end(m.error + '\\n');
  }
  if (waiting.size) ask();
});
let asks = 0;
function ask() {
  asked = true;
  parentPort.postMessage({ type: 'scrape', id: ++asks });
}
const server = http.createServer((req, res) => {
  if (req.method !== 'GET' || (req.url || '').split('?')[0] !== '/metrics') {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('vhostscope serves /metrics only\\n');
    return;
  }
  const id = next++;
  const timer = setTimeout(() => {
    waiting.delete(id);
    if (last) res.writeHead(200, { 'content-type': last.contentType, 'x-vhostscope-stale-ms': String(Date.now() - last.at) }).end(last.body);
    else res.writeHead(503, { 'content-type': 'text/plain' }).end('vhostscope: the daemon has not produced figures yet\\n');
  }, workerData.freshWaitMs);
  waiting.set(id, { res, timer, askedAt: asks + 1 }); // the build that begins next answers it
  if (!asked) ask();
});
// a bounded number of connections, none kept idle for long: they share the daemon's fd table
server.maxConnections = workerData.maxConnections;
server.headersTimeout = 5000;
server.requestTimeout = 10000;
server.keepAliveTimeout = 5000;
server.setTimeout(15000, (socket) => socket.destroy());
server.on('clientError', (_err, socket) => socket.destroy());
server.once('error', (err) => parentPort.postMessage({ type: 'error', code: err.code, message: err.message }));
server.listen(workerData.port, workerData.host, () => {
  server.removeAllListeners('error');
  server.on('error', (err) => parentPort.postMessage({ type: 'error', message: err.message }));
  parentPort.postMessage({ type: 'listening' });
});
`;

export interface MetricsServer {
  close(): void;
}

/** Listens (resolving once listening, rejecting with a clear error if it cannot). */
export function startMetricsServer(
  registry: Registry,
  at: MetricsAddress,
  onScrapeError: (err: Error) => void,
  freshWaitMs = FRESH_WAIT_MS,
): Promise<MetricsServer> {
  const worker = new Worker(WORKER, { eval: true, workerData: { host: at.host, port: at.port, freshWaitMs, maxConnections: MAX_CONNECTIONS } });
  worker.unref(); // the daemon's lifetime is its sessions' and signals', not the endpoint's
  return new Promise((resolve, reject) => {
    let listening = false;
    worker.on('message', (m: { type: string; id?: number; code?: string; message?: string }) => {
      if (m.type === 'listening') {
        listening = true;
        resolve({ close: () => void worker.terminate() });
      } else if (m.type === 'error') {
        const err = new Error(`--metrics ${at.host}:${at.port}: ${m.code === 'EADDRINUSE' ? 'the address is in use' : m.message}`);
        if (listening) onScrapeError(err);
        else {
          void worker.terminate();
          reject(err);
        }
      } else if (m.type === 'scrape') {
        registry.metrics().then(
          (body) => worker.postMessage({ type: 'figures', askedAt: m.id, body, contentType: registry.contentType }),
          (err: Error) => {
            onScrapeError(err);
            worker.postMessage({ type: 'figures', askedAt: m.id, error: err.message });
          },
        );
      }
    });
    worker.on('error', (err) => (listening ? onScrapeError(err) : reject(err)));
  });
}
