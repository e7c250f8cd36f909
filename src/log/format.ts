/**
 * One formatter for proxy events: to a JSON-safe log record (pino fields) and from that record
 * to one human line. The live log, `show` and tests all go through here.
 */
import { flagsToString, formatPayload, toJsonSafe, type DeviceType } from '../protocol';
import { eventfdMode, type FdDescription, type ProxyEvent } from '../events/events';
import type { VringStats } from '../events/notification-stats';
import { indicesText, ringRecord } from '../rings/format';
import { inflightText } from '../rings/inflight';

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
        ...(d.dialect ? { dialect: d.dialect } : {}),
        ...(d.ambiguous ? { ambiguous: d.ambiguous } : {}),
        flags: flagsToString(d.flags, d.channel),
        size: d.size,
        fds: e.fds.map(fdSummary),
        ...(e.fds.length ? { fdInfo: e.fds } : {}),
        summary: `${formatPayload(d, device)}${d.ambiguous ? `${formatPayload(d, device) ? ' ' : ''}[ambiguous: ${d.ambiguous.join(' or ')}]` : d.dialect ? `${formatPayload(d, device) ? ' ' : ''}[${d.dialect}]` : ''}`,
        payload: toJsonSafe(d, device),
        ...(e.replyExpected !== undefined ? { replyExpected: e.replyExpected } : {}),
        ...(e.findings.length ? { findings: e.findings } : {}),
        ...(e.interposed ? { interposed: true } : {}),
        ...(e.masked ? { masked: e.masked } : {}),
        ...(e.injected ? { injected: true } : {}),
        ...(e.absorbed ? { absorbed: true } : {}),
        ...(e.faults ? { faults: e.faults } : {}),
        ...(e.undelivered ? { undelivered: e.undelivered } : {}),
        ...(e.heldNs !== undefined ? { heldMs: Number(e.heldNs) / 1e6 } : {}),
        msg: `${d.name}${d.reply ? ' reply' : ''}`,
      };
    }
    case 'notification':
      return {
        event: 'notification',
        t: secs(e.ts),
        session: e.session,
        vring: e.vring,
        kind: e.kind,
        count: e.count,
        ...(e.injected ? { injected: true } : {}),
        msg: e.kind,
      };
    case 'ring': {
      const r = ringRecord(e.snapshot, device, e.vring);
      const what =
        e.snapshot.kind === 'base'
          ? `GET_VRING_BASE answered ${e.base}; ring ${indicesText(e.snapshot)}`
          : `${e.snapshot.kind}: ${indicesText(e.snapshot)}, ${e.snapshot.entries.length} new chain(s)`;
      return {
        event: 'ring',
        t: secs(e.ts),
        session: e.session,
        vring: e.vring,
        ...r,
        ...(e.base !== undefined ? { base: e.base } : {}),
        msg: `vring ${e.vring} ${what}${e.snapshot.error ? `; ${e.snapshot.error}` : ''}`,
      };
    }
    case 'notice':
      return { event: 'notice', t: secs(e.ts), session: e.session, msg: e.msg };
    case 'device-state': {
      const ms = Number(e.ts - e.startNs) / 1e6;
      const kept = e.data ? `; ${e.truncated ? `the first ${e.data.length} bytes` : 'all of it'} recorded` : '';
      return {
        event: 'device-state',
        t: secs(e.ts),
        session: e.session,
        direction: e.direction,
        bytes: e.bytes,
        ms: Number(ms.toFixed(3)),
        ...(e.error ? { error: e.error } : {}),
        ...(e.data ? { recorded: e.data.length } : {}),
        ...(e.heldMs ? { heldMs: e.heldMs } : {}),
        msg: `device state ${e.direction}: ${e.bytes} bytes through the proxy's pipe in ${ms.toFixed(1)} ms${e.heldMs ? ` (held ${e.heldMs} ms by a fault rule)` : ''}${e.error ? `, cut short: ${e.error}` : ''}${kept}`,
      };
    }
    case 'dirty-log': {
      const per = e.vrings.map((v) => `vring ${v.vring}: used ring ${v.usedRing}, buffers ${v.buffers}`);
      if (e.other) per.push(`other ${e.other}`);
      return {
        event: 'dirty-log',
        t: secs(e.ts),
        session: e.session,
        bytes: e.bytes,
        samples: e.samples,
        marks: e.marks,
        pages: e.pages,
        vrings: e.vrings,
        other: e.other,
        ...(e.error ? { error: e.error } : {}),
        msg: `dirty log (${e.bytes} bytes): ${e.marks} page marks on ${e.pages} pages in ${e.samples} reads${per.length ? ` (${per.join('; ')})` : ''}${e.error ? `; reading stopped: ${e.error}` : ''}`,
      };
    }
    case 'inflight':
      return {
        event: 'inflight',
        t: secs(e.ts),
        session: e.session,
        when: e.when,
        mmapSize: e.mmapSize,
        numQueues: e.numQueues,
        queueSize: e.queueSize,
        queues: e.queues.map(({ features, ...q }) => ({ ...q, features: `0x${features.toString(16)}` })),
        ...(e.error ? { error: e.error } : {}),
        msg: `inflight region at ${e.when} (${e.numQueues} queue(s) of ${e.queueSize}, ${e.mmapSize} bytes)${e.error ? `: ${e.error}` : ''}${
          e.queues.length ? `: ${inflightText(e.queues).join('; ')}` : ''
        }`,
      };
    case 'fault':
      return {
        event: 'fault',
        t: secs(e.ts),
        session: e.session,
        rule: e.rule,
        text: e.text,
        action: e.action,
        detail: e.detail,
        msg: `fault rule ${e.rule} (${e.text}): ${e.detail}`,
      };
    case 'stats':
      return { event: 'stats', t: secs(e.ts), session: e.session, vrings: e.vrings, msg: 'notification stats' };
    case 'channel-end':
      return { event: 'channel-end', t: secs(e.ts), session: e.session, channel: e.channel, reason: e.reason, msg: `${e.channel} channel closed` };
    case 'session-start':
      return {
        event: 'session-start',
        t: secs(e.ts),
        session: e.session,
        listen: e.listenPath,
        connect: e.connectPath,
        frontend: e.frontend,
        interpose: e.interpose,
        ...(e.observe ? { observe: true } : {}),
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
        vrings: e.vrings,
        relayPairs: e.relayPairs,
        msg: 'session end',
      };
  }
}

