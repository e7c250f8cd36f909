/** `vhostscope diff A B`: two sessions' handshakes side by side. */
import type { Command } from 'commander';
import { diffMessages, keyOf, type DiffLine } from '../analysis/diff';
import type { DeviceType } from '../protocol';
import type { MessageEvent } from '../proxy/events';
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

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .description('align two sessions\' message sequences: insertions, deletions, changed fields (features by name)')
    .argument('<a>', 'recording A')
    .argument('<b>', 'recording B')
    .option('--session-a <n>', 'session of A (default: the first)')
    .option('--session-b <n>', 'session of B (default: the first)')
    .option('--all', 'also print the messages that are the same')
    .option('--device <type>', 'device type for naming device feature bits', 'generic')
    .action((a: string, b: string, o: { sessionA?: string; sessionB?: string; all?: boolean; device: DeviceType }) => {
      const lines = diffMessages(sessionMessages(a, o.sessionA ? Number(o.sessionA) : undefined), sessionMessages(b, o.sessionB ? Number(o.sessionB) : undefined), o.device);
      process.stdout.write(diffText(lines, o.all).join('\n') + '\n');
      process.exitCode = lines.every((l) => l.op === 'same') ? 0 : 1;
    });
}
