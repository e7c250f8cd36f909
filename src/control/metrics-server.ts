/**
 * The HTTP endpoint Prometheus scrapes (`proxy --metrics HOST:PORT`): GET /metrics, nothing
 * else. A scrape that fails answers 500 and is logged; it never touches the sessions.
 */
import * as http from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsAddress {
  host: string;
  port: number;
}

/** "127.0.0.1:9464", "[::1]:9464" or ":9464" (every address). */
export function parseMetricsAddress(v: string): MetricsAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`--metrics ${v}: give HOST:PORT, e.g. 127.0.0.1:9464 (or :9464 for every address)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** Listens (resolving once listening, rejecting with a clear error if it cannot). */
export function startMetricsServer(registry: Registry, at: MetricsAddress, onScrapeError: (err: Error) => void): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('vhostscope serves /metrics only\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => {
        onScrapeError(err);
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`);
      },
    );
  });
  // a scraper that goes away mid-answer is its own business
  server.on('clientError', (_err, socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`--metrics ${at.host}:${at.port}: ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.message}`)));
    server.listen(at.port, at.host, () => {
      server.removeAllListeners('error');
      server.on('error', onScrapeError);
      resolve(server);
    });
  });
}