/** "vring 1: kicks 120 (40.0/s) calls 118 (39.3/s) errs 0 kick→next call µs p50 12 p90 30 p99 80 p99.9 95 (n=118)" */
export function vringLine(v: VringStats): string {
  const l = v.latencyUs;
  const lat = l ? ` kick→next call µs p50 ${l.p50} p90 ${l.p90} p99 ${l.p99} p99.9 ${l.p999} max ${l.max} (n=${l.count})` : '';
  const unpaired = v.unpaired ? ` (${v.unpaired} kicks unpaired: the next call came after an idle gap)` : '';
  return `vring ${v.vring}: kicks ${v.kicks} (${v.kickRate.toFixed(1)}/s) calls ${v.calls} (${v.callRate.toFixed(1)}/s) errs ${v.errs}${lat}${unpaired}`;
}

function peer(p: unknown): string {
  const id = p as { pid?: number; exe?: string } | undefined;
  if (!id) return '?';
  return `pid ${id.pid}${id.exe ? ` ${id.exe.split('/').pop()}` : ''}`;
}

/** One human line from a log record (as produced by eventRecord, or any other pino record). */
/**
 * A line for a terminal: control characters shown as \xHH. Peer strings (memfd names, exe paths,
 * command lines, reasons) reach the log and every human view: an escape sequence in one must not
 * drive the reader's terminal.
 */
