/** Talking to a running daemon's control socket (used by `vhostscope status | tail | rules`). */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { defaultControlPath } from './protocol';
import type { ControlRequest } from './protocol';

/**
 * The control socket to use: the one given, or the daemon's listen path plus `.ctl`, or
 * $VHOSTSCOPE_CONTROL. Accepts the proxy's listen path too (what users remember).
 */
export function resolveControlPath(given?: string): string {
  const p = given ?? process.env.VHOSTSCOPE_CONTROL;
  if (!p) throw new Error('which daemon? give --control PATH (the proxy prints it at start: <listen path>.ctl) or set VHOSTSCOPE_CONTROL');
  if (!p.endsWith('.ctl') && fs.existsSync(defaultControlPath(p))) return defaultControlPath(p);
  return p;
}

/**
 * Sends one request; resolves with the reply's result. For `tail`, every following line is
 * passed to onLine and the promise resolves when the daemon closes the connection.
 */
export function controlRequest(path: string, req: ControlRequest, onLine?: (rec: Record<string, unknown>) => void, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path });
    let buf = '';
    let result: unknown;
    let answered = false;
    const timer =
      req.cmd === 'tail'
        ? undefined
        : setTimeout(() => {
            sock.destroy();
            reject(new Error(`${path}: no answer within ${timeoutMs} ms`));
          }, timeoutMs);
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new Error(
          err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
            ? `${path}: no daemon listening (${err.code}); is vhostscope proxy running with its control socket there?`
            : `${path}: ${err.message}`,
        ),
      );
    });
    sock.setEncoding('utf8'); // a character split across chunks stays whole
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let rec: Record<string, unknown>;
        try {
          rec = JSON.parse(line) as Record<string, unknown>;
        } catch {
          clearTimeout(timer);
          sock.destroy();
          reject(new Error(`${path}: the daemon answered something that is not JSON: ${JSON.stringify(line.slice(0, 80))}`));
          return;
        }
        if (!answered) {
          answered = true;
          if (rec.ok !== true) {
            clearTimeout(timer);
            sock.destroy();
            reject(new Error(String(rec.error)));
            return;
          }
          result = rec.result;
        } else if (rec.ok === false) {
          reject(new Error(String(rec.error)));
        } else onLine?.(rec);
      }
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (answered) resolve(result);
      else reject(new Error(`${path}: the daemon closed the connection without an answer`));
    });
  });
}
