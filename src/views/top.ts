/**
 * `vhostscope top`: the running daemon's sessions in a refreshing terminal view, like top(1) for
 * vhost-user. Rates come from the difference between two samples of the control socket's
 * `status` and `requests`; latency per operation from the ring snapshots (--rings). Keys: s
 * cycles the sort, ↑/↓ (or k/j) pick a session, Enter shows or hides its vrings and operations,
 * q quits. Not a terminal (or --once): one sample, printed once.
 */
import { transitPercentiles } from '../analysis/relay-transit';
import { controlRequest } from '../control/client';
import type { LiveSession } from '../control/live-requests';
import { printable } from '../log/format';
import { ringStateText } from '../protocol';
import type { DaemonStatus } from '../events/status';

export interface TopSample {
  atMs: number;
  status: DaemonStatus;
  requests: LiveSession[];
}

export interface TopRow {
  session: number;
  device: string;
  frontend: string;
  backend: string;
  messages: number;
  kickRate: number;
  callRate: number;
  /** requests completed per second (--rings), undefined without ring snapshots */
  reqRate?: number;
  outstanding?: number;
  oldestUs?: number;
  /** the operation with the most requests: its p50 and p99 */
  p50Us?: number;
  p99Us?: number;
}

export const SORTS = ['rate', 'p99', 'outstanding', 'session'] as const;

export type SortKey = (typeof SORTS)[number];

