/**
 * `vhostscope top --control SOCK`: the running daemon's sessions in a refreshing terminal view,
 * like top(1) for vhost-user. Rates come from the difference between two samples of the control
 * socket's `status` and `requests`; latency per operation from the ring snapshots (--rings).
 * Keys: s cycles the sort, ↑/↓ (or k/j) pick a session, Enter shows or hides its vrings and
 * operations, q quits. Not a terminal (or --once): one sample, printed once.
 */
import type { Command } from 'commander';
import { controlOption, numberOpt } from './options';
import { resolveControlPath } from '../control/client';
import { runTop } from '../views/top';

export function registerTop(program: Command): void {
  program
    .command('top')
    .description(
      'a live view of a running daemon: sessions, rates, outstanding requests, p50/p99 per operation (--rings); keys: s sort, ↑↓ pick, Enter details, q quit',
    )
    .addOption(controlOption())
    .addOption(numberOpt('--interval <s>', 'seconds between refreshes', { min: 0.1, max: 3600 }, 1))
    .option('--once', 'print one sample (rates over one interval) and exit')
    .action(async (o: { control?: string; interval: number; once?: boolean }) => {
      await runTop(resolveControlPath(o.control), o.interval * 1000, o.once ?? false);
    });
}
