/** Every check rule, triggered by a crafted session; a clean session and the real recordings. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Checker, checkEvents } from '../../src/analysis/checker';
import { ALL_RULES, explainRule, findRule } from '../../src/analysis/rules';
import { CATALOGUE, catalogueOf, catalogueText, findCatalogueEntry } from '../../src/analysis/catalogue';
import { checkFile } from '../../src/views/check';
import { BackendRequest, decodeMessage, encodeMessage, MAX_VRINGS, Request } from '../../src/protocol';
import type { ProxyEvent } from '../../src/events/events';
import { readRecording, recordingEvents } from '../../src/recording/reader';
import {
  u64,
  u64s,
  u32s,
  region,
  memTable,
  vringAddr,
  PF,
  V1,
  PACKED,
  REPLY_ACK,
  LOG_ALL,
  CONFIGURE_MEM_SLOTS,
  INFLIGHT,
  DEVICE_STATE,
  BACKEND_REQ,
  CONFIG,
  SHARED_OBJECT,
  SHMEM,
  UUID,
  shmemConfig,
  shmemMapping,
  config,
  logBase,
  Session,
} from '../sessions';

/** Each crafted session's findings as `check` prints them: where, and the detail. */
const DETAILS: Record<string, string[]> = {
  VU001: ['B>F GET_FEATURES reply: reply flags 0xd, QEMU accepts only 0x5 on the main channel'],
  VU002: ['B>F SET_VRING_NUM reply: SET_VRING_NUM reply, but no SET_VRING_NUM request was waiting for one'],
  VU003: ['F>B GET_FEATURES: GET_FEATURES got no reply before the next request (SET_OWNER)'],
  VU004: ['F>B SET_OWNER: NEED_REPLY set but REPLY_ACK is not negotiated'],
  VU005: ['F>B SET_FEATURES: SET_FEATURES payload is 4 bytes, expected 8'],
  VU006: ['F>B SET_VRING_KICK: SET_VRING_KICK carries 0 fds, expected 1'],
  VU007: ['F>B SET_VRING_ADDR: vring 0 addresses set before any memory table'],
  VU008: ['kick vring 0: vring 0 kicked before any SET_MEM_TABLE/ADD_MEM_REG'],
  VU009: ['F>B SET_VRING_ADDR: vring 0 used=0x7e0000000000 is in no memory region'],
  VU010: ['kick vring 0: vring 0 kicked before SET_VRING_ENABLE(0, 1)'],
  VU011: ['F>B SET_FEATURES: SET_FEATURES acks 0x800000000 that GET_FEATURES never offered'],
  VU012: ['F>B ADD_MEM_REG: 3 regions after ADD_MEM_REG, GET_MAX_MEM_SLOTS said 2'],
  VU013: ['F>B SET_VRING_ADDR: RING_PACKED negotiated but vring 0 is laid out as a split ring (avail ring after the descriptors, used ring after it)'],
  VU014: ['F>B SET_INFLIGHT_FD: SET_INFLIGHT_FD before any SET_VRING_BASE'],
  VU015: ['F>B UNKNOWN_99: request code 99 is not defined on the main channel'],
  VU016: [
    'F>B GET_SHMEM_CONFIG: main request 44 means GET_SHMEM_CONFIG (standard) or SNAPSHOT (crosvm-2023) or GET_VRING_BASE_SKIP_DRAIN (yandex); the negotiated features do not tell which (--dialect decides)',
    'B>F GET_SHMEM_CONFIG reply: main request 44 means GET_SHMEM_CONFIG (standard) or SNAPSHOT (crosvm-2023) or GET_VRING_BASE_SKIP_DRAIN (yandex); the negotiated features do not tell which (--dialect decides)',
  ],
  VU017: ['B>F SET_OWNER: the backend sent a request on the main channel, where requests come from the frontend'],
  VU018: ['vring 0: vring 0 was set up (SET_VRING_ADDR) but had no kick fd at the end of the session: the front-end never sent one'],
  VU019: ["B>F GET_VRING_BASE reply (vring 0): vring 0: the back-end answered 0, but the ring's used idx is 40 and its avail idx 40"],
  VU020: ['F>B GET_VRING_BASE: vring 0 stopped with LOG_ALL acked and no SET_LOG_BASE in this session'],
  VU021: ['F>B SET_LOG_BASE: a 16-byte log for guest memory up to 0x100000: one bit per 4 KiB page needs 32 bytes'],
  VU022: ['B>F GET_VRING_BASE reply: vring 0: GET_VRING_BASE answered 0, but the ring had 1 call(s) from the back-end since it started'],
  VU023: ["F>B SET_VRING_BASE: vring 0: the destination resumes from 5, the source's back-end stopped at 7 (session 1)"],
  VU024: ['F>B SET_DEVICE_STATE_FD: SET_DEVICE_STATE_FD started a transfer that no CHECK_DEVICE_STATE checked before the session ended'],
  VU025: ["B>F GET_VRING_BASE reply: GET_VRING_BASE answered after 400 ms while dirty logging was on (QEMU's default downtime limit: 300 ms)"],
  VU026: ["device state save: the save of the device state (35 bytes through the proxy's pipe) took 450 ms (QEMU's default downtime limit: 300 ms)"],
  VU027: ['B>F backend:SHMEM_MAP: SHMEM_MAP with protocol feature 21 negotiated and 22 (SHMEM) not: the peers number SHMEM as rust-vmm vhost 0.16 does'],
  VU028: ['F>B ADD_MEM_REG: ADD_MEM_REG gpa 0x80000+0x100000 (uaddr 0x7f1000000000) overlaps gpa 0x0+0x100000 (uaddr 0x7f0000000000), not removed first'],
  VU029: ['F>B POSTCOPY_END: POSTCOPY_END with CONFIGURE_MEM_SLOTS negotiated'],
  VU046: ['F>B SET_MEM_TABLE: SET_MEM_TABLE region 0: gpa 0x0+0x100000 (uaddr 0x7f0000000000) comes with a socket, which cannot be mapped'],
  VU047: ['B>F GET_CONFIG reply: GET_CONFIG for 20 bytes at offset 0 answered with a 0-byte payload: the back-end refused it'],
  VU048: [
    'kick vring 0: vring 0: a descriptor at gpa 0x180000+0x40 (chain 0) is in memory ADD_MEM_REG added 0 ms before, which the back-end has not acknowledged yet',
  ],
  VU049: [
    "F>B SET_VRING_ADDR: vring 0: protocol feature 21 (GPA_ADDRESSES) is negotiated, but desc=0x7f0000001000 and the other ring addresses are the front-end's own (in the regions' userspace range)",
  ],
  VU030: ['F>B GET_PROTOCOL_FEATURES: GET_PROTOCOL_FEATURES, but GET_FEATURES offered 0x100000000 (no bit 30)'],
  VU031: ['F>B SET_PROTOCOL_FEATURES: SET_PROTOCOL_FEATURES with no GET_PROTOCOL_FEATURES on this connection'],
  VU032: ['F>B GET_QUEUE_NUM: GET_QUEUE_NUM needs MQ, which is not negotiated'],
  VU033: ['F>B SET_PROTOCOL_FEATURES: INBAND_NOTIFICATIONS set without BACKEND_REQ'],
  VU034: ['F>B RESET_OWNER: RESET_OWNER (deprecated)'],
  VU035: ['B>F backend:CONFIG_CHANGE_MSG: CONFIG_CHANGE_MSG while every started ring is stopped'],
  VU036: [
    'F>B SET_VRING_NUM / B>F backend:CONFIG_CHANGE_MSG: the front-end waited for the reply to SET_VRING_NUM while the back-end waited for the reply to CONFIG_CHANGE_MSG (backend channel), for 6000 ms',
  ],
  VU037: ["B>F backend:SHMEM_MAP: SHMEM_MAP shmid 0 [0x8000, 0x18000) ends beyond the region's 0x10000 bytes"],
  VU038: ["B>F backend:SHARED_OBJECT_REMOVE: SHARED_OBJECT_REMOVE 00112233-4455-6677-8899-aabbccddeeff, which session 1's back-end added"],
  VU039: ['call vring 0: vring 0: the back-end signalled the call fd that SET_VRING_CALL (message #16) replaced, 30.0 ms after it answered a later request'],
  VU040: ['F>B SET_OWNER: version 2 in flags 0x2, expected 1'],
  VU041: [
    'kick vring 0: vring 0: a kick made requests available (avail idx 1, used idx 0) and the proxy saw no progress on the ring (no call, no used-index change) for 6.0 s',
  ],
  VU042: ['call vring 0: vring 0: the used index went from 5 back to 3 with no re-initialisation of the ring in between'],
  VU043: [
    'F>B SET_PROTOCOL_FEATURES: SET_PROTOCOL_FEATURES after the reconnect: -STATUS against session 1',
    'F>B SET_FEATURES: SET_FEATURES after the reconnect: +RING_PACKED against session 1',
  ],
  VU045: [
    'inflight region at SET_INFLIGHT_FD: vring 0: version 2, not 1',
    'inflight region at SET_INFLIGHT_FD: vring 1: desc_num 64, but the queues have 128 descriptors',
    'inflight region at SET_INFLIGHT_FD: vring 2: 2 descriptor(s) marked in flight in a region no back-end set up (version 0)',
  ],
  VU044: ["F>B SET_VRING_CALL: the fd of SET_VRING_CALL came with byte 12 of the message, not with its header's first byte"],
};

const ids = (events: ProxyEvent[]): string[] => [...new Set(checkEvents(events).map((f) => `${f.rule.id} ${f.rule.name}`))];

