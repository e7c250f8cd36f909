/** A live migration read as one story (src/analysis/migration.ts), on the real recordings. */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findMigrations, migrationLines } from '../../src/analysis/migration';
import { decodeMessage, HEADER_SIZE, Request } from '../../src/protocol';
import type { ProxyEvent } from '../../src/events/events';
import { readRecording, recordingEvents } from '../../src/recording/reader';

const events = (name: string) => recordingEvents(readRecording(path.resolve(__dirname, '..', '..', 'recordings', name)).records);

describe('findMigrations', () => {
  it('pairs the source and the destination of a real migration (QEMU 7.2 -> QEMU 7.2, testpmd) and the ring indices handed over', () => {
    const [m, ...more] = findMigrations(events('qemu-net-migration.vhsrec'));
    expect(more).toEqual([]);
    expect(m).toMatchObject({
      source: 1,
      destination: 2,
      log: { bytes: 8192n, fd: 'memfd vhost-log' },
      announce: 'GUEST_ANNOUNCE acked: the guest announces itself',
    });
    expect(m.rings.map((r) => [r.vring, r.stoppedAt, r.resumedFrom])).toEqual([
      [0, 18, 18],
      [1, 20, 20],
    ]);
    // the destination starts its rings after the source stopped them, and before the source's session ends
    for (const r of m.rings) expect(r.resumedNs! > r.stoppedNs).toBe(true);
    const lines = migrationLines(m);
    expect(lines[0]).toBe('migration: session 1 (source) → session 2 (destination)');
    expect(lines).toContain('  vring 0: stopped at 18, resumed from 18 (match)');
    expect(lines.find((l) => l.startsWith('  switchover:'))).toMatch(/destination rings started [\d.]+ ms later$/);
  });

  it('tells the device state a back-end saved and the other loaded (QEMU 10 -> QEMU 10, the Rust virtiofsd)', () => {
    const [m] = findMigrations(events('qemu10-fs-migration.vhsrec'));
    expect(m).toMatchObject({
      source: 1,
      destination: 2,
      deviceState: {
        save: { direction: 'save', fd: 'pipe', result: 'ok', checked: 'ok' },
        load: { direction: 'load', fd: 'pipe', result: 'ok', checked: 'ok' },
      },
    });
    expect(m.deviceState!.save!.ns < m.deviceState!.load!.ns).toBe(true);
    const lines = migrationLines(m, false);
    expect(lines.find((l) => l.startsWith('  device state:'))).toMatch(
      /^ {2}device state: save on the source at [\d.]+ \(pipe, 35 bytes in [\d.]+ ms\): ok, checked ok; load on the destination at [\d.]+ \(pipe, 35 bytes in [\d.]+ ms\): ok, checked ok$/,
    );
    // counted in the proxy's pipe on both sides: what the source's back-end saved is what the destination's loaded
    expect(lines).toContain('  device state handed over: 35 bytes saved, 35 loaded (match)');
    expect(lines.some((l) => l.startsWith('  announce:'))).toBe(false);
    // a source whose back-end was never asked whether its save worked
    const unchecked = findMigrations(
      events('qemu10-fs-migration.vhsrec').filter((e) => !(e.type === 'message' && e.session === 1 && e.decoded.name === 'CHECK_DEVICE_STATE')),
    )[0];
    expect(migrationLines(unchecked, false).find((l) => l.startsWith('  device state:'))).toContain('never checked (check VU024)');
  });

  it('a block device migrates without device state (QEMU 7.2, qemu-storage-daemon)', () => {
    const [m] = findMigrations(events('qemu-blk-migration.vhsrec'));
    expect(m.deviceState).toBeUndefined();
    expect(m.rings.map((r) => r.resumedFrom === r.stoppedAt)).toEqual([true]);
  });

  it("adds what the proxy read of the source's dirty log, and a destination the proxy ended", () => {
    const evs = events('qemu-net-migration.vhsrec');
    const srcEnd = evs.findIndex((e) => e.type === 'session-end' && e.session === 1);
    const ts = evs[srcEnd].ts;
    evs.splice(srcEnd, 0, {
      type: 'dirty-log',
      ts,
      session: 1,
      startNs: ts - 1_000_000_000n,
      bytes: 8192,
      samples: 31,
      marks: 120,
      pages: 40,
      vrings: [{ vring: 0, usedRing: 12, buffers: 100 }],
      other: 8,
    });
    const dstEnd = evs.findIndex((e) => e.type === 'session-end' && e.session === 2);
    evs[dstEnd] = {
      ...(evs[dstEnd] as Extract<(typeof evs)[number], { type: 'session-end' }>),
      by: 'proxy',
      reason: 'fault rule dst-crash (disconnect backend after=SET_VRING_BASE device=dst): disconnected the backend',
    };
    const lines = migrationLines(findMigrations(evs)[0]);
    expect(lines).toContain(
      '  dirty log read: 120 page marks by the back-end on 40 pages in 31 reads (vring 0: used ring 12, buffers 100; other 8) (at least: the front-end clears the log at every sync)',
    );
    expect(lines.find((l) => l.startsWith('  destination ended by the proxy'))).toMatch(
      /^ {2}destination ended by the proxy [\d.]+ ms after its rings started: fault rule dst-crash /,
    );
    // a destination that ended by itself is not mentioned
    expect(migrationLines(findMigrations(events('qemu-net-migration.vhsrec'))[0]).some((l) => l.includes('ended by the proxy'))).toBe(false);
  });

  it('sees no migration in a backend restart (a second session, but no dirty logging) nor in a single session', () => {
    expect(findMigrations(events('qemu-net-backend-restart.vhsrec'))).toEqual([]);
    expect(findMigrations(events('qemu-net-testpmd.vhsrec'))).toEqual([]);
  });
});

describe('a source whose rings stop without draining (GET_VRING_BASE_SKIP_DRAIN, 2026)', () => {
  /** the real net migration, with the source's stops sent as request 45 (and feature 23 set, when `negotiated`) */
  const skipDrain = (negotiated: boolean): ProxyEvent[] =>
    events('qemu-net-migration.vhsrec').map((e) => {
      if (e.type !== 'message' || e.session !== 1 || e.channel !== 'main') return e;
      const raw = Buffer.from(e.raw);
      if (e.decoded.name === 'GET_VRING_BASE') raw.writeUInt32LE(Request.GET_VRING_BASE_SKIP_DRAIN, 0);
      else if (e.decoded.name === 'SET_PROTOCOL_FEATURES' && negotiated) raw.writeBigUInt64LE(raw.readBigUInt64LE(HEADER_SIZE) | (1n << 23n), HEADER_SIZE);
      else return e;
      return { ...e, raw, decoded: decodeMessage('main', raw, e.sender) };
    });

  it('is a stop once its feature is negotiated: the same story, the same indices', () => {
    const [m] = findMigrations(skipDrain(true));
    expect(m?.rings.map((r) => [r.vring, r.stoppedAt, r.resumedFrom])).toEqual([
      [0, 18, 18],
      [1, 20, 20],
    ]);
    expect(findMigrations(skipDrain(false)).flatMap((x) => x.rings)).toEqual([]);
  });
});
