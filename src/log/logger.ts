/**
 * The daemon's logger: pino, writing JSON lines, or human lines when the output is a terminal
 * (or --pretty). JSON goes through pino's own asynchronous destination; human lines are
 * formatted in-process by humanLine(), the same formatter `show` uses.
 */
import pino, { type Logger } from 'pino';
import type { Writable } from 'node:stream';
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

/**
 * Log lines waiting for the output beyond this are dropped and counted: a daemon busy forwarding
 * thousands of messages a second into a slow log (a pipe, a journal) must not grow without bound.
 * The recording keeps every message regardless; the log says how many lines it lost.
 */
export const MAX_LOG_BACKLOG = 16 << 20;
/** how often a count of dropped lines is logged (when there were any) */
const DROP_REPORT_MS = 10_000;

export interface CreatedLogger {
  logger: Logger;
  flush: () => void;
  /** log lines dropped so far because the output fell MAX_LOG_BACKLOG behind */
  dropped: () => number;
}

export function createLogger(format: LogFormat, target: LogTarget = { fd: 1 }, level = 'info'): CreatedLogger {
  const opts = { level, base: undefined, timestamp: false, messageKey: 'msg' } as const;
  if (target.stream) {
    const dest = format === 'pretty' ? humanStream(target.stream) : target.stream;
    return { logger: pino(opts, dest as never), flush: () => {}, dropped: () => 0 };
  }
  if (format === 'pretty') {
    const out = target.fd === 2 ? process.stderr : process.stdout;
    return { logger: pino(opts, humanStream(out) as never), flush: () => {}, dropped: () => 0 };
  }
  // (a larger maxWrite than sonic-boom's 16 KiB was tried: its buffer appends measure the whole
  // pending string at every line, which at 1 MiB stalled a saturated daemon for seconds)
  const dest = pino.destination({ dest: target.fd ?? 1, sync: false, minLength: 0, maxLength: MAX_LOG_BACKLOG });
  const logger = pino(opts, dest);
  let dropped = 0;
  let reported = 0;
  dest.on('drop', (data: string | Buffer) => {
    // one write is one line, or several when pino batched them
    dropped += Math.max(1, String(data).split('\n').length - 1);
  });
  const timer = setInterval(() => {
    if (dropped === reported) return;
    logger.warn({
      event: 'notice',
      droppedLines: dropped - reported,
      msg: `the log output fell ${MAX_LOG_BACKLOG >> 20} MiB behind: ${dropped - reported} log lines were dropped (${dropped} in all); the recording keeps every message`,
    });
    reported = dropped;
  }, DROP_REPORT_MS);
  timer.unref();
  return { logger, flush: () => dest.flushSync(), dropped: () => dropped };
}