const cases: [string, () => ProxyEvent[]][] = [
  ['VU001 reply-flags', () => new Session().fe(Request.GET_FEATURES).be(Request.GET_FEATURES, u64(PF), { flags: 0xd }).end()],
  ['VU002 unexpected-reply', () => new Session().handshake().fe(Request.SET_VRING_NUM, u32s(0, 256)).be(Request.SET_VRING_NUM, u64(0n)).end()],
  ['VU003 missing-reply', () => new Session().fe(Request.GET_FEATURES).fe(Request.SET_OWNER).end()],
  [
    'VU004 need-reply-without-reply-ack',
    () =>
      new Session()
        .fe(Request.GET_PROTOCOL_FEATURES)
        .be(Request.GET_PROTOCOL_FEATURES, u64(0n))
        .fe(Request.SET_PROTOCOL_FEATURES, u64(0n))
        .fe(Request.SET_OWNER, undefined, { flags: 9 })
        .end(),
  ],
  ['VU005 payload-size', () => new Session().fe(Request.SET_FEATURES, Buffer.alloc(4)).end()],
  ['VU006 fd-count', () => new Session().handshake().fe(Request.SET_VRING_KICK, u64(0n), { fds: 0 }).end()],
  ['VU007 ring-before-mem-table', () => new Session().fe(Request.SET_VRING_ADDR, vringAddr(0, 0x7f0000001000n, 0x7f0000003000n, 0x7f0000002000n)).end()],
  ['VU008 kick-before-mem-table', () => new Session().kick(0).end()],
  [
    'VU009 ring-outside-regions',
    () =>
      new Session()
        .handshake()
        .fe(Request.SET_VRING_ADDR, vringAddr(0, 0x7f0000001000n, 0x7e0000000000n, 0x7f0000002000n))
        .end(),
  ],
  ['VU010 kick-before-enable', () => new Session().handshake().vring(0, { enable: false }).kick(0).fe(Request.SET_VRING_ENABLE, u32s(0, 1)).end()],
  ['VU011 feature-not-offered', () => new Session().handshake(PF | V1 | (1n << 35n)).end()],
  [
    'VU012 too-many-regions',
    () =>
      new Session()
        .handshake()
        .fe(Request.ADD_MEM_REG, Buffer.concat([u64(0n), region(0x100000n, 0x1000n, 0x7f1000000000n)]), { fds: 1 })
        .fe(Request.ADD_MEM_REG, Buffer.concat([u64(0n), region(0x200000n, 0x1000n, 0x7f2000000000n)]), { fds: 1 })
        .end(),
  ],
  [
    'VU013 packed-layout-mismatch',
    () =>
      new Session()
        .handshake(PF | V1 | PACKED)
        .fe(Request.SET_VRING_NUM, u32s(0, 256))
        .fe(Request.SET_VRING_ADDR, vringAddr(0, 0x7f0000001000n, 0x7f0000002300n, 0x7f0000002000n))
        .end(),
  ],
  [
    'VU014 inflight-before-vring-base',
    () =>
      new Session()
        .handshake(PF | V1, INFLIGHT)
        .fe(Request.SET_INFLIGHT_FD, Buffer.alloc(24), { fds: 1 })
        .end(),
  ],
  ['VU015 unknown-request', () => new Session().fe(99).end()],
  ['VU016 ambiguous-request', () => new Session().fe(Request.GET_SHMEM_CONFIG).be(Request.GET_SHMEM_CONFIG, Buffer.alloc(2056)).end()],
  ['VU017 wrong-direction', () => new Session().be(Request.SET_OWNER, undefined, { flags: 1 }).end()],
  [
    'VU018 vring-without-kick',
    () =>
      new Session()
        .handshake()
        .fe(Request.SET_VRING_NUM, u32s(0, 256))
        .fe(Request.SET_VRING_ADDR, vringAddr(0, 0x7f0000001000n, 0x7f0000003000n, 0x7f0000002000n))
        .fe(Request.SET_VRING_ENABLE, u32s(0, 1))
        .end(),
  ],
  [
    'VU019 vring-base-mismatch',
    () => {
      const events = new Session().handshake().vring(0).fe(Request.GET_VRING_BASE, u32s(0, 0)).be(Request.GET_VRING_BASE, u32s(0, 0)).events;
      events.push({
        type: 'ring',
        ts: 99_000n,
        session: 1,
        vring: 0,
        base: 0,
        raw: Buffer.alloc(0),
        snapshot: { ts: 99_000n, pair: 0, ring: 1, kind: 'base', packed: false, truncated: false, availIdx: 40, usedIdx: 40, readUs: 0, entries: [] },
      });
      return events;
    },
  ],
  [
    'VU020 log-all-without-log-base',
    () =>
      new Session()
        .handshake(PF | V1 | LOG_ALL)
        .vring(0)
        .fe(Request.GET_VRING_BASE, u32s(0, 0))
        .be(Request.GET_VRING_BASE, u32s(0, 0))
        .end(),
  ],
  // 1 MiB of guest memory: 256 pages, 32 bytes of log
  ['VU021 log-too-small', () => new Session().handshake().fe(Request.SET_LOG_BASE, logBase(16n), { fds: 1 }).end()],
  [
    'VU022 vring-base-zero-after-use',
    () => new Session().handshake().vring(0).kick(0).call(0).fe(Request.GET_VRING_BASE, u32s(0, 0)).be(Request.GET_VRING_BASE, u32s(0, 0)).end(),
  ],
  ['VU023 migrated-base-mismatch', () => migration(5)],
  [
    'VU024 device-state-unchecked',
    () =>
      new Session()
        .handshake(PF | V1, DEVICE_STATE)
        .fe(Request.SET_DEVICE_STATE_FD, u32s(0, 0), { fds: 1 })
        .be(Request.SET_DEVICE_STATE_FD, u64(0n))
        .end(),
  ],
  [
    'VU025 reply-beyond-downtime',
    () =>
      new Session()
        .handshake(PF | V1 | LOG_ALL)
        .fe(Request.SET_LOG_BASE, logBase(32n), { fds: 1 })
        .vring(0)
        .fe(Request.GET_VRING_BASE, u32s(0, 0))
        .wait(400_000_000n)
        .be(Request.GET_VRING_BASE, u32s(0, 0))
        .end(),
  ],
  [
    'VU026 device-state-beyond-downtime',
    () =>
      new Session()
        .handshake(PF | V1, DEVICE_STATE)
        .fe(Request.SET_DEVICE_STATE_FD, u32s(0, 0), { fds: 1 })
        .be(Request.SET_DEVICE_STATE_FD, u64(0n))
        .stateTransfer('save', 450)
        .fe(Request.CHECK_DEVICE_STATE)
        .be(Request.CHECK_DEVICE_STATE, u64(0n))
        .end(),
  ],
  [
    'VU027 shmem-bit',
    () =>
      new Session()
        .handshake(PF | V1, REPLY_ACK | (1n << 15n) | (1n << 5n) | (1n << 21n))
        .be(9, shmemMapping(0, 0n, 0x1000n), { channel: 'backend', flags: 1, fds: 1 })
        .be(9, shmemMapping(0, 0x1000n, 0x1000n), { channel: 'backend', flags: 1, fds: 1 })
        .end(),
  ],
  [
    'VU028 regions-overlap',
    () =>
      new Session()
        .handshake()
        .fe(Request.ADD_MEM_REG, Buffer.concat([u64(0n), region(0x80000n, 0x100000n, 0x7f1000000000n)]), { fds: 1 })
        .end(),
  ],
  [
    'VU029 postcopy-with-mem-slots',
    () =>
      new Session()
        .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | (1n << 8n))
        .fe(Request.POSTCOPY_END)
        .be(Request.POSTCOPY_END, u64(0n))
        .end(),
  ],
  [
    'VU030 protocol-features-without-bit30',
    () =>
      new Session()
        .fe(Request.GET_FEATURES)
        .be(Request.GET_FEATURES, u64(V1))
        .fe(Request.GET_PROTOCOL_FEATURES)
        .be(Request.GET_PROTOCOL_FEATURES, u64(0n))
        .end(),
  ],
  [
    'VU031 protocol-features-unasked',
    () =>
      new Session()
        .fe(Request.GET_FEATURES)
        .be(Request.GET_FEATURES, u64(PF | V1))
        .fe(Request.SET_PROTOCOL_FEATURES, u64(REPLY_ACK))
        .end(),
  ],
  ['VU032 request-without-feature', () => new Session().handshake().fe(Request.GET_QUEUE_NUM).be(Request.GET_QUEUE_NUM, u64(1n)).end()],
  ['VU033 inband-without-backend-req', () => new Session().handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | (1n << 14n)).end()],
  ['VU034 reset-owner', () => new Session().handshake().fe(Request.RESET_OWNER).end()],
  [
    'VU035 backend-request-while-suspended',
    () =>
      new Session()
        .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | CONFIG)
        .vring(0)
        .fe(Request.GET_VRING_BASE, u32s(0, 0))
        .be(Request.GET_VRING_BASE, u32s(0, 0))
        .be(BackendRequest.CONFIG_CHANGE_MSG, undefined, { channel: 'backend', flags: 1 })
        .end(),
  ],
  [
    'VU036 both-sides-blocked',
    () =>
      new Session()
        .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | CONFIG)
        .fe(Request.SET_VRING_NUM, u32s(0, 256), { flags: 9 })
        .be(BackendRequest.CONFIG_CHANGE_MSG, undefined, { channel: 'backend', flags: 9 })
        .wait(6_000_000_000n)
        .fe(BackendRequest.CONFIG_CHANGE_MSG, u64(0n), { channel: 'backend', flags: 5 })
        .be(Request.SET_VRING_NUM, u64(0n))
        .end(),
  ],
  [
    'VU037 shmem-map-invalid',
    () =>
      new Session()
        .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | SHMEM)
        .fe(Request.GET_SHMEM_CONFIG)
        .be(Request.GET_SHMEM_CONFIG, shmemConfig(0x10000n))
        .be(BackendRequest.SHMEM_MAP, shmemMapping(0, 0n, 0x8000n), { channel: 'backend', flags: 1, fds: 1 })
        .be(BackendRequest.SHMEM_UNMAP, shmemMapping(0, 0n, 0x8000n), { channel: 'backend', flags: 1 })
        .be(BackendRequest.SHMEM_MAP, shmemMapping(0, 0x8000n, 0x10000n), { channel: 'backend', flags: 1, fds: 1 })
        .end(),
  ],
  [
    'VU038 shared-object-not-owner',
    () => {
      const protocol = REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | SHARED_OBJECT;
      const owner = new Session(1).handshake(PF | V1, protocol).be(BackendRequest.SHARED_OBJECT_ADD, UUID, { channel: 'backend', flags: 1 });
      const other = new Session(2, 1_000_000n).handshake(PF | V1, protocol).be(BackendRequest.SHARED_OBJECT_REMOVE, UUID, { channel: 'backend', flags: 1 });
      return [...owner.end(), ...other.end()];
    },
  ],
  [
    'VU039 call-on-replaced-fd',
    () =>
      new Session()
        .handshake()
        .vring(0)
        .fe(Request.SET_VRING_CALL, u64(0n), { fds: 1 })
        .fe(Request.SET_VRING_CALL, u64(0n), { fds: 1 })
        .fe(Request.GET_STATUS)
        .be(Request.GET_STATUS, u64(0xfn))
        .wait(30_000_000n)
        .staleCall(0)
        .end(),
  ],
  ['VU040 header-invalid', () => new Session().fe(Request.SET_OWNER, undefined, { flags: 2 }).end()],
  ['VU041 kick-without-progress', () => new Session().handshake().vring(0).kick(0).ring(0, 'kick', 1, 0).wait(6_000_000_000n).end()],
  ['VU042 used-index-regressed', () => new Session().handshake().vring(0).ring(0, 'call', 0, 5).ring(0, 'call', 0, 3).end()],
  [
    'VU043 handshake-changed-after-reconnect',
    () => [...new Session(1).handshake().end('backend'), ...new Session(2, 1_000_000n).handshake(PF | V1 | PACKED, REPLY_ACK | CONFIGURE_MEM_SLOTS).end()],
  ],
  ['VU044 fds-after-header', () => new Session().handshake().fe(Request.SET_VRING_CALL, u64(0n), { fds: 1, fdsAt: 12 }).end()],
  [
    'VU045 inflight-region-inconsistent',
    () =>
      new Session()
        .handshake()
        .inflight(
          'SET_INFLIGHT_FD',
          128,
          { version: 2, descNum: 128 },
          { version: 1, descNum: 64 },
          { version: 0, descNum: 0, heads: [3, 4] },
          { version: 1, descNum: 128, heads: [7] },
        )
        .inflight('session end', 128, { version: 0, descNum: 0 }, { version: 1, descNum: 128 })
        .end(),
  ],
  [
    'VU046 region-fd-unmappable',
    () =>
      new Session()
        .fe(Request.SET_MEM_TABLE, memTable(region(0n, 0x100000n, 0x7f0000000000n)), { fds: 1, fdKinds: [{ kind: 'socket', target: 'socket:[4242]' }] })
        .end(),
  ],
  [
    'VU047 config-refused',
    // QEMU 11.1 <-> vhost-user-gpu 10, as the proxy saw it (test/e2e/sid.test.ts)
    () =>
      new Session()
        .handshake(PF | V1, REPLY_ACK | CONFIG)
        .fe(Request.GET_CONFIG, config(0, 20))
        .be(Request.GET_CONFIG)
        .end(),
  ],
  [
    'VU048 descriptor-outside-acked-memory',
    // field case C12: the guest uses memory an ADD_MEM_REG added before the back-end acked it
    () =>
      new Session()
        .handshake()
        .vring(0)
        .fe(Request.ADD_MEM_REG, u64s(0n, 0x100000n, 0x100000n, 0x7f1000000000n, 0n), { fds: 1, flags: 9 })
        .kick(0)
        .ring(0, 'kick', 1, 0, true, 0x180000n)
        .be(Request.ADD_MEM_REG, u64(0n))
        .call(0)
        .ring(0, 'call', 1, 1)
        .end(),
  ],
  [
    'VU049 gpa-addresses-ignored',
    // field case C16's other side: a front-end acking bit 21 as rust-vmm vhost 0.16's SHMEM
    () =>
      new Session()
        .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | (1n << 21n))
        .fe(Request.SET_VRING_ADDR, vringAddr(0, 0x7f0000001000n, 0x7f0000003000n, 0x7f0000002000n))
        .end(),
  ],
];

