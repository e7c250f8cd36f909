/**
 * One formatter for proxy events: to a JSON-safe log record (pino fields) and from that record
 * to one human line. The live log, `show` and tests all go through here.
 */
import { flagsToString, formatPayload, toJsonSafe, type DeviceType } from '../protocol';
import type { FdDescription, ProxyEvent } from '../proxy/events';

export const secs = (ns: bigint): string => {
  const us = ns / 1000n;
  return `${us / 1_000_000n}.${(us % 1_000_000n).toString().padStart(6, '0')}`;
};

function mib(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)}MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024}KiB`;
  return `${n}B`;
}

export function fdSummary(f: FdDescription): string {
  switch (f.kind) {
    case 'memfd':
    case 'hugetlbfs':
      return `${f.kind}${f.memfdName !== undefined ? `:${f.memfdName}` : ''}(${mib(f.size ?? 0)})`;
    case 'eventfd':
      return `eventfd${f.eventfdId !== undefined ? `#${f.eventfdId}` : ''}`;
    case 'file':
      return `file:${f.target ?? '?'}(${mib(f.size ?? 0)})`;
    case 'other':
      return f.target ?? 'other';
    default:
      return f.kind;
  }
}

/** The fields of one log record (JSON-safe: no bigints, no buffers). */
export function eventRecord(e: ProxyEvent, device: DeviceType = 'generic'): Record<string, unknown> {
  switch (e.type) {
    case 'message': {
      const d = e.decoded;
      return {
        event: 'message',
        t: secs(e.ts),
        session: e.session,
        channel: e.channel,
        dir: e.dir,
        request: d.name,
        code: d.request,
        flags: flagsToString(d.flags),
        size: d.size,
        fds: e.fds.map(fdSummary),
        ...(e.fds.length ? { fdInfo: e.fds } : {}),
        summary: formatPayload(d, device),
        payload: toJsonSafe(d, device),
        ...(e.replyExpected !== undefined ? { replyExpected: e.replyExpected } : {}),
        ...(e.findings.length ? { findings: e.findings } : {}),
        msg: `${d.name}${d.reply ? ' reply' : ''}`,
      };
    }
    case 'session-start':
      return {
        event: 'session-start',
        t: secs(e.ts),
        session: e.session,
        listen: e.listenPath,
        connect: e.connectPath,
        frontend: e.frontend,
        peers: e.peers,
        msg: 'session start',
      };
    case 'session-end':
      return {
        event: 'session-end',
        t: secs(e.ts),
        session: e.session,
        reason: e.reason,
        by: e.by,
        messages: e.messages,
        fdsForwarded: e.fdsForwarded,
        msg: 'session end',
      };
  }
}

function peer(p: unknown): string {
  const id = p as { pid?: number; exe?: string } | undefined;
  if (!id) return '?';
  return `pid ${id.pid}${id.exe ? ` ${id.exe.split('/').pop()}` : ''}`;
}

/** One human line from a log record (as produced by eventRecord, or any other pino record). */
export function humanLine(r: Record<string, unknown>): string {
  const t = typeof r.t === 'string' ? r.t.padStart(14) : ''.padStart(14);
  const s = r.session !== undefined ? `s${r.session}` : '--';
  switch (r.event) {
    case 'message': {
      const fds = (r.fds as string[]).length ? ` fds=[${(r.fds as string[]).join(' ')}]` : '';
      const req = String(r.request);
      const chan = r.channel === 'main' ? '' : `${r.channel} `;
      const warn = r.findings ? `  !! ${(r.findings as { rule: string; message: string }[]).map((f) => `${f.rule}: ${f.message}`).join('; ')}` : '';
      return `${t} ${s} ${r.dir} ${chan}${req.padEnd(22)} ${String(r.flags).padEnd(13)} size=${String(r.size).padEnd(4)}${fds} ${r.summary}${warn}`.trimEnd();
    }
    case 'session-start': {
      const peers = r.peers as { listen?: unknown; connect?: unknown };
      return `${t} ${s} session start: listen ${r.listen} (${peer(peers?.listen)}) <-> connect ${r.connect} (${peer(peers?.connect)}), frontend=${r.frontend}`;
    }
    case 'session-end':
      return `${t} ${s} session end: ${r.reason}; messages F>B=${(r.messages as Record<string, number>)['F>B']} B>F=${(r.messages as Record<string, number>)['B>F']}, fds forwarded=${r.fdsForwarded}`;
    default: {
      const lvl = typeof r.level === 'number' ? (r.level >= 50 ? 'ERROR ' : r.level >= 40 ? 'WARN ' : '') : '';
      return `${t} ${s} ${lvl}${r.msg ?? ''}`;
    }
  }
}
