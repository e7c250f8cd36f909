/** A running daemon's status and fault rules as text (`vhostscope status`, `rules list`). */
import type { ActiveRule } from '../faults';
import { durationUs, vringLine } from '../log/format';
import { transitPercentiles } from '../analysis/relay-transit';
import type { DaemonStatus } from '../events/status';
import { eventfdMode } from '../events/events';

export function statusText(s: DaemonStatus): string[] {
  const lines = [
    `daemon pid ${s.pid}: listening on ${s.listen}, connecting to ${s.connect}; up ${s.uptimeS} s; eventfds ${eventfdMode(s)}; ${s.sessions.length} session(s)${s.pendingConnects ? `, ${s.pendingConnects} waiting for the connect side` : ''}`,
  ];
  if (s.relay) {
    const { transitBuckets, transitSumNs, ...counters } = s.relay;
    const t = transitPercentiles(transitBuckets, transitSumNs);
    lines.push(
      `relay thread: ${Object.entries(counters)
        .map(([k, v]) => `${k} ${v}`)
        .join(
          ', ',
        )}${t ? `; own time per notification (wake-up → forwarding write issued) p50 ≤ ${durationUs(t.p50Ns / 1000)} p99 ≤ ${durationUs(t.p99Ns / 1000)} over ${t.count}` : ''}`,
    );
  }
  for (const x of s.sessions) {
    lines.push(
      `session ${x.session}: frontend on the ${x.frontend} side; channels ${x.channels.join(', ')}; messages F>B ${x.messages['F>B']} B>F ${x.messages['B>F']}; fds forwarded ${x.fdsForwarded}`,
    );
    if (x.features.ackedNames) lines.push(`  virtio features acked: ${x.features.ackedNames.join('|')}`);
    if (x.features.protocolInUse) lines.push(`  protocol features in use: ${x.features.protocolInUse.join('|') || '(none)'}`);
    for (const v of x.vrings) lines.push(`  ${vringLine(v)}`);
    if (x.relayPairs.length) lines.push(`  relay pairs: ${x.relayPairs.map((p) => `${p.kind}:${p.vring} ${p.read}/${p.written}`).join(', ')}`);
    if (x.faults?.held.length) lines.push(`  held by fault rules: ${x.faults.held.join('; ')}`);
  }
  lines.push(...rulesText(s.rules));
  return lines;
}

export function rulesText(rules: ActiveRule[]): string[] {
  if (!rules.length) return ['fault rules: none'];
  return [
    'fault rules:',
    ...rules.map((r) => `  ${r.id.padEnd(4)} ${r.text}   (applied ${r.applied}${r.rule.limit !== undefined ? ` of ${r.rule.limit}` : ''})`),
  ];
}