/**
 * A source with dirty logging stops vring 0 at 7 (session 1); a destination connected before it
 * resumes the ring from `resumeAt` (session 2), with `destMemory` bytes of guest memory.
 */
function migration(resumeAt: number, destMemory = 0x100000n, vring = 0): ProxyEvent[] {
  const src = new Session(1, 0n)
    .handshake(PF | V1 | LOG_ALL)
    .fe(Request.SET_LOG_BASE, logBase(32n), { fds: 1 })
    .vring(vring)
    .kick(vring)
    .call(vring);
  const dst = new Session(2, 500_000n).handshake();
  if (destMemory !== 0x100000n) dst.fe(Request.ADD_MEM_REG, Buffer.concat([u64(0n), region(0x100000n, destMemory - 0x100000n, 0x7f1000000000n)]), { fds: 1 });
  src.wait(1_000_000n).fe(Request.GET_VRING_BASE, u32s(vring, 0)).be(Request.GET_VRING_BASE, u32s(vring, 7));
  dst.wait(2_000_000n).vring(vring, { base: resumeAt });
  const events = [...src.end(), ...dst.end()];
  return events.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
}

describe('check rules', () => {
  it('a clean session has no finding', () => {
    expect(
      ids(new Session().handshake().vring(0).vring(1).kick(0).kick(1).fe(Request.GET_VRING_BASE, u32s(0, 0)).be(Request.GET_VRING_BASE, u32s(0, 7)).end()),
    ).toEqual([]);
  });

  it('VU018 names the fault rule that dropped the kick fd, at DRIVER_OK', () => {
    const events = new Session()
      .handshake()
      .fe(Request.SET_VRING_NUM, u32s(0, 256))
      .fe(Request.SET_VRING_ADDR, vringAddr(0, 0x7f0000001000n, 0x7f0000003000n, 0x7f0000002000n)).events;
    events.push({
      type: 'fault',
      ts: 90_000n,
      session: 1,
      rule: '1',
      text: 'drop SET_VRING_KICK',
      action: 'drop',
      detail: 'F>B SET_VRING_KICK(vring 0) dropped',
    });
    const kick = encodeMessage(Request.SET_VRING_KICK, 1, u64(0n));
    events.push({
      type: 'message',
      ts: 91_000n,
      session: 1,
      channel: 'main',
      sender: 'frontend',
      dir: 'F>B',
      raw: kick,
      decoded: decodeMessage('main', kick),
      fds: [{ slot: 0, kind: 'eventfd' }],
      findings: [],
      undelivered: 'dropped',
      faults: ['1'],
    });
    const status = encodeMessage(Request.SET_STATUS, 1, u64(0xfn));
    events.push({
      type: 'message',
      ts: 92_000n,
      session: 1,
      channel: 'main',
      sender: 'frontend',
      dir: 'F>B',
      raw: status,
      decoded: decodeMessage('main', status),
      fds: [],
      findings: [],
    });
    const f = checkEvents(events);
    expect(f.map((x) => x.rule.id)).toEqual(['VU018']);
    expect(f[0].detail).toBe(
      "vring 0 was set up (SET_VRING_ADDR) but had no kick fd when the driver set DRIVER_OK: SET_VRING_KICK for vring 0 was dropped by the proxy's fault rule 1 (drop SET_VRING_KICK)",
    );
    expect(f[0].at).toBe('F>B SET_STATUS');
  });

  it('VU019 accepts a base between the used and the avail index, across the 16-bit wrap', () => {
    const ring = (base: number, usedIdx: number, availIdx: number): ProxyEvent => ({
      type: 'ring',
      ts: 1n,
      session: 1,
      vring: 0,
      base,
      raw: Buffer.alloc(0),
      snapshot: { ts: 1n, pair: 0, ring: 1, kind: 'base', packed: false, truncated: false, availIdx, usedIdx, readUs: 0, entries: [] },
    });
    expect(checkEvents([ring(6, 6, 256), ring(65535, 65534, 2), ring(1, 65534, 2)])).toEqual([]);
    expect(checkEvents([ring(3, 65534, 2)]).map((f) => f.detail)).toEqual([
      "vring 0: the back-end answered 3, but the ring's used idx is 65534 and its avail idx 2",
    ]);
  });

  it("VU023 takes the destination's base as right when it matches, and leaves another VM behind the same daemon alone", () => {
    expect(ids(migration(7))).toEqual([]);
    expect(ids(migration(5, 0x200000n))).toEqual([]);
    const [f] = checkEvents(migration(5));
    expect(f).toMatchObject({
      session: 2,
      at: 'F>B SET_VRING_BASE',
      detail: "vring 0: the destination resumes from 5, the source's back-end stopped at 7 (session 1)",
    });
  });

  it('follows vrings below MAX_VRINGS only: a peer naming huge vring indices does not grow its tables', () => {
    const vu023 = (vring: number): string[] => ids(migration(5, 0x100000n, vring)).filter((id) => id.startsWith('VU023'));
    expect(vu023(MAX_VRINGS - 1)).toHaveLength(1);
    expect(vu023(MAX_VRINGS)).toEqual([]);
    expect(vu023(0xfffffff0)).toEqual([]);
  });

  it('VU026 names the hold-state rule that held the transfer, and stays quiet for a quick one', () => {
    const run = (ms: number, held?: { rule: string; ms: number }): ReturnType<typeof checkEvents> =>
      checkEvents(
        new Session()
          .handshake(PF | V1, DEVICE_STATE)
          .fe(Request.SET_DEVICE_STATE_FD, u32s(1, 0), { fds: 1 })
          .be(Request.SET_DEVICE_STATE_FD, u64(0n))
          .stateTransfer('load', ms, held)
          .fe(Request.CHECK_DEVICE_STATE)
          .be(Request.CHECK_DEVICE_STATE, u64(0n))
          .end(),
      );
    expect(run(6)).toEqual([]);
    expect(run(299)).toEqual([]);
    const [f] = run(2004, { rule: 'slow-state', ms: 2000 });
    expect(f).toMatchObject({
      at: 'device state load',
      detail:
        "the load of the device state (35 bytes through the proxy's pipe) took 2004 ms (QEMU's default downtime limit: 300 ms); fault rule slow-state held it 2000 ms",
    });
    expect(f.rule.id).toBe('VU026');
  });

  it('a stop that does not drain (GET_VRING_BASE_SKIP_DRAIN, 2026) is a stop: VU022 and VU020 apply to it once its feature is in use', () => {
    const SKIP = REPLY_ACK | (1n << 15n) | (1n << 12n) | (1n << 20n) | (1n << 23n);
    const skipStop = (features: bigint, protocol: bigint, num: number) =>
      new Session()
        .handshake(features, protocol)
        .vring(0)
        .kick(0)
        .call(0)
        .fe(Request.GET_VRING_BASE_SKIP_DRAIN, u32s(0, 0))
        .be(Request.GET_VRING_BASE_SKIP_DRAIN, u32s(0, num))
        .end();
    expect(ids(skipStop(PF | V1, SKIP, 0))).toEqual(['VU022 vring-base-zero-after-use']);
    expect(ids(skipStop(PF | V1, SKIP, 3))).toEqual([]);
    expect(ids(skipStop(PF | V1 | LOG_ALL, SKIP, 3))).toEqual(['VU020 log-all-without-log-base']);
  });

  it('VU047: a config of another size than asked; quiet when the size matches, and on a SET_CONFIG', () => {
    const findings = (answer: Buffer | undefined) =>
      checkEvents(
        new Session()
          .handshake(PF | V1, REPLY_ACK | CONFIG)
          .fe(Request.GET_CONFIG, config(8, 16))
          .be(Request.GET_CONFIG, answer)
          .fe(Request.SET_CONFIG, config(0, 4))
          .fe(Request.GET_CONFIG, config(0, 4))
          .be(Request.GET_CONFIG, config(0, 4))
          .end(),
      ).map((f) => `${f.rule.id} ${f.detail}`);
    expect(findings(config(8, 12))).toEqual(['VU047 GET_CONFIG for 16 bytes at offset 8 answered with 12 bytes']);
    expect(findings(config(8, 16))).toEqual([]);
  });

  it('VU048: only memory the pending change added; quiet once it is acked, for memory in no table (a racing read), before any ack, and with ACCESS_PLATFORM', () => {
    const findings = (build: (x: Session) => Session) =>
      checkEvents(build(new Session().handshake().vring(0)).end())
        .filter((f) => f.rule.id === 'VU048')
        .map((f) => f.detail);
    const used = (x: Session, addr: bigint) => x.kick(0).ring(0, 'kick', 1, 0, true, addr).call(0).ring(0, 'call', 1, 1);
    const added = (x: Session) => x.fe(Request.ADD_MEM_REG, u64s(0n, 0x100000n, 0x100000n, 0x7f1000000000n, 0n), { fds: 1, flags: 9 });
    // in the region being added, kicked before the ack; a descriptor running past it is not in it
    expect(findings((x) => used(added(x), 0x180000n))).toHaveLength(1);
    expect(findings((x) => used(added(x), 0x1fffe0n))).toEqual([]);
    // acked, then used: the back-end has it
    expect(findings((x) => used(added(x).be(Request.ADD_MEM_REG, u64(0n)), 0x180000n))).toEqual([]);
    // in no table at all: what a ring read racing the driver sees (real runs do), not this rule's
    expect(findings((x) => used(added(x), 0x7a40ca923ac879n))).toEqual([]);
    expect(findings((x) => used(x, 0x200000n))).toEqual([]);
    // without REPLY_ACK, any later reply acks it (QEMU's GET_FEATURES barrier)
    const barrier = (x: Session) =>
      x.fe(Request.SET_MEM_TABLE, memTable(region(0n, 0x100000n, 0x7f0000000000n), region(0x100000n, 0x100000n, 0x7f1000000000n)), { fds: 2 });
    expect(
      findings((x) =>
        used(
          barrier(x)
            .fe(Request.GET_FEATURES)
            .be(Request.GET_FEATURES, u64(PF | V1)),
          0x180000n,
        ),
      ),
    ).toEqual([]);
    expect(findings((x) => used(barrier(x), 0x180000n))).toEqual([
      'vring 0: a descriptor at gpa 0x180000+0x40 (chain 0) is in memory SET_MEM_TABLE added 0 ms before, which the back-end has not acknowledged yet',
    ]);
    // told once per table change and vring
    const twice = (x: Session) => added(x).kick(0).ring(0, 'kick', 1, 0, true, 0x180000n).kick(0).ring(0, 'kick', 2, 0, true, 0x180000n);
    expect(findings(twice)).toHaveLength(1);
    // a first table not yet acknowledged: VU008's ground, not this rule's
    const early = new Session()
      .fe(Request.SET_MEM_TABLE, memTable(region(0n, 0x100000n, 0x7f0000000000n)), { fds: 1 })
      .vring(0)
      .kick(0)
      .ring(0, 'kick', 1, 0, true, 0x1000n)
      .call(0)
      .end();
    expect(checkEvents(early).filter((f) => f.rule.id === 'VU048')).toEqual([]);
    // IOVAs (ACCESS_PLATFORM) are not guest-physical
    const iommu = new Session().handshake(PF | V1 | (1n << 33n)).vring(0);
    expect(checkEvents(used(added(iommu), 0x180000n).end()).filter((f) => f.rule.id === 'VU048')).toEqual([]);
  });

  it('VU046: a region past the end of its file, in a table or added; quiet at the exact size, and where /proc told no size', () => {
    // QEMU's (recordings/): one 256 MiB memfd, the region ending exactly at its end
    const table = (size: number | undefined, offset = 0n) => {
      const r = Buffer.concat([u64(0n), u64(0x100000n), u64(0x7f0000000000n), u64(offset)]);
      return new Session().fe(Request.SET_MEM_TABLE, memTable(r), { fds: 1, fdKinds: [{ kind: 'memfd', size }] }).end();
    };
    expect(ids(table(0x100000))).toEqual([]);
    expect(ids(table(undefined))).toEqual([]);
    expect(checkEvents(table(0x100000, 0x1000n)).map((f) => `${f.rule.id} ${f.detail}`)).toEqual([
      'VU046 SET_MEM_TABLE region 0: gpa 0x0+0x100000 (uaddr 0x7f0000000000) needs its memfd up to byte 0x101000 (mmap_offset 0x1000), the file has 0x100000',
    ]);
    const added = new Session()
      .handshake()
      .fe(Request.ADD_MEM_REG, Buffer.concat([u64(0n), region(0x200000n, 0x100000n, 0x7f1000000000n)]), {
        fds: 1,
        fdKinds: [{ kind: 'file', size: 0x80000, target: '/dev/hugepages/qemu' }],
      })
      .end();
    expect(checkEvents(added).map((f) => `${f.rule.id} ${f.detail}`)).toEqual([
      'VU046 ADD_MEM_REG: gpa 0x200000+0x100000 (uaddr 0x7f1000000000) needs its file up to byte 0x100000 (mmap_offset 0x0), the file has 0x80000',
    ]);
    // an eventfd where guest memory goes: the back-end's mmap fails
    expect(ids(table(undefined).map((e) => (e.type === 'message' ? { ...e, fds: [{ slot: 0, kind: 'eventfd' as const }] } : e)))).toEqual([
      'VU046 region-fd-unmappable',
    ]);
  });

  it('VU028 in one table too, and quiet for regions side by side; VU029 quiet without CONFIGURE_MEM_SLOTS', () => {
    const table = (...r: Buffer[]) => new Session().fe(Request.SET_MEM_TABLE, memTable(...r), { fds: r.length }).end();
    const f = checkEvents(table(region(0n, 0x100000n, 0x7f0000000000n), region(0x200000n, 0x100000n, 0x7f0000080000n)));
    expect(f.map((x) => `${x.rule.id} ${x.detail}`)).toEqual([
      'VU028 gpa 0x200000+0x100000 (uaddr 0x7f0000080000) overlaps gpa 0x0+0x100000 (uaddr 0x7f0000000000)',
    ]);
    expect(ids(table(region(0n, 0x100000n, 0x7f0000000000n), region(0x100000n, 0x100000n, 0x7f0000100000n)))).toEqual([]);
    const noSlots = new Session()
      .handshake(PF | V1, REPLY_ACK | (1n << 8n))
      .fe(Request.POSTCOPY_END)
      .be(Request.POSTCOPY_END, u64(0n))
      .end();
    expect(ids(noSlots)).toEqual([]);
  });

  it('VU009 takes ring addresses as guest-physical with GPA_ADDRESSES (2026)', () => {
    const gpa = REPLY_ACK | (1n << 15n) | (1n << 21n);
    const ring = (desc: bigint) =>
      new Session()
        .handshake(PF | V1, gpa)
        .fe(Request.SET_VRING_ADDR, vringAddr(0, desc, desc + 0x2000n, desc + 0x1000n))
        .end();
    expect(ids(ring(0x1000n))).toEqual([]); // inside the region's guest-physical range
    // the front-end's addresses, not guest-physical ones: it does not speak bit 21 as GPA_ADDRESSES
    expect(ids(ring(0x7f0000001000n))).toEqual(['VU049 gpa-addresses-ignored']);
    // in neither space: only outside
    expect(ids(ring(0x7e0000001000n))).toEqual(['VU009 ring-outside-regions']);
  });

  it('VU027 stays quiet where SHMEM is bit 22, as the 2026 spec has it', () => {
    const at22 = new Session()
      .handshake(PF | V1, REPLY_ACK | (1n << 15n) | (1n << 5n) | (1n << 21n) | (1n << 22n))
      .be(9, shmemMapping(0, 0n, 0x1000n), { channel: 'backend', flags: 1, fds: 1 })
      .fe(Request.GET_SHMEM_CONFIG)
      .be(Request.GET_SHMEM_CONFIG, Buffer.alloc(2056))
      .end();
    expect(ids(at22)).toEqual([]);
  });

  it('VU022 and VU025 stay quiet for a ring never used, and for a quick reply during a migration', () => {
    expect(ids(new Session().handshake().vring(0).kick(0).fe(Request.GET_VRING_BASE, u32s(0, 0)).be(Request.GET_VRING_BASE, u32s(0, 0)).end())).toEqual([]);
    expect(
      ids(
        new Session()
          .handshake(PF | V1 | LOG_ALL)
          .fe(Request.SET_LOG_BASE, logBase(32n), { fds: 1 })
          .vring(0)
          .fe(Request.GET_VRING_BASE, u32s(0, 0))
          .wait(200_000_000n)
          .be(Request.GET_VRING_BASE, u32s(0, 0))
          .end(),
      ),
    ).toEqual([]);
    // a device state transfer that was checked
    expect(
      ids(
        new Session()
          .handshake(PF | V1, DEVICE_STATE)
          .fe(Request.SET_DEVICE_STATE_FD, u32s(0, 0), { fds: 1 })
          .be(Request.SET_DEVICE_STATE_FD, u64(0n))
          .fe(Request.CHECK_DEVICE_STATE)
          .be(Request.CHECK_DEVICE_STATE, u64(0n))
          .end(),
      ),
    ).toEqual([]);
  });

  it('every rule says how to fix what it finds, and --explain finds it by id or name', () => {
    expect(ALL_RULES.filter((r) => r.fix.length < 20).map((r) => r.id)).toEqual([]);
    expect(findRule('vu010')?.name).toBe('kick-before-enable');
    expect(findRule('kick-before-enable')?.id).toBe('VU010');
    expect(findRule('VU999')).toBeUndefined();
    const r = findRule('VU020')!;
    expect(explainRule(r)).toBe(`VU020 log-all-without-log-base (error) [catalogue R50]\n  what:   ${r.explain}\n  source: ${r.section}\n  fix:    ${r.fix}\n`);
    expect(explainRule(findRule('VU034')!)).toMatch(/^VU034 reset-owner \(warning\) \[catalogue R08\]\n/);
    expect(explainRule(findRule('VU016')!)).toMatch(/^VU016 ambiguous-request \(warning\) \[catalogue R05\]\n/);
  });

  it('the field catalogue: every entry R01-R71 names existing rules, or says what is not checked yet', () => {
    const ids = new Set(ALL_RULES.map((r) => r.id));
    expect(CATALOGUE.map((c) => c.id)).toEqual(
      ['01', '02', '03', '04', '05', '06', '07', '08', '10', '11', '12', '13', '20', '21', '22', '30', '31', '32', '33']
        .concat(['40', '41', '42', '43', '44', '45', '46', '50', '51', '52', '60', '61', '62', '70', '71'])
        .map((n) => `R${n}`),
    );
    expect(CATALOGUE.flatMap((c) => c.rules).filter((id) => !ids.has(id))).toEqual([]);
    expect(CATALOGUE.filter((c) => !c.rules.length && !c.gap).map((c) => c.id)).toEqual([]);
    // every rule of check belongs to the catalogue somewhere, except the proxy's own ones
    expect(ALL_RULES.filter((r) => !catalogueOf(r.id).length).map((r) => r.id)).toEqual(['VU007', 'VU013', 'VU014', 'VU017']);
    expect(findCatalogueEntry('R07')?.rules).toEqual(['VU010', 'VU041']);
    expect(findCatalogueEntry('r42')?.rules).toEqual(['VU039']);
    expect(catalogueText().split('\n')[0]).toBe('R01 GET/SET_PROTOCOL_FEATURES only when GET_FEATURES offered bit 30 [spec]: VU030');
  });

  it('every rule has a crafted session here', () => {
    expect(cases.map(([name]) => name)).toEqual(ALL_RULES.map((r) => `${r.id} ${r.name}`));
  });

  it.each(cases)('%s fires on its crafted session, and only it', (name, build) => {
    expect(ids(build())).toEqual([name]);
  });

  it.each(cases)('%s says where and what, word for word', (name, build) => {
    expect(checkEvents(build()).map((f) => `${f.at}: ${f.detail}`)).toEqual(DETAILS[name.split(' ')[0]!]);
  });

  it('points at the message, with the spec section', () => {
    const f = checkEvents(
      new Session()
        .handshake()
        .fe(Request.SET_VRING_ADDR, vringAddr(3, 0x1000n, 0x7f0000003000n, 0x7f0000002000n))
        .end(),
    );
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ message: 10, at: 'F>B SET_VRING_ADDR', detail: 'vring 3 desc=0x1000 is in no memory region' });
    expect(f[0].rule.section).toMatch(/vhost-user.rst/);
  });
});

