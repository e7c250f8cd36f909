import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

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