export function printable(s: string): string {
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function humanLine(r: Record<string, unknown>): string {
  return printable(humanLineOf(r));
}

function humanLineOf(r: Record<string, unknown>): string {
  const t = typeof r.t === 'string' ? r.t.padStart(14) : ''.padStart(14);
  const s = r.session !== undefined ? `s${r.session}` : '--';
  switch (r.event) {
    case 'message': {
      const fds = (r.fds as string[]).length ? ` fds=[${(r.fds as string[]).join(' ')}]` : '';
      const req = String(r.request);
      const chan = r.channel === 'main' ? '' : `${r.channel} `;
      const mark = `${r.interposed ? ' [interposed]' : ''}${r.injected ? ' [injected by vhostscope]' : ''}${r.absorbed ? ' [reply to vhostscope, not forwarded]' : ''}${r.undelivered ? ` [${r.undelivered} by fault rule ${(r.faults as string[]).join(',')}: not forwarded]` : ''}${r.heldMs !== undefined ? ` [held ${(r.heldMs as number).toFixed(1)} ms by fault rule ${(r.faults as string[]).join(',')}]` : ''}`;
      const masked = r.masked
        ? ` [masked ${(r.masked as string[]).join('|')}${r.faults ? ` (fault rule ${(r.faults as string[]).join(',')})` : ': they bypass the interposed eventfds'}]`
        : '';
      const warn = r.findings ? `  !! ${(r.findings as { rule: string; message: string }[]).map((f) => `${f.rule}: ${f.message}`).join('; ')}` : '';
      return `${t} ${s} ${r.dir} ${chan}${req.padEnd(22)} ${String(r.flags).padEnd(13)} size=${String(r.size).padEnd(4)}${fds}${mark} ${r.summary}${masked}${warn}`.trimEnd();
    }
    case 'session-start': {
      const peers = r.peers as { listen?: unknown; connect?: unknown };
      const mode = `eventfds ${eventfdMode(r)} (${r.interpose ? 'notification timing on' : '--no-interpose'})`;
      return `${t} ${s} session start: listen ${r.listen} (${peer(peers?.listen)}) <-> connect ${r.connect} (${peer(peers?.connect)}), frontend=${r.frontend}, ${mode}`;
    }
    case 'session-end': {
      const v = ((r.vrings as VringStats[] | undefined) ?? []).map((x) => `\n${''.padStart(14)} ${s}   ${vringLine(x)}`).join('');
      return `${t} ${s} session end: ${r.reason}; messages F>B=${(r.messages as Record<string, number>)['F>B']} B>F=${(r.messages as Record<string, number>)['B>F']}, fds forwarded=${r.fdsForwarded}${v}`;
    }
    case 'stats':
      return ((r.vrings as VringStats[]) ?? []).map((x) => `${t} ${s} stats ${vringLine(x)}`).join('\n') || `${t} ${s} stats: no notifications yet`;
    case 'notification':
      return `${t} ${s} ${String(r.kind).padEnd(4)} vring ${r.vring} count ${r.count}${r.injected ? ' [injected by vhostscope]' : ''}`;
    case 'ring': {
      const chains = ((r.chains as string[]) ?? []).map((c) => `\n${''.padStart(14)} ${s}     ${c}`).join('');
      return `${t} ${s} ring ${r.msg}${r.truncated ? ' (truncated)' : ''}${chains}`;
    }
    case 'fault':
      return `${t} ${s} FAULT rule ${r.rule} (${r.text}): ${r.detail}`;
    case 'channel-end':
      return `${t} ${s} ${r.channel} channel closed: ${r.reason}`;
    case 'finding':
      return `${''.padStart(14)} !! ${r.msg}`;
    default: {
      const lvl = typeof r.level === 'number' ? (r.level >= 50 ? 'ERROR ' : r.level >= 40 ? 'WARN ' : '') : '';
      return `${t} ${s} ${lvl}${r.msg ?? ''}`;
    }
  }
}

/** A byte count for people: 512 B, 3.4 KiB, 12.0 MiB, 1.50 GiB. */
export function bytesText(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** A duration given in µs, to three significant digits in the unit that suits it: "25.9 µs", "1.46 ms", "7.3 s". */
export function durationUs(x: number): string {
  return x >= 1e6 ? `${+(x / 1e6).toPrecision(3)} s` : x >= 1e3 ? `${+(x / 1e3).toPrecision(3)} ms` : `${+x.toPrecision(3)} µs`;
}