describe('the real recordings', () => {
  const dir = path.resolve(__dirname, '..', '..', 'recordings');
  // QEMU 7.2 kicks a vhost-user-blk/-fs queue right after SET_VRING_KICK ("kick right away to
  // begin processing requests already in vring") and enables it afterwards: a real quirk of
  // that peer, documented in docs/check-rules.md. Everything else is clean.
  const quirks: Record<string, string[]> = {
    'qemu-blk-qsd.vhsrec': ['VU010'],
    'qemu-fs-virtiofsd.vhsrec': ['VU010'],
    'qemu-blk-migration.vhsrec': ['VU010'],
    // QEMU 10 does the same, on the migration destination's start too
    'qemu10-fs-migration.vhsrec': ['VU010'],
  };
  it.each(fs.readdirSync(dir).filter((f) => f.endsWith('.vhsrec')))('%s is clean but for its documented quirks', (f) => {
    const { findings, torn } = checkFile(path.join(dir, f));
    expect(torn).toBeUndefined();
    expect([...new Set(findings.map((x) => x.rule.id))]).toEqual(quirks[f] ?? []);
  });
});

describe('a real live migration (recordings/qemu-net-migration.vhsrec: QEMU 7.2 to QEMU 7.2, testpmd)', () => {
  const events = (): ProxyEvent[] => recordingEvents(readRecording(path.resolve(__dirname, '..', '..', 'recordings', 'qemu-net-migration.vhsrec')).records);

  it("pairs the destination's ring bases with the source's stop, and flags one that differs", () => {
    const evs = events();
    expect(checkEvents(evs)).toEqual([]);
    // the destination (session 2) resumes vring 0 one request early, as a back-end that lost its place would make it
    const i = evs.findIndex(
      (e) => e.type === 'message' && e.session === 2 && e.decoded.name === 'SET_VRING_BASE' && (e.decoded.payload as { index: number }).index === 0,
    );
    const m = evs[i] as Extract<ProxyEvent, { type: 'message' }>;
    const num = (m.decoded.payload as { num: number }).num;
    const raw = encodeMessage(Request.SET_VRING_BASE, 1, u32s(0, num - 1));
    evs[i] = { ...m, raw, decoded: decodeMessage('main', raw, 'frontend') };
    expect(checkEvents(evs).map((f) => `${f.rule.id} ${f.session}: ${f.detail}`)).toEqual([
      `VU023 2: vring 0: the destination resumes from ${num - 1}, the source's back-end stopped at ${num} (session 1)`,
    ]);
  });

  // the field bug (OVS-DPDK with cloud-hypervisor): SET_LOG_BASE's answer late or never; fault
  // rules reproduce it through the proxy, and check names the rule next to the finding
  const logBaseReply = (evs: ProxyEvent[]): number =>
    evs.findIndex((e) => e.type === 'message' && e.session === 1 && e.decoded.name === 'SET_LOG_BASE' && e.decoded.reply);

  it('a SET_LOG_BASE reply a fault rule held past the downtime limit is flagged with the rule', () => {
    const evs = events();
    const i = logBaseReply(evs);
    const m = evs[i] as Extract<ProxyEvent, { type: 'message' }>;
    evs[i] = { ...m, ts: m.ts + 1_000_000_000n, heldNs: 1_000_000_000n, faults: ['slow-log'] };
    const f = checkEvents(evs).filter((x) => x.rule.id === 'VU025');
    expect(f.map((x) => x.detail)).toEqual([
      expect.stringMatching(/^SET_LOG_BASE answered after 100\d ms while dirty logging started .*; fault rule slow-log held it 1000 ms$/),
    ]);
  });

  it('a SET_LOG_BASE reply a fault rule dropped is a missing reply that names the rule', () => {
    const evs = events();
    const i = logBaseReply(evs);
    const m = evs[i] as Extract<ProxyEvent, { type: 'message' }>;
    evs[i] = { ...m, undelivered: 'dropped', faults: ['lost-log'] };
    const f = checkEvents(evs).filter((x) => x.rule.id === 'VU003');
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ session: 1, at: 'F>B SET_LOG_BASE' });
    expect(f[0].detail).toMatch(/^SET_LOG_BASE got no reply before the next request \(\w+\): fault rule lost-log dropped the reply$/);
  });

  it("without the source's SET_LOG_BASE, its stop is flagged as dirty logging without a log", () => {
    const evs = events().filter((e) => !(e.type === 'message' && e.decoded.name === 'SET_LOG_BASE'));
    expect(checkEvents(evs).map((f) => `${f.rule.id} ${f.session}`)).toEqual(['VU020 1']);
  });
});

