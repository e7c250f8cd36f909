/**
 * Sessions as the proxy would have seen them, built message by message for the checker's tests
 * (test/unit/check.test.ts) and the field cases (test/field/): a QEMU-like handshake, vrings,
 * kicks and calls, ring snapshots, device-state transfers.
 */
import { applyMainMessage, decodeMessage, encodeMessage, HEADER_SIZE, newNegotiation, Request, type ChannelKind } from '../src/protocol';
import type { FdDescription, ProxyEvent, SessionEndEvent } from '../src/events/events';

export const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};
export const u64s = (...v: bigint[]): Buffer => Buffer.concat(v.map(u64));
export const u32s = (...v: number[]): Buffer =>
  Buffer.concat(
    v.map((x) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(x);
      return b;
    }),
  );
export const region = (gpa: bigint, size: bigint, uaddr: bigint): Buffer => Buffer.concat([u64(gpa), u64(size), u64(uaddr), u64(0n)]);
export const memTable = (...regions: Buffer[]): Buffer => Buffer.concat([u32s(regions.length, 0), ...regions]);
export const vringAddr = (i: number, desc: bigint, used: bigint, avail: bigint): Buffer =>
  Buffer.concat([u32s(i, 0), u64(desc), u64(used), u64(avail), u64(0n)]);

export const PF = 1n << 30n;
export const V1 = 1n << 32n;
export const PACKED = 1n << 34n;
export const REPLY_ACK = 1n << 3n;
export const LOG_ALL = 1n << 26n;
export const CONFIGURE_MEM_SLOTS = 1n << 15n;
export const STATUS = 1n << 16n;
export const INFLIGHT = REPLY_ACK | CONFIGURE_MEM_SLOTS | (1n << 12n);
export const DEVICE_STATE = REPLY_ACK | (1n << 15n) | (1n << 19n);
export const BACKEND_REQ = 1n << 5n;
export const CONFIG = 1n << 9n;
export const SHARED_OBJECT = 1n << 18n;
export const SHMEM = 1n << 22n;
export const UUID = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
/** GET_SHMEM_CONFIG's reply: one region of `size` bytes as shmid 0 */
export const shmemConfig = (size: bigint): Buffer => {
  const b = Buffer.alloc(2056);
  b.writeUInt32LE(1, 0);
  b.writeBigUInt64LE(size, 8);
  return b;
};
/** A SHMEM_MAP (or UNMAP) payload: shmid, fd offset, offset in the region, length, flags. */
export const shmemMapping = (shmid: number, offset: bigint, len: bigint): Buffer =>
  Buffer.concat([Buffer.from([shmid, 0, 0, 0, 0, 0, 0, 0]), u64(0n), u64(offset), u64(len), u64(0n)]);
/** SET_LOG_BASE: mmap_size, mmap_offset */
/** a GET_CONFIG / SET_CONFIG payload: {offset, size, flags} and `size` bytes of config */
export const config = (offset: number, size: number): Buffer => Buffer.concat([u32s(offset, size, 0), Buffer.alloc(size)]);
export const logBase = (bytes: bigint): Buffer => Buffer.concat([u64(bytes), u64(0n)]);

/** A session's start, its peers and paths as no test here cares. */
export const sessionStart = (session: number, ts = 0n): ProxyEvent => ({
  type: 'session-start',
  ts,
  session,
  listenPath: '/l',
  connectPath: '/c',
  frontend: 'auto',
  interpose: true,
  peers: {},
});

/** A session's end, with no traffic: why, and who ended it when a side did. */
export const sessionEnd = (session: number, reason = 'the frontend closed the connection', by?: SessionEndEvent['by'], ts = 0n): ProxyEvent => ({
  type: 'session-end',
  ts,
  session,
  reason,
  ...(by ? { by } : {}),
  messages: { 'F>B': 0, 'B>F': 0 },
  fdsForwarded: 0,
  vrings: [],
  relayPairs: [],
});

