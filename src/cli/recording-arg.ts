/**
 * A recording argument: a recording file, or a bug report (`vhostscope bugreport`), whose
 * recording is taken out into a private temporary directory for the command to read.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The recording's name inside a bug report. */
export const BUG_REPORT_RECORDING = 'recording.vhsrec';

/** `file`, or the recording inside it when it is a bug report (a gzip archive). */
export function recordingArg(file: string): string {
  const head = Buffer.alloc(2);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, 2, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (head[0] !== 0x1f || head[1] !== 0x8b) return file;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-bugreport-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  try {
    execFileSync('tar', ['-xzf', file, '-C', dir, `./${BUG_REPORT_RECORDING}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`${file}: a gzip file, but not a vhostscope bug report (no ${BUG_REPORT_RECORDING} in it): ${(err as Error).message.split('\n')[0]}`);
  }
  return path.join(dir, BUG_REPORT_RECORDING);
}