describe('a real device-state migration (recordings/qemu10-fs-migration.vhsrec: QEMU 10, the Rust virtiofsd)', () => {
  const events = (): ProxyEvent[] => recordingEvents(readRecording(path.resolve(__dirname, '..', '..', 'recordings', 'qemu10-fs-migration.vhsrec')).records);
  const migrationRules = (evs: ProxyEvent[]): string[] =>
    checkEvents(evs)
      .filter((f) => f.rule.id !== 'VU010')
      .map((f) => `${f.rule.id} ${f.session}`);

  it('saves on the source and loads on the destination, each transfer checked', () => {
    const evs = events();
    const states = evs.filter(
      (e): e is Extract<ProxyEvent, { type: 'message' }> => e.type === 'message' && e.decoded.name === 'SET_DEVICE_STATE_FD' && e.dir === 'F>B',
    );
    expect(states.map((m) => [m.session, (m.decoded.payload as { direction: string }).direction, m.fds[0]?.kind])).toEqual([
      [1, 'save', 'pipe'],
      [2, 'load', 'pipe'],
    ]);
    expect(migrationRules(evs)).toEqual([]);
  });

  it('a transfer the source never checked is flagged', () => {
    const evs = events().filter((e) => !(e.type === 'message' && e.session === 1 && e.decoded.name === 'CHECK_DEVICE_STATE'));
    expect(migrationRules(evs)).toEqual(['VU024 1']);
  });
});

describe('VU016 ambiguous-request, decided by negotiation', () => {
  it('does not flag a standard GET_SHMEM_CONFIG once SHMEM is negotiated, and does flag it before', () => {
    const negotiated = { postcopyListening: false, protocolFeatures: 1n << 22n };
    const at = (n: typeof negotiated | undefined): ProxyEvent[] => {
      const raw = encodeMessage(Request.GET_SHMEM_CONFIG, 1);
      return [
        { type: 'session-start', ts: 0n, session: 1, listenPath: '/l', connectPath: '/c', frontend: 'auto', interpose: true, peers: {} },
        {
          type: 'message',
          ts: 1000n,
          session: 1,
          channel: 'main',
          sender: 'frontend',
          dir: 'F>B',
          raw,
          decoded: decodeMessage('main', raw, 'frontend', { negotiation: n }),
          fds: [],
          findings: [],
        },
      ];
    };
    expect(checkEvents(at(negotiated)).map((f) => f.rule.id)).not.toContain('VU016');
    expect(checkEvents(at(undefined)).map((f) => f.rule.id)).toContain('VU016');
  });
});

