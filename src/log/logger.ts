/**
 * The daemon's logger: pino, writing JSON lines, or human lines when the output is a terminal
 * (or --pretty). JSON goes through pino's own asynchronous destination; human lines are
 * formatted in-process by humanLine(), the same formatter `show` uses.
 */
import pino, { type Logger } from 'pino';
import { Writable } from 'node:stream';
import { humanLine } from './format';

export type LogFormat = 'json' | 'pretty';

export function chooseFormat(opts: { json?: boolean; pretty?: boolean }, isTTY: boolean): LogFormat {
  if (opts.json) return 'json';
  if (opts.pretty) return 'pretty';
  return isTTY ? 'pretty' : 'json';
}

export interface LogTarget {
  /** file descriptor to write to (1 = stdout) */
  fd?: number;
  /** or a writable stream (tests) */
  stream?: Writable;
}

function humanStream(out: NodeJS.WritableStream): { write(line: string): void } {
  return {
    write(line: string) {
      try {
        out.write(humanLine(JSON.parse(line)) + '\n');
      } catch {
        out.write(line);
      }
    },
  };
}

export function createLogger(format: LogFormat, target: LogTarget = { fd: 1 }, level = 'info'): { logger: Logger; flush: () => void } {
  const opts = { level, base: undefined, timestamp: false, messageKey: 'msg' } as const;
  if (target.stream) {
    const dest = format === 'pretty' ? humanStream(target.stream) : target.stream;
    return { logger: pino(opts, dest as never), flush: () => {} };
  }
  if (format === 'pretty') {
    const out = target.fd === 2 ? process.stderr : process.stdout;
    return { logger: pino(opts, humanStream(out) as never), flush: () => {} };
  }
  const dest = pino.destination({ dest: target.fd ?? 1, sync: false, minLength: 0 });
  return { logger: pino(opts, dest), flush: () => dest.flushSync() };
}
