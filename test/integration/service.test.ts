/**
 * The proxy service in process (src/service): two devices in one service share a session-id
 * counter, a recording and the fault rules; each has its control socket and names itself in the
 * log; reloading replaces only the rules from files; stop closes every fd and the recording.
 */
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { native, type Channel } from '../../src/native';
import { createLogger } from '../../src/log/logger';
import { controlRequest } from '../../src/control/client';
import { parseFaultSpec } from '../../src/faults';
import { readRecording } from '../../src/recording/reader';
import { ProxyService } from '../../src/service/service';
import type { DeviceConfig } from '../../src/service/options';
import type { DaemonStatus } from '../../src/events/status';
import { frontendHandshake, syntheticBackend, type BackendConn } from '../../lab/synthetic-peers';
import { openFds, tmpDir, until } from '../helpers';

describe('proxy service', () => {
  it('runs two devices with one recording, one id counter and one rule set, and stops clean', async () => {
    const before = openFds();
    const dir = tmpDir('service');
    const lines: Record<string, unknown>[] = [];
    const out = new PassThrough();
    out.on('data', (b: Buffer) =>
      lines.push(
        ...b
          .toString()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      ),
    );
    const { logger } = createLogger('json', { stream: out });
    const conns: BackendConn[] = [];
    const backend = syntheticBackend(native.listenUnix(path.join(dir, 'be.sock'), 8, 0o600), (c) => conns.push(c));
    const device = (name: string): DeviceConfig => ({
      name,
      listen: path.join(dir, `${name}.sock`),
      connect: path.join(dir, 'be.sock'),
      daemon: {},
      device: 'net',
      control: path.join(dir, `${name}.ctl`),
    });
    const service = new ProxyService(
      {
        devices: [device('a'), device('b')],
        record: path.join(dir, 'rec.vhsrec'),
        check: true,
        fileRules: parseFaultSpec('delay GET_FEATURES ms=1'),
        rules: parseFaultSpec('delay GET_PROTOCOL_FEATURES ms=1'),
      },
      logger,
    );
    const fronts: { ch: Channel; fds: number[] }[] = [];
    try {
      await service.start();
      for (const name of ['a', 'b']) {
        const hs = frontendHandshake(1);
        const ch = new native.Channel(
          native.connectUnix(path.join(dir, `${name}.sock`)),
          65536,
          () => undefined,
          () => undefined,
        );
        ch.start();
        for (const m of hs.messages) ch.send(m.msg, m.fds);
        fronts.push({ ch, fds: [...hs.kicks, ...hs.calls] });
        await until(() => conns.length === fronts.length && conns.at(-1)!.got === hs.messages.length);
      }
      // each device's control socket answers for its own sessions; the ids come from one counter
      const a = (await controlRequest(path.join(dir, 'a.ctl'), { cmd: 'status' })) as DaemonStatus;
      const b = (await controlRequest(path.join(dir, 'b.ctl'), { cmd: 'status' })) as DaemonStatus;
      expect(a.sessions.map((s) => s.session)).toEqual([1]);
      expect(b.sessions.map((s) => s.session)).toEqual([2]);
      expect(a.rules.map((r) => r.text)).toEqual(['delay GET_FEATURES ms=1', 'delay GET_PROTOCOL_FEATURES ms=1']);
      // several devices: every session's log lines name their device
      expect(lines.filter((l) => l.event === 'session-start').map((l) => l.dev)).toEqual(['a', 'b']);

      // a reload replaces the rules from files; a rule given on its own stays
      const r = service.reloadRules(parseFaultSpec('drop SET_VRING_KICK'));
      expect(r.removed).toHaveLength(1);
      expect(
        service
          .faults!.list()
          .map((x) => x.text)
          .sort(),
      ).toEqual(['delay GET_PROTOCOL_FEATURES ms=1', 'drop SET_VRING_KICK']);
    } finally {
      for (const f of fronts) f.ch.close();
      await service.stop('test over');
      backend.close();
      for (const f of fronts) for (const fd of f.fds) native.close(fd);
    }
    // one recording holds both devices' sessions, whole
    const rec = readRecording(path.join(dir, 'rec.vhsrec'));
    expect(rec.torn).toBeUndefined();
    expect(new Set(rec.records.filter((x) => x.type === 'session-start').map((x) => (x as { session: number }).session))).toEqual(new Set([1, 2]));
    expect(rec.records.filter((x) => x.type === 'message').length).toBeGreaterThan(10);
    await until(() => openFds() === before, 5000, 'every fd closed');
  });
});
