/** Two sessions compared, as text: message alignment (`vhostscope diff`) and latency shifts (`diff --latency`). */
import { keyOf, type DiffLine } from '../analysis/diff';
import type { OperationShift } from '../analysis/latency-diff';
import { requestLatency } from '../analysis/request-latency';
import type { MessageEvent } from '../events/events';
import { durationUs } from '../log/format';
import { readRecording, recordingEvents } from '../recording/reader';

export function sessionMessages(file: string, session?: number): MessageEvent[] {
  const events = recordingEvents(readRecording(file).records);
  const msgs = events.filter((e): e is MessageEvent => e.type === 'message');
  const id = session ?? msgs[0]?.session;
  return msgs.filter((m) => m.session === id);
}

export function diffText(lines: DiffLine[], all = false): string[] {
  const out: string[] = [];
  for (const l of lines) {
    if (l.op === 'same') {
      if (all) out.push(`  ${keyOf(l.a)}`);
    } else if (l.op === 'changed') out.push(`~ ${keyOf(l.a)}: ${l.fields.join('; ')}`);
    else if (l.op === 'only-a') out.push(`- ${keyOf(l.a)}`);
    else out.push(`+ ${keyOf(l.b)}`);
  }
  const count = (op: DiffLine['op']): number => lines.filter((l) => l.op === op).length;
  out.push(`${count('same')} same, ${count('changed')} changed, ${count('only-a')} only in A (-), ${count('only-b')} only in B (+)`);
  return out;
}

/** The completed requests of one session of a recording made with --rings. */
export function sessionRequests(file: string, session?: number): ReturnType<typeof requestLatency>[number] {
  const all = requestLatency(readRecording(file).records);
  const s = session !== undefined ? all.find((r) => r.session === session) : all[0];
  if (!s)
    throw new Error(`${file}: no ring snapshots${session !== undefined ? ` in session ${session}` : ''}: record with proxy --rings to compare request latency`);
  return s;
}

const fmt = durationUs;

const signed = (p?: number): string => (p === undefined ? '' : ` (${p > 0 ? '+' : ''}${p}%)`);

export function latencyDiffText(rows: OperationShift[]): string[] {
  const out = rows.map((r) => {
    const head = `vring ${r.vring} ${r.op}: n ${r.nA} → ${r.nB}`;
    if (r.verdict === 'only in A' || r.verdict === 'only in B') return `${head} (${r.verdict})`;
    const test =
      r.pValue !== undefined ? `; Mann-Whitney p=${r.pValue < 1e-4 ? r.pValue.toExponential(1) : r.pValue.toFixed(4)}, P(B slower)=${r.probBSlower}` : '';
    return `${head}, p50 ${fmt(r.p50A)} → ${fmt(r.p50B)}${signed(r.p50ShiftPct)}, p99 ${fmt(r.p99A)} → ${fmt(r.p99B)}${signed(r.p99ShiftPct)}${test}: ${r.verdict === 'too few' ? 'too few requests to test (< 8 on a side)' : r.verdict === 'same' ? 'no significant difference' : `B ${r.verdict}`}`;
  });
  out.push('latency: submitted → used by the device, from ring snapshots (vhostscope stats); significant at p < 0.01');
  return out;
}