describe('the rules at their edges', () => {
  it('VU043: the same handshake after a reconnect, a session after a front-end left, and LOG_ALL are no finding', () => {
    const again = (firstBy: 'frontend' | 'backend', features = PF | V1) => [
      ...new Session(1).handshake().end(firstBy),
      ...new Session(2, 1_000_000n).handshake(features).end(),
    ];
    expect(ids(again('backend'))).toEqual([]);
    expect(ids(again('frontend', PF | V1 | PACKED))).toEqual([]);
    // a migration's LOG_ALL is not the device changing
    const logging = [
      ...new Session(1)
        .handshake()
        .fe(Request.SET_LOG_BASE, logBase(4096n), { fds: 1 })
        .fe(Request.SET_FEATURES, u64(PF | V1 | LOG_ALL))
        .end('backend'),
      ...new Session(2, 1_000_000n).handshake().end(),
    ];
    expect(ids(logging)).toEqual([]);
    // only the session right after the end is a reconnect; a later SET_FEATURES of it is not compared
    const later = [
      ...new Session(1).handshake().end('backend'),
      ...new Session(2, 1_000_000n)
        .handshake()
        .fe(Request.SET_FEATURES, u64(PF | V1 | PACKED))
        .end(),
      ...new Session(3, 2_000_000n).handshake(PF | V1 | PACKED).end(),
    ];
    expect(ids(later)).toEqual([]);
  });

  it('VU041: progress (a used-index change, a call), a stop in time, RX buffers offered and a short session are no stall', () => {
    const kicked = () => new Session().handshake().vring(0).ring(0, 'kick', 3, 1);
    expect(ids(kicked().ring(0, 'call', 3, 2).wait(6_000_000_000n).end())).toEqual([]);
    expect(ids(kicked().call(0).wait(6_000_000_000n).end())).toEqual([]);
    expect(
      ids(kicked().fe(Request.GET_VRING_BASE, u32s(0, 0)).ring(0, 'base', 3, 1).be(Request.GET_VRING_BASE, u32s(0, 1)).wait(6_000_000_000n).end()),
    ).toEqual([]);
    expect(ids(new Session().handshake().vring(0).ring(0, 'kick', 3, 1, false).wait(6_000_000_000n).end())).toEqual([]);
    expect(ids(kicked().wait(4_000_000_000n).end())).toEqual([]);
    // a stall is told once, however often the driver kicks into it; progress, then a new stall, is told again
    const stalls = kicked().wait(6_000_000_000n).ring(0, 'kick', 4, 1).wait(6_000_000_000n).ring(0, 'kick', 5, 1).wait(6_000_000_000n);
    expect(checkEvents(stalls.end()).filter((x) => x.rule.id === 'VU041')).toHaveLength(1);
    const again = kicked().wait(6_000_000_000n).ring(0, 'call', 4, 2).ring(0, 'kick', 5, 2).wait(6_000_000_000n).end();
    expect(
      checkEvents(again)
        .filter((x) => x.rule.id === 'VU041')
        .map((x) => x.detail.split(' and ')[0]),
    ).toEqual(['vring 0: a kick made requests available (avail idx 3, used idx 1)', 'vring 0: a kick made requests available (avail idx 5, used idx 2)']);
    // a second kick while the first waits keeps the first one's time; a later event judges it
    const f = checkEvents(kicked().wait(3_000_000_000n).ring(0, 'kick', 4, 1).wait(3_000_000_000n).ring(0, 'kick', 5, 1).end());
    expect(f.map((x) => `${x.rule.id} ${x.detail}`)).toEqual([
      'VU041 vring 0: a kick made requests available (avail idx 3, used idx 1) and the proxy saw no progress on the ring (no call, no used-index change) for 6.0 s',
    ]);
  });

  it('VU041 names a LOG_ALL-only SET_FEATURES before the stall (rust-vmm/vhost 7f326dd), and fires live from tick()', () => {
    const s = new Session()
      .handshake()
      .vring(0)
      .fe(Request.SET_FEATURES, u64(PF | V1 | LOG_ALL))
      .ring(0, 'kick', 1, 0);
    const c = new Checker();
    for (const e of s.events) c.onEvent(e);
    const kickTs = s.events.at(-1)!.ts;
    expect(c.tick(kickTs + 4_000_000_000n)).toEqual([]);
    expect(c.tick(kickTs + 6_000_000_000n).map((f) => `${f.rule.id} ${f.detail}`)).toEqual([
      'VU041 vring 0: a kick made requests available (avail idx 1, used idx 0) and the proxy saw no progress on the ring (no call, no used-index change) for 6.0 s; it came after SET_FEATURES (message #15) only turned LOG_ALL on: a back-end that disables its rings on every SET_FEATURES stops serving here (rust-vmm/vhost 7f326dd)',
    ]);
    expect(c.tick(kickTs + 9_000_000_000n)).toEqual([]); // once
  });

  it('VU042: a ring set up again starts over; a wrap of the index is no regression; packed rings are not compared', () => {
    expect(ids(new Session().handshake().vring(0).ring(0, 'call', 0, 5).fe(Request.SET_VRING_BASE, u32s(0, 0)).ring(0, 'call', 0, 1).end())).toEqual([]);
    expect(ids(new Session().handshake().vring(0).ring(0, 'call', 0, 65535).ring(0, 'call', 0, 2).end())).toEqual([]);
    const packed = new Session().handshake().vring(0).ring(0, 'call', 0, 5);
    packed.ring(0, 'call', 0, 3);
    (packed.events.at(-1) as { snapshot: { packed: boolean } }).snapshot.packed = true;
    expect(ids(packed.end())).toEqual([]);
  });

  it('VU039 stays quiet for a call on the replaced fd before the back-end answered, or within the margin of its answer', () => {
    const swap = () => new Session().handshake().vring(0).fe(Request.SET_VRING_CALL, u64(0n), { fds: 1 }).fe(Request.SET_VRING_CALL, u64(0n), { fds: 1 });
    expect(ids(swap().staleCall(0).fe(Request.GET_STATUS).be(Request.GET_STATUS, u64(0xfn)).end())).toEqual([]);
    expect(ids(swap().fe(Request.GET_STATUS).be(Request.GET_STATUS, u64(0xfn)).wait(10_000_000n).staleCall(0).end())).toEqual([]);
    // a call on the current fd is no finding, however late; nor one on another vring's replaced fd
    expect(ids(swap().fe(Request.GET_STATUS).be(Request.GET_STATUS, u64(0xfn)).wait(30_000_000n).call(0).staleCall(1).end())).toEqual([]);
    // an answer to a request sent before the swap does not count
    const before = new Session().handshake().vring(0).fe(Request.SET_VRING_CALL, u64(0n), { fds: 1 }).fe(Request.GET_STATUS).be(Request.GET_STATUS, u64(0xfn));
    expect(ids(before.fe(Request.SET_VRING_CALL, u64(0n), { fds: 1 }).wait(30_000_000n).staleCall(0).end())).toEqual([]);
  });

  it('VU035, VU036, VU038: quiet while a ring runs, when one side answers in time, for the owner', () => {
    const protocol = REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | CONFIG | SHARED_OBJECT;
    const running = new Session()
      .handshake(PF | V1, protocol)
      .vring(0)
      .vring(1)
      .fe(Request.GET_VRING_BASE, u32s(0, 0))
      .be(Request.GET_VRING_BASE, u32s(0, 0));
    expect(ids(running.be(BackendRequest.CONFIG_CHANGE_MSG, undefined, { channel: 'backend', flags: 1 }).end())).toEqual([]);
    const answered = new Session()
      .handshake(PF | V1, protocol)
      .fe(Request.SET_VRING_NUM, u32s(0, 256), { flags: 9 })
      .be(BackendRequest.CONFIG_CHANGE_MSG, undefined, { channel: 'backend', flags: 9 })
      .wait(1_000_000_000n)
      .fe(BackendRequest.CONFIG_CHANGE_MSG, u64(0n), { channel: 'backend', flags: 5 })
      .wait(6_000_000_000n)
      .be(Request.SET_VRING_NUM, u64(0n));
    expect(ids(answered.end())).toEqual(['VU003 missing-reply']); // slow, but not blocked on the back-end
    const owner = new Session().handshake(PF | V1, protocol).be(BackendRequest.SHARED_OBJECT_ADD, UUID, { channel: 'backend', flags: 1 });
    expect(ids(owner.be(BackendRequest.SHARED_OBJECT_REMOVE, UUID, { channel: 'backend', flags: 1 }).end())).toEqual([]);
  });

  it('VU032 stays quiet once the feature is negotiated, and for a recording that starts after the handshake', () => {
    expect(
      ids(
        new Session()
          .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | 1n)
          .fe(Request.GET_QUEUE_NUM)
          .be(Request.GET_QUEUE_NUM, u64(1n))
          .end(),
      ),
    ).toEqual([]);
    expect(ids(new Session().fe(Request.GET_QUEUE_NUM).be(Request.GET_QUEUE_NUM, u64(1n)).end())).toEqual([]);
    expect(ids(new Session().handshake(PF | V1, REPLY_ACK | (1n << 14n) | BACKEND_REQ).end())).toEqual([]); // INBAND with both it needs
  });

  it('VU037: an unmap of what was mapped, a map after it, whole pages within the region pass', () => {
    const map = (offset: bigint, len: bigint) =>
      [BackendRequest.SHMEM_MAP, shmemMapping(0, offset, len), { channel: 'backend' as const, flags: 1, fds: 1 }] as const;
    const s = new Session()
      .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | SHMEM)
      .fe(Request.GET_SHMEM_CONFIG)
      .be(Request.GET_SHMEM_CONFIG, shmemConfig(0x10000n))
      .be(...map(0n, 0x8000n))
      .be(...map(0x8000n, 0x8000n))
      .be(BackendRequest.SHMEM_UNMAP, shmemMapping(0, 0n, 0x8000n), { channel: 'backend', flags: 1 })
      .be(...map(0n, 0x4000n));
    expect(ids(s.end())).toEqual([]);
    const bad = new Session()
      .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | SHMEM)
      .fe(Request.GET_SHMEM_CONFIG)
      .be(Request.GET_SHMEM_CONFIG, shmemConfig(0x10000n))
      .be(...map(0x800n, 0x1000n))
      .be(...map(0x1000n, 0x1000n))
      .be(BackendRequest.SHMEM_UNMAP, shmemMapping(0, 0x1000n, 0x800n), { channel: 'backend', flags: 1 })
      .be(BackendRequest.SHMEM_MAP, shmemMapping(3, 0n, 0x1000n), { channel: 'backend', flags: 1, fds: 1 });
    expect(checkEvents(bad.end()).map((f) => f.detail)).toEqual([
      'SHMEM_MAP shmid 0 [0x800, 0x1800) is not a whole number of 4096-byte pages',
      'SHMEM_MAP shmid 0 [0x1000, 0x2000) overlaps shmid 0 [0x800, 0x1800), not unmapped first',
      'SHMEM_UNMAP shmid 0 [0x1000, 0x1800) is not one earlier SHMEM_MAP',
      'SHMEM_MAP shmid 3 [0x0, 0x1000): GET_SHMEM_CONFIG gave no region 3',
    ]);
  });

  const found = (events: ProxyEvent[], timeout?: bigint): string[] => checkEvents(events, timeout).map((f) => `${f.rule.id} ${f.at}: ${f.detail}`);
  const ring = (i: number, desc: bigint) => vringAddr(i, desc, desc + 0x2000n, desc + 0x1000n);

  it('a reply exactly at the timeout is in time; a nanosecond later it is missing', () => {
    const at = (ns: bigint) =>
      new Session()
        .fe(Request.GET_FEATURES)
        .wait(ns - 1000n)
        .be(Request.GET_FEATURES, u64(PF))
        .end();
    expect(found(at(5_000_000_000n), 5_000_000_000n)).toEqual([]);
    expect(found(at(5_000_000_001n), 5_000_000_000n)).toEqual(['VU003 B>F GET_FEATURES reply: GET_FEATURES answered after 5000.000001 ms']);
  });

  it('during a migration, a reply exactly at the downtime limit is in time', () => {
    const at = (ns: bigint) =>
      new Session()
        .handshake(PF | V1 | LOG_ALL)
        .fe(Request.SET_LOG_BASE, logBase(32n), { fds: 1 })
        .vring(0)
        .fe(Request.GET_VRING_BASE, u32s(0, 0))
        .wait(ns - 1000n)
        .be(Request.GET_VRING_BASE, u32s(0, 0))
        .end();
    expect(found(at(300_000_000n)).filter((f) => f.startsWith('VU025'))).toEqual([]);
    expect(found(at(300_000_001n)).filter((f) => f.startsWith('VU025'))).toHaveLength(1);
  });

  it('a device-state transfer exactly at the limit is in time; only hold-state rules are named as its cause', () => {
    expect(found(new Session().stateTransfer('save', 300).end())).toEqual([]);
    const s = new Session();
    s.events.push({ type: 'fault', ts: 1n, session: 1, rule: 'd1', text: 'delay GET_FEATURES ms=1', action: 'delay', detail: 'delayed' });
    expect(found(s.stateTransfer('load', 400, { rule: 'h1', ms: 350 }).end())).toEqual([
      "VU026 device state load: the load of the device state (35 bytes through the proxy's pipe) took 400 ms (QEMU's default downtime limit: 300 ms); fault rule h1 held it 350 ms",
    ]);
  });

  it('a request never answered before the session ended', () => {
    expect(found(new Session().fe(Request.GET_FEATURES).end())).toEqual([
      'VU003 F>B GET_FEATURES: GET_FEATURES (main channel) was never answered before the session ended',
    ]);
  });

  it('protocol features set that were never offered', () => {
    const s = new Session()
      .fe(Request.GET_FEATURES)
      .be(Request.GET_FEATURES, u64(PF | V1))
      .fe(Request.GET_PROTOCOL_FEATURES)
      .be(Request.GET_PROTOCOL_FEATURES, u64(REPLY_ACK))
      .fe(Request.SET_PROTOCOL_FEATURES, u64(REPLY_ACK | (1n << 9n)))
      .end();
    expect(found(s)).toEqual(['VU011 F>B SET_PROTOCOL_FEATURES: SET_PROTOCOL_FEATURES sets 0x200 that GET_PROTOCOL_FEATURES never offered']);
  });

  it('a memory table at its slot limit passes; one more region does not (GET_MAX_MEM_SLOTS, else 8)', () => {
    const regions = (n: number) => Array.from({ length: n }, (_, i) => region(BigInt(i) << 20n, 0x100000n, 0x7f0000000000n + (BigInt(i) << 20n)));
    const withSlots = (n: number) =>
      new Session()
        .handshake()
        .fe(Request.SET_MEM_TABLE, memTable(...regions(n)), { fds: n })
        .end();
    expect(found(withSlots(2))).toEqual([]);
    expect(found(withSlots(3))).toEqual(['VU012 F>B SET_MEM_TABLE: SET_MEM_TABLE with 3 regions, at most 2']);
    const plain = (n: number) => new Session().fe(Request.SET_MEM_TABLE, memTable(...regions(n)), { fds: n }).end();
    expect(found(plain(8))).toEqual([]);
    expect(found(plain(9))).toEqual([
      'VU040 F>B SET_MEM_TABLE: 9 fds, no message carries more than 8',
      'VU012 F>B SET_MEM_TABLE: SET_MEM_TABLE with 9 regions, at most 8',
    ]);
  });

  it('REM_MEM_REG takes its region away (rings there are outside), and only the one that matches', () => {
    const other = region(0x100000n, 0x100000n, 0x7f1000000000n);
    const base = () => new Session().handshake().fe(Request.ADD_MEM_REG, Buffer.concat([u64(0n), other]), { fds: 1 });
    expect(found(base().fe(Request.SET_VRING_ADDR, ring(0, 0x7f1000001000n)).end())).toEqual([]);
    const removed = base()
      .fe(Request.REM_MEM_REG, Buffer.concat([u64(0n), other]))
      .fe(Request.SET_VRING_ADDR, ring(0, 0x7f1000001000n))
      .end();
    expect(found(removed).map((f) => f.split(':')[0])).toEqual(['VU009 F>B SET_VRING_ADDR', 'VU009 F>B SET_VRING_ADDR', 'VU009 F>B SET_VRING_ADDR']);
    const elsewhere = region(0x100000n, 0x100000n, 0x7f2000000000n); // same guest range, another mapping: not the region added
    const kept = base()
      .fe(Request.REM_MEM_REG, Buffer.concat([u64(0n), elsewhere]))
      .fe(Request.SET_VRING_ADDR, ring(0, 0x7f1000001000n))
      .end();
    expect(found(kept)).toEqual([]);
  });

  it('ring addresses at the edges of a region; none checked under ACCESS_PLATFORM (IOVAs)', () => {
    const at = (desc: bigint, features = PF | V1) =>
      new Session()
        .handshake(features)
        .fe(Request.SET_VRING_ADDR, vringAddr(0, desc, 0x7f0000002000n, 0x7f0000001000n))
        .end();
    expect(found(at(0x7f0000000000n))).toEqual([]);
    expect(found(at(0x7f00000fffffn))).toEqual([]);
    expect(found(at(0x7f0000100000n))).toEqual(['VU009 F>B SET_VRING_ADDR: vring 0 desc=0x7f0000100000 is in no memory region']);
    expect(found(at(0x7effffffffffn))).toEqual(['VU009 F>B SET_VRING_ADDR: vring 0 desc=0x7effffffffff is in no memory region']);
    expect(found(at(0x100n, PF | V1 | (1n << 33n))).filter((f) => f.startsWith('VU009'))).toEqual([]); // (the handshake did not offer ACCESS_PLATFORM: VU011)
  });

  it('SET_INFLIGHT_FD after a SET_VRING_BASE is in order', () => {
    expect(
      found(
        new Session()
          .handshake(PF | V1, INFLIGHT)
          .vring(0)
          .fe(Request.SET_INFLIGHT_FD, Buffer.alloc(24), { fds: 1 })
          .end(),
      ),
    ).toEqual([]);
  });

  it('a packed ring: its base may use bits 16-31, and only a split layout is flagged', () => {
    const q = 256n;
    const layout = (avail: bigint, used: bigint) =>
      new Session()
        .handshake(PF | V1 | PACKED)
        .fe(Request.SET_VRING_NUM, u32s(0, 256))
        .fe(Request.SET_VRING_BASE, u32s(0, 0x80008000))
        .fe(Request.SET_VRING_ADDR, vringAddr(0, 0x7f0000001000n, used, avail))
        .end();
    const desc = 0x7f0000001000n;
    expect(found(layout(desc + 16n * q, desc + 16n * q + 6n + 2n * q))).toEqual([
      'VU013 F>B SET_VRING_ADDR: RING_PACKED negotiated but vring 0 is laid out as a split ring (avail ring after the descriptors, used ring after it)',
    ]);
    expect(found(layout(desc + 16n * q, desc + 16n * q + 5n + 2n * q))).toEqual([]); // too close for a split avail ring
    expect(found(layout(desc + 16n * q + 8n, desc + 16n * q + 0x1000n))).toEqual([]); // not right after the descriptors
  });

  it('a ring disabled again: its next kick is before enable', () => {
    const s = new Session().handshake().vring(0).fe(Request.SET_VRING_ENABLE, u32s(0, 0)).kick(0).end();
    expect(found(s)).toEqual(['VU010 kick vring 0: vring 0 kicked before SET_VRING_ENABLE(0, 1)']);
  });

  it('a vring index the daemon does not follow is never enabled (its kicks stay before enable)', () => {
    const s = new Session().handshake().fe(Request.SET_VRING_ENABLE, u32s(1024, 1)).kick(1024).end();
    expect(found(s)).toEqual(['VU010 kick vring 1024: vring 1024 kicked before SET_VRING_ENABLE(1024, 1)']);
  });

  it('rings without a kick fd at DRIVER_OK: each once, in vring order, pointing at the message', () => {
    const s = new Session()
      .handshake()
      .fe(Request.SET_VRING_ADDR, ring(3, 0x7f0000001000n))
      .fe(Request.SET_VRING_ADDR, ring(1, 0x7f0000001000n))
      .fe(Request.SET_STATUS, u64(0xfn))
      .fe(Request.SET_STATUS, u64(0xfn))
      .end();
    const f = checkEvents(s).filter((x) => x.rule.id === 'VU018');
    expect(f.map((x) => [x.message, x.at, x.detail])).toEqual([
      [12, 'F>B SET_STATUS', 'vring 1 was set up (SET_VRING_ADDR) but had no kick fd when the driver set DRIVER_OK: the front-end never sent one'],
      [12, 'F>B SET_STATUS', 'vring 3 was set up (SET_VRING_ADDR) but had no kick fd when the driver set DRIVER_OK: the front-end never sent one'],
    ]);
  });

  it('a ring snapshot that is not the base one, or packed, or unreadable, is not a base mismatch', () => {
    const snap = (over: Record<string, unknown>): ProxyEvent =>
      ({
        type: 'ring',
        ts: 5n,
        session: 1,
        vring: 0,
        base: 0,
        raw: Buffer.alloc(0),
        snapshot: { kind: 'base', ts: 5n, usedIdx: 40, availIdx: 40, packed: false, ...over },
      }) as unknown as ProxyEvent;
    const with_ = (over: Record<string, unknown>) => found([...new Session().events, snap(over)]);
    expect(with_({})).toHaveLength(1);
    expect(with_({ kind: 'kick' })).toEqual([]);
    expect(with_({ packed: true })).toEqual([]);
    expect(with_({ error: 'unmapped' })).toEqual([]);
    expect(with_({ usedIdx: 0, availIdx: 0 })).toEqual([]);
  });
});

