/**
 * The field cases (the interop bugs that cost vhost-user users weeks, field-bugs.md §2) as
 * crafted sessions: each case's message sequence, as the proxy would record it, and the rule
 * `check` names it with; and the same peers doing it right, which nothing flags. Cases provoked
 * on real peers are in test/e2e (the README's table of field cases says which).
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkEvents } from '../../src/analysis/checker';
import { BackendRequest, Request } from '../../src/protocol';
import type { ProxyEvent } from '../../src/events/events';
import { Recorder } from '../../src/recording/recorder';
import { checkFile } from '../../src/views/check';
import { tmpDir } from '../helpers';
import { BACKEND_REQ, CONFIG, CONFIGURE_MEM_SLOTS, LOG_ALL, PF, REPLY_ACK, SHMEM, Session, u32s, u64, V1, logBase, memTable, region } from '../sessions';

const SECOND = 1_000_000_000n;
const MIGRATING = PF | V1 | LOG_ALL;

interface FieldCase {
  /** the case, as field-bugs.md names it */
  title: string;
  /** the rules `check` names it with */
  rules: string[];
  bug: () => ProxyEvent[];
  /** the same peers doing it right */
  clean: () => ProxyEvent[];
  /** true when the sequence carries ring snapshots (--rings), which a crafted recording cannot hold */
  rings?: boolean;
}

const CASES: Record<string, FieldCase> = {
  C1: {
    title: 'kick lost when it arrives before SET_VRING_ENABLE: the guest hangs at boot (rust-vmm/vhost#247)',
    rules: ['VU010', 'VU041'],
    bug: () =>
      new Session()
        .handshake()
        .vring(0, { enable: false })
        .kick(0)
        .ring(0, 'kick', 1, 0)
        .fe(Request.SET_VRING_ENABLE, u32s(0, 1))
        .wait(6n * SECOND)
        .end(),
    clean: () =>
      new Session()
        .handshake()
        .vring(0)
        .kick(0)
        .ring(0, 'kick', 1, 0)
        .call(0)
        .ring(0, 'call', 1, 1)
        .wait(6n * SECOND)
        .end(),
    rings: true,
  },
  C2: {
    title: 'lost interrupts: the back-end signals the call fd SET_VRING_CALL replaced (QEMU 1ba9a5220325, virtiofsd #101)',
    rules: ['VU039'],
    bug: () =>
      callSwapped()
        .be(Request.SET_VRING_CALL, u64(0n))
        .wait(SECOND / 10n)
        .staleCall(0)
        .end(),
    // the old fd signalled before the back-end acked the new one: the race QEMU's NEED_REPLY closes
    clean: () => callSwapped().staleCall(0).be(Request.SET_VRING_CALL, u64(0n)).end(),
  },
  C3: {
    title: 'hang after migration: the destination sets protocol features it never asked, the back-end never acks (rust-vmm/vhost 14db3cd)',
    rules: ['VU031', 'VU003'],
    bug: () =>
      new Session()
        .fe(Request.GET_FEATURES)
        .be(Request.GET_FEATURES, u64(PF | V1))
        .fe(Request.SET_PROTOCOL_FEATURES, u64(REPLY_ACK))
        .fe(Request.SET_OWNER, undefined, { flags: 9 })
        .wait(6n * SECOND)
        .end(),
    clean: () => new Session().handshake().fe(Request.SET_OWNER, undefined, { flags: 9 }).be(Request.SET_OWNER, u64(0n)).end(),
  },
  C5: {
    title: 'SET_FEATURES halts the device during migration: a LOG_ALL toggle, and the rings stop (rust-vmm/vhost 7f326dd)',
    rules: ['VU041'],
    bug: () =>
      logAllThenKick()
        .wait(6n * SECOND)
        .end(),
    clean: () =>
      logAllThenKick()
        .ring(0, 'call', 4, 4)
        .wait(6n * SECOND)
        .end(),
    rings: true,
  },
  C6: {
    title: 'device dead after a guest reboot: the back-end resets its used index (rust-vmm/vhost 958cdec)',
    rules: ['VU042'],
    bug: () => new Session().handshake().vring(0).ring(0, 'call', 9, 9).ring(0, 'call', 10, 1).end(),
    clean: () => new Session().handshake().vring(0).ring(0, 'call', 9, 9).fe(Request.SET_VRING_BASE, u32s(0, 0)).ring(0, 'call', 1, 1).end(),
    rings: true,
  },
  C9: {
    title: 'resumed from the wrong index: the destination does not start where the source stopped',
    rules: ['VU023'],
    bug: () => migration(5),
    clean: () => migration(7),
  },
  C11: {
    title: 'GET_VRING_BASE drain stalls the migration (the guest stays paused)',
    rules: ['VU025'],
    bug: () => stop(SECOND / 2n),
    clean: () => stop(SECOND / 100n),
  },
  C12: {
    title: 'SET_MEM_TABLE race: the guest uses new memory before the back-end maps it (QEMU 28ed5ef16384)',
    rules: ['VU048'],
    bug: () => hotplug(false),
    clean: () => hotplug(true),
    rings: true,
  },
  C15: {
    title: 'both sides blocked: an IOTLB-style backend request with NEED_REPLY while the front-end waits for its own reply',
    rules: ['VU036'],
    bug: () => blocked(false),
    clean: () => blocked(true),
  },
  C16: {
    title: 'protocol-feature bits renumbered: SHMEM at bit 21 (rust-vmm vhost 0.16) where QEMU 11 has GPA_ADDRESSES',
    rules: ['VU027'],
    bug: () => shmem(1n << 21n),
    clean: () => shmem(SHMEM),
  },
};

