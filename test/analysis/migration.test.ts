/** A live migration read as one story (src/analysis/migration.ts), on the real recordings. */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findMigrations, migrationLines } from '../../src/analysis/migration';
import { readRecording, recordingEvents } from '../../src/recording/reader';

const events = (name: string) => recordingEvents(readRecording(path.resolve(__dirname, '..', '..', 'recordings', name)).records);

describe('findMigrations', () => {
  it('pairs the source and the destination of a real migration (QEMU 7.2 -> QEMU 7.2, testpmd) and the ring indices handed over', () => {
    const [m, ...more] = findMigrations(events('qemu-net-migration.vhsrec'));
    expect(more).toEqual([]);
    expect(m).toMatchObject({ source: 1, destination: 2, log: { bytes: 8192n, fd: 'memfd vhost-log' }, announce: 'GUEST_ANNOUNCE acked: the guest announces itself' });
    expect(m.rings.map((r) => [r.vring, r.stoppedAt, r.resumedFrom])).toEqual([[0, 18, 18], [1, 20, 20]]);
    // the destination starts its rings after the source stopped them, and before the source's session ends
    for (const r of m.rings) expect(r.resumedNs! > r.stoppedNs).toBe(true);
    const lines = migrationLines(m);
    expect(lines[0]).toBe('migration: session 1 (source) → session 2 (destination)');
    expect(lines).toContain('  vring 0: stopped at 18, resumed from 18 (match)');
    expect(lines.find((l) => l.startsWith('  switchover:'))).toMatch(/destination rings started [\d.]+ ms later$/);
  });

  it('sees no migration in a backend restart (a second session, but no dirty logging) nor in a single session', () => {
    expect(findMigrations(events('qemu-net-backend-restart.vhsrec'))).toEqual([]);
    expect(findMigrations(events('qemu-net-testpmd.vhsrec'))).toEqual([]);
  });
});