describe('the migration rules at their edges', () => {
  const found = (events: ProxyEvent[]): string[] => checkEvents(events).map((f) => `${f.rule.id} ${f.at}: ${f.detail}`);
  const stopped = (o: { base?: number; calls?: boolean; answer: number; features?: bigint }) => {
    const s = new Session().handshake(o.features ?? PF | V1).vring(0, { base: o.base ?? 0 });
    if (o.calls) s.call(0);
    return s.fe(Request.GET_VRING_BASE, u32s(0, 0)).be(Request.GET_VRING_BASE, u32s(0, o.answer)).end();
  };

  it('VU022 says why a 0 is wrong: the base the ring was set up from, or its calls; packed rings and other answers pass', () => {
    expect(found(stopped({ base: 9, answer: 0 }))).toEqual([
      'VU022 B>F GET_VRING_BASE reply: vring 0: GET_VRING_BASE answered 0, but the ring was set up from base 9',
    ]);
    expect(found(stopped({ calls: true, answer: 0 }))).toEqual([
      'VU022 B>F GET_VRING_BASE reply: vring 0: GET_VRING_BASE answered 0, but the ring had 1 call(s) from the back-end since it started',
    ]);
    expect(found(stopped({ base: 9, answer: 9 }))).toEqual([]);
    expect(found(stopped({ base: 9, answer: 0x10000 }))).toEqual([
      'VU022 B>F GET_VRING_BASE reply: vring 0: GET_VRING_BASE answered 0, but the ring was set up from base 9',
    ]);
    expect(found(stopped({ base: 0x8009, answer: 0, features: PF | V1 | PACKED })).filter((f) => f.startsWith('VU022'))).toEqual([]);
  });

  it('VU021: the log needs one bit per page up to the highest region end, rounded up to a byte', () => {
    const log = (bytes: bigint, ...regions: Buffer[]) =>
      new Session()
        .fe(Request.SET_MEM_TABLE, memTable(...regions), { fds: regions.length })
        .fe(Request.SET_LOG_BASE, logBase(bytes), { fds: 1 })
        .end();
    const low = region(0n, 0x100000n, 0x7f0000000000n);
    const high = region(0x100000n, 0x1000n, 0x7f1000000000n); // ends at page 257
    expect(found(log(33n, high, low))).toEqual([]);
    expect(found(log(32n, high, low))).toEqual([
      'VU021 F>B SET_LOG_BASE: a 32-byte log for guest memory up to 0x101000: one bit per 4 KiB page needs 33 bytes',
    ]);
    expect(found(log(32n, low))).toEqual([]);
    expect(found(new Session().fe(Request.SET_LOG_BASE, logBase(0n), { fds: 1 }).end())).toEqual([]); // no memory yet: nothing to cover
  });

  it('VU020 at the end of a session that acked LOG_ALL and never stopped a ring, and once per session', () => {
    expect(found(new Session().handshake(PF | V1 | LOG_ALL).end())).toEqual([
      'VU020 end of session: LOG_ALL acked and no SET_LOG_BASE before the session ended',
    ]);
    const twice = new Session()
      .handshake(PF | V1 | LOG_ALL)
      .vring(0)
      .vring(1)
      .fe(Request.GET_VRING_BASE, u32s(0, 0))
      .be(Request.GET_VRING_BASE, u32s(0, 0))
      .fe(Request.GET_VRING_BASE, u32s(1, 0))
      .be(Request.GET_VRING_BASE, u32s(1, 0))
      .end();
    expect(found(twice)).toEqual(['VU020 F>B GET_VRING_BASE: vring 0 stopped with LOG_ALL acked and no SET_LOG_BASE in this session']);
  });

  it('VU024 when a second transfer starts before the first was checked', () => {
    const s = new Session()
      .handshake(PF | V1, DEVICE_STATE)
      .fe(Request.SET_DEVICE_STATE_FD, u32s(0, 0), { fds: 1 })
      .be(Request.SET_DEVICE_STATE_FD, u64(0n))
      .fe(Request.SET_DEVICE_STATE_FD, u32s(0, 0), { fds: 1 })
      .be(Request.SET_DEVICE_STATE_FD, u64(0n))
      .fe(Request.CHECK_DEVICE_STATE)
      .be(Request.CHECK_DEVICE_STATE, u64(0n))
      .end();
    expect(found(s)).toEqual(['VU024 F>B SET_DEVICE_STATE_FD: a new SET_DEVICE_STATE_FD, and the transfer started by message #10 was never checked']);
  });

  it('VU023 only across a migration: a stop without dirty logging, or a restart in the same session, is not one', () => {
    const noLog = new Session(1, 0n).handshake().vring(0).fe(Request.GET_VRING_BASE, u32s(0, 0)).be(Request.GET_VRING_BASE, u32s(0, 7));
    const next = new Session(2, 500_000n).handshake().wait(2_000_000n).vring(0, { base: 5 });
    expect(found([...noLog.end(), ...next.end()].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0)))).toEqual([]);
    const same = new Session()
      .handshake(PF | V1 | LOG_ALL)
      .fe(Request.SET_LOG_BASE, logBase(32n), { fds: 1 })
      .vring(0)
      .fe(Request.GET_VRING_BASE, u32s(0, 0))
      .be(Request.GET_VRING_BASE, u32s(0, 7))
      .vring(0, { base: 5 })
      .end();
    expect(found(same)).toEqual([]);
  });
});

