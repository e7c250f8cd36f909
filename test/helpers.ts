import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native, type Channel } from '../src/native';

export const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `vhs-${prefix}-`));
}

export async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Runs every cleanup step even when one fails (a test's finally must not leave a daemon behind
 * for the next test because an earlier step threw), then rethrows the first failure.
 */
export async function cleanUp(...steps: Array<() => unknown>): Promise<void> {
  let first: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

/** Reads fd to its end of file through the thread pool (a blocking pipe read must not stop the loop), then closes it. */
export function readAll(fd: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const r = fs.createReadStream('', { fd, autoClose: true });
    r.on('data', (c) => chunks.push(c as Buffer));
    r.on('error', reject);
    r.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

/**
 * A scripted peer listening on a fresh socket: `onMessage` gets every message of every connection
 * with the channel to answer on (the fds are its to close). close() ends the listener and every
 * connection.
 */
export function scriptedListener(prefix: string, onMessage: (ch: Channel, raw: Buffer, fds: number[]) => void): { path: string; close(): void } {
  const sock = path.join(tmpDir(prefix), 'peer.sock');
  const channels: Channel[] = [];
  const listener = new native.Listener(native.listenUnix(sock, 4, 0o600), (_e, fd) => {
    if (fd === null) return;
    const ch: Channel = new native.Channel(
      fd,
      1 << 20,
      (raw, fds) => onMessage(ch, raw, fds),
      () => {},
    );
    ch.start();
    channels.push(ch);
  });
  return {
    path: sock,
    close(): void {
      listener.close();
      for (const c of channels) c.close();
    },
  };
}
