/** `vhostscope diff A B`: two sessions' handshakes side by side. */
import type { Command } from 'commander';
import { diffMessages } from '../analysis/diff';
import { latencyDiff } from '../analysis/latency-diff';
import type { DeviceType } from '../protocol';
import { deviceOption, jsonOption, numberOpt } from './options';
import { sessionMessages, diffText, sessionRequests, latencyDiffText } from '../views/diff';

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .description("align two sessions' message sequences: insertions, deletions, changed fields (features by name)")
    .argument('<a>', 'recording A')
    .argument('<b>', 'recording B')
    .addOption(numberOpt('--session-a <n>', 'session of A (default: the first)', { min: 1, integer: true }))
    .addOption(numberOpt('--session-b <n>', 'session of B (default: the first)', { min: 1, integer: true }))
    .option('--all', 'also print the messages that are the same')
    .addOption(deviceOption('generic'))
    .option('--latency', 'compare per-request latency per vring and operation instead (recordings made with --rings): p50/p99 shift and a Mann-Whitney U test')
    .addOption(jsonOption('with --latency: the comparison as JSON'))
    .action((a: string, b: string, o: { sessionA?: number; sessionB?: number; all?: boolean; device: DeviceType; latency?: boolean; json?: boolean }) => {
      if (o.latency) {
        const rows = latencyDiff(sessionRequests(a, o.sessionA).requests, sessionRequests(b, o.sessionB).requests);
        process.stdout.write(o.json ? JSON.stringify(rows, null, 2) + '\n' : latencyDiffText(rows).join('\n') + '\n');
        // like diff(1): 1 when something differs (here: significantly slower or faster)
        process.exitCode = rows.some((r) => r.verdict === 'slower' || r.verdict === 'faster') ? 1 : 0;
        return;
      }
      const lines = diffMessages(sessionMessages(a, o.sessionA), sessionMessages(b, o.sessionB), o.device);
      process.stdout.write(diffText(lines, o.all).join('\n') + '\n');
      process.exitCode = lines.every((l) => l.op === 'same') ? 0 : 1;
    });
}
