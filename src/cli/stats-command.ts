/** `vhostscope stats FILE`: per-vring notification figures of a recording, with a terminal histogram. */
import type { Command } from 'commander';
import { vringLine } from '../log/format';
import { NotificationStats, type VringStats } from '../proxy/notification-stats';
import { readRecording, recordingEvents } from '../recording/reader';

export function histogramLines(v: VringStats, width = 40): string[] {
  const h = v.histogram ?? [];
  const max = Math.max(1, ...h.map((b) => b.count));
  const label = (us: number): string => (us >= 1e6 ? `${+(us / 1e6).toPrecision(3)}s` : us >= 1e3 ? `${+(us / 1e3).toPrecision(3)}ms` : `${us}µs`);
  return h.map((b) => `    ${`${label(b.fromUs)}-${label(b.toUs)}`.padStart(17)} |${'#'.repeat(Math.max(1, Math.round((b.count / max) * width)))} ${b.count}`);
}

export function statsText(file: string): string[] {
  const scan = readRecording(file);
  const events = recordingEvents(scan.records, { notifications: true });
  const lines: string[] = [];
  const perSession = new Map<number, NotificationStats>();
  const ends = new Map<number, bigint>();
  for (const e of events) {
    if (e.type === 'session-start') perSession.set(e.session, new NotificationStats(e.ts));
    else if (e.type === 'notification') perSession.get(e.session)?.record(e.vring, e.kind, e.ts);
    else if (e.type === 'session-end') ends.set(e.session, e.ts);
  }
  const last = events.at(-1)?.ts ?? 0n;
  for (const [id, st] of perSession) {
    const snap = st.snapshot(ends.get(id) ?? last);
    lines.push(`session ${id}: ${snap.length ? '' : 'no notifications (eventfds passed through, or the peers poll)'}`);
    for (const v of snap) {
      lines.push(`  ${vringLine(v)}`);
      if (v.histogram?.length) {
        lines.push('    kick→call latency:');
        lines.push(...histogramLines(v));
      }
    }
  }
  return lines;
}

export function registerStats(program: Command): void {
  program
    .command('stats')
    .description('per vring: kick/call/err counts and rates, kick→call latency percentiles and a histogram')
    .argument('<file>', 'a recording made with proxy --record')
    .action((file: string) => {
      process.stdout.write(statsText(file).join('\n') + '\n');
    });
}