export interface TopState {
  sort: SortKey;
  /** the picked session (by id), if any */
  picked?: number;
  detail: boolean;
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

const exe = (p?: { pid: number; exe?: string }): string => (p ? `${(p.exe ?? '?').split('/').pop()}(${p.pid})` : '?');

/** Rows of the sessions in `cur`, with rates since `prev`. */
export function topRows(cur: TopSample, prev?: TopSample): TopRow[] {
  const dt = prev ? Math.max((cur.atMs - prev.atMs) / 1000, 1e-3) : undefined;
  return cur.status.sessions.map((s): TopRow => {
    const before = prev?.status.sessions.find((p) => p.session === s.session);
    const req = cur.requests.find((r) => r.session === s.session);
    const reqBefore = prev?.requests.find((r) => r.session === s.session);
    const kicks = sum(s.vrings.map((v) => v.kicks));
    const calls = sum(s.vrings.map((v) => v.calls));
    const rate = (now: number, then: number | undefined): number => (dt !== undefined && then !== undefined ? Math.max(0, now - then) / dt : 0);
    const front = s.frontend === 'connect' ? req?.peers.connect : req?.peers.listen;
    const back = s.frontend === 'connect' ? req?.peers.listen : req?.peers.connect;
    const row: TopRow = {
      session: s.session,
      device: req?.device ?? 'generic',
      frontend: exe(front),
      backend: exe(back),
      messages: s.messages['F>B'] + s.messages['B>F'],
      kickRate: rate(kicks, before ? sum(before.vrings.map((v) => v.kicks)) : undefined),
      callRate: rate(calls, before ? sum(before.vrings.map((v) => v.calls)) : undefined),
    };
    if (req?.rings) {
      const done = sum(req.operations.map((o) => o.count));
      row.reqRate = rate(done, reqBefore ? sum(reqBefore.operations.map((o) => o.count)) : undefined);
      row.outstanding = req.outstanding;
      if (req.oldestUs !== undefined) row.oldestUs = req.oldestUs;
      const busiest = [...req.operations].sort((a, b) => b.count - a.count)[0];
      if (busiest) Object.assign(row, { p50Us: busiest.p50Us, p99Us: busiest.p99Us });
    }
    return row;
  });
}

export function sortRows(rows: TopRow[], key: SortKey): TopRow[] {
  const by: Record<SortKey, (r: TopRow) => number> = {
    rate: (r) => -(r.reqRate ?? r.kickRate + r.callRate),
    p99: (r) => -(r.p99Us ?? -1),
    outstanding: (r) => -(r.outstanding ?? -1),
    session: (r) => r.session,
  };
  return [...rows].sort((a, b) => by[key](a) - by[key](b) || a.session - b.session);
}

function relayLine(cur: TopSample, prev?: TopSample): string {
  const t = intervalTransit(cur, prev);
  if (!cur.status.relay) return 'relay: none (eventfds passed through)';
  return t
    ? `relay's own time (wake-up → forwarding write issued): p50 < ${fmtUs(t.p50Ns / 1000)} p99 < ${fmtUs(t.p99Ns / 1000)} over ${t.count}`
    : 'relay: idle';
}

export const fmtUs = (x?: number): string =>
  x === undefined ? '-' : x >= 1e6 ? `${(x / 1e6).toFixed(2)}s` : x >= 1e3 ? `${(x / 1e3).toFixed(2)}ms` : `${x.toFixed(1)}µs`;

const fmtRate = (x?: number): string => (x === undefined ? '-' : x >= 1e6 ? `${(x / 1e6).toFixed(1)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(1));

const cut = (s: string, n: number): string => (s.length > n ? s.slice(0, n - 1) + '…' : s);

/**
 * The relay's own added time over the last interval, for the first notification of each burst
 * (native power-of-two buckets, so each figure is "below 2^(i+1) ns"). Undefined without
 * interposition or without notifications since.
 */
export function intervalTransit(cur: TopSample, prev?: TopSample): { count: number; p50Ns: number; p99Ns: number } | undefined {
  const now = cur.status.relay;
  if (!now) return undefined;
  const before = prev?.status.relay;
  return transitPercentiles(
    now.transitBuckets.map((n, i) => n - (before?.transitBuckets[i] ?? 0)),
    now.transitSumNs - (before?.transitSumNs ?? 0),
  );
}

/** The screen, as lines (no escape codes): header, one line per session, the picked session's detail. */
export function renderTop(cur: TopSample, prev: TopSample | undefined, state: TopState, width = 120): string[] {
  const rows = sortRows(topRows(cur, prev), state.sort);
  const s = cur.status;
  const lines = [
    `vhostscope top: ${s.listen} → ${s.connect}, pid ${s.pid}, up ${s.uptimeS} s, ${s.sessions.length} session(s); sort: ${state.sort}`,
    `${relayLine(cur, prev)}   keys: s sort (${SORTS.join('/')})  ↑↓ pick  Enter details  q quit`,
    '',
    `  ${'SESS'.padStart(4)} ${'DEVICE'.padEnd(7)} ${'FRONTEND'.padEnd(24)} ${'BACKEND'.padEnd(24)} ${'MSGS'.padStart(7)} ${'KICK/s'.padStart(7)} ${'CALL/s'.padStart(7)} ${'REQ/s'.padStart(7)} ${'OUTST'.padStart(5)} ${'OLDEST'.padStart(8)} ${'p50'.padStart(8)} ${'p99'.padStart(8)}`,
  ];
  for (const r of rows) {
    const mark = r.session === state.picked ? '>' : ' ';
    lines.push(
      `${mark} ${String(r.session).padStart(4)} ${cut(r.device, 7).padEnd(7)} ${cut(r.frontend, 24).padEnd(24)} ${cut(r.backend, 24).padEnd(24)} ${String(r.messages).padStart(7)} ${fmtRate(r.kickRate).padStart(7)} ${fmtRate(r.callRate).padStart(7)} ${fmtRate(r.reqRate).padStart(7)} ${(r.outstanding ?? '-').toString().padStart(5)} ${fmtUs(r.oldestUs).padStart(8)} ${fmtUs(r.p50Us).padStart(8)} ${fmtUs(r.p99Us).padStart(8)}`,
    );
  }
  if (!rows.length) lines.push('  (no sessions)');
  const picked = state.detail ? cur.status.sessions.find((x) => x.session === state.picked) : undefined;
  if (picked) {
    const req = cur.requests.find((r) => r.session === picked.session);
    lines.push(
      '',
      `session ${picked.session}: messages F>B ${picked.messages['F>B']} B>F ${picked.messages['B>F']}, fds forwarded ${picked.fdsForwarded}, back-pressure pauses ${picked.backpressure.pauses}`,
    );
    lines.push(`  ${'VRING'.padStart(5)} ${'STATE'.padEnd(17)} ${'KICKS'.padStart(9)} ${'CALLS'.padStart(9)} ${'ERRS'.padStart(5)}  kick→next call p50/p99`);
    const states = new Map((picked.ringStates ?? []).map((r) => [r.vring, ringStateText(r)]));
    const stats = new Map(picked.vrings.map((v) => [v.vring, v]));
    for (const vring of [...new Set([...states.keys(), ...stats.keys()])].sort((a, b) => a - b)) {
      const v = stats.get(vring);
      lines.push(
        `  ${String(vring).padStart(5)} ${(states.get(vring) ?? '-').padEnd(17)} ${String(v?.kicks ?? 0).padStart(9)} ${String(v?.calls ?? 0).padStart(9)} ${String(v?.errs ?? 0).padStart(5)}  ${v?.latencyUs ? `${fmtUs(v.latencyUs.p50)} / ${fmtUs(v.latencyUs.p99)}` : '-'}`,
      );
    }
    if (req?.rings) {
      lines.push(
        `  ${'VRING'.padStart(5)} ${'OPERATION'.padEnd(16)} ${'N'.padStart(9)} ${'p50'.padStart(9)} ${'p99'.padStart(9)} ${'MAX'.padStart(9)}   (requests, from the rings)`,
      );
      for (const o of req.operations)
        lines.push(
          `  ${String(o.vring).padStart(5)} ${cut(o.op, 16).padEnd(16)} ${String(o.count).padStart(9)} ${fmtUs(o.p50Us).padStart(9)} ${fmtUs(o.p99Us).padStart(9)} ${fmtUs(o.maxUs).padStart(9)}`,
        );
      lines.push(`  outstanding: ${req.outstanding}${req.oldestUs !== undefined ? `, oldest ${fmtUs(req.oldestUs)}` : ''}`);
    } else lines.push('  requests: not measured (run the proxy with --rings)');
  }
  return lines.map((l) => cut(l, width));
}

export async function sample(control: string): Promise<TopSample> {
  const [status, requests] = await Promise.all([
    controlRequest(control, { cmd: 'status' }) as Promise<DaemonStatus>,
    controlRequest(control, { cmd: 'requests' }) as Promise<LiveSession[]>,
  ]);
  return { atMs: Date.now(), status, requests };
}

/** What a key does to the view; 'quit' ends it. */
export function onKey(key: string, state: TopState, rows: TopRow[]): TopState | 'quit' {
  if (key === 'q' || key === '\u0003') return 'quit';
  if (key === 's') return { ...state, sort: SORTS[(SORTS.indexOf(state.sort) + 1) % SORTS.length] };
  if (key === '\r' || key === '\n') return { ...state, detail: !state.detail, picked: state.picked ?? rows[0]?.session };
  const up = key === '\u001b[A' || key === 'k';
  const down = key === '\u001b[B' || key === 'j';
  if (up || down) {
    if (!rows.length) return state;
    const i = rows.findIndex((r) => r.session === state.picked);
    const next = i < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, i + (down ? 1 : -1)));
    return { ...state, picked: rows[next].session };
  }
  return state;
}

export async function runTop(control: string, intervalMs: number, once: boolean): Promise<void> {
  let prev: TopSample | undefined;
  let cur = await sample(control);
  let state: TopState = { sort: 'rate', detail: false };
  const out = process.stdout;
  if (once || !out.isTTY || !process.stdin.isTTY) {
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, 1000)));
    prev = cur;
    cur = await sample(control);
    out.write(renderTop(cur, prev, state, 200).map(printable).join('\n') + '\n');
    return;
  }
  const draw = (): void => {
    const lines = renderTop(cur, prev, state, out.columns ?? 120).slice(0, Math.max(5, (out.rows ?? 40) - 1));
    out.write('\u001b[H\u001b[2J' + lines.map(printable).join('\n') + '\n');
  };
  process.stdin.setRawMode(true);
  process.stdin.resume();
  out.write('\u001b[?1049h\u001b[?25l'); // the alternate screen, no cursor: the terminal is as it was after q
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve, reject) => {
    const finish = (err?: Error): void => {
      if (timer) clearTimeout(timer);
      process.stdin.off('data', keys);
      process.stdin.setRawMode(false);
      process.stdin.pause();
      out.write('\u001b[?25h\u001b[?1049l');
      if (err) reject(err);
      else resolve();
    };
    const keys = (d: Buffer): void => {
      const next = onKey(d.toString('utf8'), state, sortRows(topRows(cur, prev), state.sort));
      if (next === 'quit') return finish();
      state = next;
      draw();
    };
    process.stdin.on('data', keys);
    const tick = (): void => {
      sample(control)
        .then((s) => {
          prev = cur;
          cur = s;
          draw();
          timer = setTimeout(tick, intervalMs);
        })
        .catch((err: Error) => finish(new Error(`the daemon stopped answering: ${err.message}`)));
    };
    draw();
    timer = setTimeout(tick, intervalMs);
  });
}