/**
 * Memory hot-plugged into a running guest with SET_MEM_TABLE (no NEED_REPLY, QEMU before
 * REPLY_ACK), and a request in it kicked at once; `barrier`: the front-end first waits for the
 * reply to a GET_FEATURES, which the back-end sends only once it has taken the table in.
 */
function hotplug(barrier: boolean): ProxyEvent[] {
  const grown = memTable(region(0n, 0x100000n, 0x7f0000000000n), region(0x100000n, 0x100000n, 0x7f1000000000n));
  const x = new Session().handshake().vring(0).fe(Request.SET_MEM_TABLE, grown, { fds: 2 });
  if (barrier) x.fe(Request.GET_FEATURES).be(Request.GET_FEATURES, u64(PF | V1));
  return x.kick(0).ring(0, 'kick', 1, 0, true, 0x180000n).call(0).ring(0, 'call', 1, 1).end();
}

/** A running ring whose front-end swaps the call fd, asking for the back-end's ack. */
const callSwapped = (): Session =>
  new Session().handshake().vring(0).fe(Request.SET_VRING_CALL, u64(0n), { fds: 1 }).fe(Request.SET_VRING_CALL, u64(0n), { fds: 1, flags: 9 });

/** A migration starts (a log, then LOG_ALL in a SET_FEATURES of its own), and the driver kicks vring 0 with work. */
const logAllThenKick = (): Session =>
  new Session().handshake().vring(0).fe(Request.SET_LOG_BASE, logBase(4096n), { fds: 1 }).fe(Request.SET_FEATURES, u64(MIGRATING)).ring(0, 'kick', 4, 3);

/** A source stopping vring 0 at 7 while migrating, and a destination resuming it at `resumeAt`. */
function migration(resumeAt: number): ProxyEvent[] {
  const source = new Session(1)
    .handshake(MIGRATING)
    .vring(0)
    .fe(Request.SET_LOG_BASE, logBase(4096n), { fds: 1 })
    .fe(Request.GET_VRING_BASE, u32s(0, 0))
    .be(Request.GET_VRING_BASE, u32s(0, 7))
    .end();
  const destination = new Session(2, SECOND).handshake().vring(0, { base: resumeAt }).end();
  return [...source, ...destination];
}

/** A migrating front-end stopping vring 0; the back-end answers after `ns`. */
function stop(ns: bigint): ProxyEvent[] {
  return new Session()
    .handshake(MIGRATING)
    .vring(0)
    .fe(Request.SET_LOG_BASE, logBase(4096n), { fds: 1 })
    .fe(Request.GET_VRING_BASE, u32s(0, 0))
    .wait(ns)
    .be(Request.GET_VRING_BASE, u32s(0, 0))
    .end();
}

/** The front-end waits for SET_MEM_TABLE's ack; the back-end asks with NEED_REPLY meanwhile (`served`: the front-end answers it). */
function blocked(served: boolean): ProxyEvent[] {
  const s = new Session()
    .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | CONFIG)
    .fe(Request.SET_VRING_NUM, u32s(0, 256), { flags: 9 })
    .be(BackendRequest.CONFIG_CHANGE_MSG, undefined, { channel: 'backend', flags: 9 });
  if (served) return s.fe(BackendRequest.CONFIG_CHANGE_MSG, u64(0n), { channel: 'backend', flags: 5 }).be(Request.SET_VRING_NUM, u64(0n)).end();
  return s
    .wait(6n * SECOND)
    .be(Request.SET_VRING_NUM, u64(0n))
    .end();
}

/** A back-end mapping shared memory with `bit` negotiated as SHMEM. */
function shmem(bit: bigint): ProxyEvent[] {
  const mapping = Buffer.concat([Buffer.alloc(8), u64(0n), u64(0n), u64(0x1000n), u64(0n)]);
  return new Session()
    .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | bit)
    .be(BackendRequest.SHMEM_MAP, mapping, { channel: 'backend', flags: 1, fds: 1 })
    .end();
}

const ids = (events: ProxyEvent[]): string[] => [...new Set(checkEvents(events).map((f) => f.rule.id))];

describe('the field cases', () => {
  it.each(Object.entries(CASES))('%s: check names it, and not the same peers doing it right', (_, c) => {
    expect(ids(c.bug())).toEqual(c.rules);
    expect(ids(c.clean())).toEqual([]);
  });

  it('the cases without ring snapshots say the same from a recording on disk, through vhostscope check', async () => {
    const dir = tmpDir('field');
    for (const [name, c] of Object.entries(CASES)) {
      if (c.rings) continue;
      for (const [kind, events] of [
        ['bug', c.bug()],
        ['clean', c.clean()],
      ] as const) {
        const file = path.join(dir, `${name}-${kind}.vhsrec`);
        const rec = new Recorder(file);
        for (const e of events) rec.onEvent(e);
        await rec.close();
        const found = [...new Set(checkFile(file).findings.map((f) => f.rule.id))];
        expect(found, `${name} ${kind}`).toEqual(kind === 'bug' ? c.rules : []);
      }
    }
  });
});