/** Builds a session as the proxy would have seen it. */
export class Session {
  events: ProxyEvent[];
  private t: bigint;
  private readonly negotiation = newNegotiation();
  constructor(
    readonly id = 1,
    start = 0n,
  ) {
    this.t = start;
    this.events = [{ type: 'session-start', ts: start, session: id, listenPath: '/l', connectPath: '/c', frontend: 'auto', interpose: true, peers: {} }];
  }
  /** `fdKinds`: what /proc said of each fd, slot by slot (default: a 1 MiB memfd, QEMU's guest RAM in small) */
  private push(dir: 'F>B' | 'B>F', raw: Buffer, fds = 0, channel: ChannelKind = 'main', fdsAt = 0, fdKinds: Partial<FdDescription>[] = []): this {
    this.t += 1000n;
    const fdDesc: FdDescription[] = Array.from({ length: fds }, (_, slot) => ({ slot, kind: 'memfd', size: 1 << 20, ...fdKinds[slot] }));
    // decoded as the proxy decodes: what was negotiated so far decides an ambiguous code's meaning
    const decoded = decodeMessage(channel, raw, undefined, { negotiation: this.negotiation });
    if (channel === 'main') applyMainMessage(this.negotiation, decoded.request, decoded.flags, raw.subarray(HEADER_SIZE));
    this.events.push({
      type: 'message',
      ts: this.t,
      session: this.id,
      channel,
      sender: dir === 'F>B' ? 'frontend' : 'backend',
      dir,
      raw,
      decoded,
      fds: fdDesc,
      findings: [],
      ...(fdsAt ? { fdsAt } : {}),
    });
    return this;
  }
  /** `fdsAt`: the fds came with that byte of the message, not the header's first */
  fe(
    code: number,
    payload?: Buffer,
    opts: { fds?: number; flags?: number; channel?: ChannelKind; fdsAt?: number; fdKinds?: Partial<FdDescription>[] } = {},
  ): this {
    return this.push('F>B', encodeMessage(code, opts.flags ?? 1, payload), opts.fds, opts.channel, opts.fdsAt, opts.fdKinds);
  }
  be(code: number, payload?: Buffer, opts: { flags?: number; fds?: number; channel?: ChannelKind; fdsAt?: number } = {}): this {
    return this.push('B>F', encodeMessage(code, opts.flags ?? 5, payload), opts.fds, opts.channel, opts.fdsAt);
  }
  kick(vring: number, kind: 'kick' | 'call' = 'kick', replaced?: true): this {
    this.t += 1000n;
    this.events.push({ type: 'notification', ts: this.t, session: this.id, vring, kind, count: 1, ...(replaced ? { replaced } : {}) });
    return this;
  }
  /**
   * what --rings read of vring `vring` at a kick, call or stop; `work`: one chain with a
   * descriptor the device reads (else an RX buffer), at guest-physical `addr`
   */
  ring(vring: number, kind: 'kick' | 'call' | 'base', availIdx: number, usedIdx: number, work = true, addr = 0x1000n): this {
    this.t += 1000n;
    const entries = kind === 'kick' && availIdx !== usedIdx ? [{ head: 0, descs: [{ addr, len: 64, flags: work ? 0 : 2, next: 0 }] }] : [];
    const snapshot = { ts: this.t, pair: 1, ring: vring, kind, packed: false, truncated: false, availIdx, usedIdx, readUs: 1, entries };
    this.events.push({ type: 'ring', ts: this.t, session: this.id, vring, snapshot, raw: Buffer.alloc(0) });
    return this;
  }
  /** a call that came on the fd a later SET_VRING_CALL replaced */
  staleCall(vring: number): this {
    return this.kick(vring, 'call', true);
  }
  call(vring: number): this {
    return this.kick(vring, 'call');
  }
  wait(ns: bigint): this {
    this.t += ns;
    return this;
  }
  /** a device-state transfer through the proxy's pipe that took `ms` (a hold-state rule `held` it) */
  stateTransfer(direction: 'save' | 'load', ms: number, held?: { rule: string; ms: number }): this {
    const startNs = this.t;
    if (held)
      this.events.push({
        type: 'fault',
        ts: startNs,
        session: this.id,
        rule: held.rule,
        text: `hold-state ${direction} ms=${held.ms}`,
        action: 'hold-state',
        detail: `the device-state ${direction} pipe held ${held.ms} ms`,
      });
    this.t += BigInt(ms) * 1_000_000n;
    this.events.push({ type: 'device-state', ts: this.t, session: this.id, direction, startNs, bytes: 35, ...(held ? { heldMs: held.ms } : {}) });
    return this;
  }
  /** what --rings read of the inflight region: one queue per entry of `queues` ({version, descNum, heads in flight}) */
  inflight(when: 'SET_INFLIGHT_FD' | 'session end', queueSize: number, ...queues: { version: number; descNum: number; heads?: number[] }[]): this {
    this.t += 1000n;
    this.events.push({
      type: 'inflight',
      ts: this.t,
      session: this.id,
      when,
      mmapSize: queues.length * 4096,
      numQueues: queues.length,
      queueSize,
      queues: queues.map((q, vring) => ({
        vring,
        features: 0n,
        version: q.version,
        descNum: q.descNum,
        lastBatchHead: 0,
        usedIdx: 0,
        inflight: q.heads ?? [],
        inflightCount: q.heads?.length ?? 0,
      })),
    });
    return this;
  }
  /** a QEMU-like handshake up to the memory table, with REPLY_ACK */
  handshake(features = PF | V1, protocol = REPLY_ACK | CONFIGURE_MEM_SLOTS | STATUS): this {
    return this.fe(Request.GET_FEATURES)
      .be(Request.GET_FEATURES, u64(PF | V1 | PACKED | LOG_ALL))
      .fe(Request.GET_PROTOCOL_FEATURES)
      .be(Request.GET_PROTOCOL_FEATURES, u64(protocol))
      .fe(Request.SET_PROTOCOL_FEATURES, u64(protocol))
      .slots(protocol)
      .fe(Request.SET_FEATURES, u64(features))
      .fe(Request.SET_MEM_TABLE, memTable(region(0n, 0x100000n, 0x7f0000000000n)), { fds: 1, flags: 9 })
      .be(Request.SET_MEM_TABLE, u64(0n));
  }
  /** GET_MAX_MEM_SLOTS (2), as QEMU asks it: only with CONFIGURE_MEM_SLOTS */
  private slots(protocol: bigint): this {
    return protocol & CONFIGURE_MEM_SLOTS ? this.fe(Request.GET_MAX_MEM_SLOTS).be(Request.GET_MAX_MEM_SLOTS, u64(2n)) : this;
  }
  vring(i: number, opts: { enable?: boolean; base?: number } = {}): this {
    this.fe(Request.SET_VRING_NUM, u32s(i, 256))
      .fe(Request.SET_VRING_BASE, u32s(i, opts.base ?? 0))
      .fe(Request.SET_VRING_ADDR, vringAddr(i, 0x7f0000001000n, 0x7f0000003000n, 0x7f0000002000n))
      .fe(Request.SET_VRING_KICK, u64(BigInt(i)), { fds: 1 });
    return opts.enable === false ? this : this.fe(Request.SET_VRING_ENABLE, u32s(i, 1));
  }
  /** `by`: the side that ended it (the back-end: the next session is a reconnect) */
  end(by?: 'frontend' | 'backend'): ProxyEvent[] {
    this.events.push({
      type: 'session-end',
      ts: this.t + 1000n,
      session: this.id,
      reason: by ? `the ${by} closed the connection` : 'end',
      ...(by ? { by } : {}),
      messages: { 'F>B': 0, 'B>F': 0 },
      fdsForwarded: 0,
      vrings: [],
      relayPairs: [],
    });
    return this.events;
  }
}