describe('findings that name the fault rule behind them', () => {
  const found = (events: ProxyEvent[]): string[] => checkEvents(events).map((f) => `${f.rule.id} ${f.at}: ${f.detail}`);
  /** the events with the message named `name` (the n-th, from 0) given what the proxy did to it */
  const did = (events: ProxyEvent[], name: string, extra: Record<string, unknown>, n = 0): ProxyEvent[] => {
    const ms = events.filter((e) => e.type === 'message' && e.decoded.name === name);
    Object.assign(ms[n]!, extra);
    return events;
  };

  it('a request a rule dropped: no reply came, and the rule is why', () => {
    const s = new Session().fe(Request.GET_FEATURES).fe(Request.SET_OWNER).end();
    expect(found(did(s, 'GET_FEATURES', { undelivered: 'dropped', faults: ['r1'] }))).toEqual([
      'VU003 F>B GET_FEATURES: GET_FEATURES got no reply before the next request (SET_OWNER): fault rule r1 dropped the request',
    ]);
    const anonymous = new Session().fe(Request.GET_FEATURES).fe(Request.SET_OWNER).end();
    expect(found(did(anonymous, 'GET_FEATURES', { undelivered: 'dropped' }))[0]).toMatch(/: a fault rule dropped the request$/);
  });

  it('a reply a rule dropped: still waited for, and the rule named at the end', () => {
    const s = new Session().fe(Request.GET_FEATURES).be(Request.GET_FEATURES, u64(PF)).end();
    expect(found(did(s, 'GET_FEATURES', { undelivered: 'dropped', faults: ['r2', 'r3'] }, 1))).toEqual([
      'VU003 F>B GET_FEATURES: GET_FEATURES (main channel) was never answered before the session ended: fault rule r2, r3 dropped the reply',
    ]);
  });

  it('a reply a rule held past the timeout: late, and held by the rule', () => {
    const s = new Session().fe(Request.GET_FEATURES).wait(6_000_000_000n).be(Request.GET_FEATURES, u64(PF)).end();
    expect(found(did(s, 'GET_FEATURES', { heldNs: 5_500_000_000n, faults: ['h1'] }, 1))).toEqual([
      'VU003 B>F GET_FEATURES reply: GET_FEATURES answered after 6000.001 ms; fault rule h1 held it 5500 ms',
    ]);
  });

  it('a kick fd a rule dropped: the ring had none at DRIVER_OK, and the rule with its text is why', () => {
    const s = new Session()
      .handshake()
      .fe(Request.SET_VRING_NUM, u32s(0, 256))
      .fe(Request.SET_VRING_ADDR, vringAddr(0, 0x7f0000001000n, 0x7f0000003000n, 0x7f0000002000n))
      .fe(Request.SET_VRING_KICK, u64(0n), { fds: 1 })
      .fe(Request.SET_STATUS, u64(0xfn))
      .end();
    const events = did(s, 'SET_VRING_KICK', { undelivered: 'dropped', faults: ['k1', 'k2'] });
    events.push({ type: 'fault', ts: 1n, session: 1, rule: 'k1', text: 'drop SET_VRING_KICK', action: 'drop', detail: 'dropped' });
    events.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    expect(found(events)).toEqual([
      "VU018 F>B SET_STATUS: vring 0 was set up (SET_VRING_ADDR) but had no kick fd when the driver set DRIVER_OK: SET_VRING_KICK for vring 0 was dropped by the proxy's fault rule k1 (drop SET_VRING_KICK), fault rule k2",
    ]);
  });
});
