/**
 * Synthetic vhost-user peers for the soak and the scale bench: a frontend handshake with a memfd
 * memory table and kick/call eventfds for any number of vrings, and a backend that answers what
 * needs an answer and keeps the eventfds it is given. Real peers prove interop; these drive a
 * daemon with more sessions and vrings than real peers fit on two CPUs.
 */
import { native, type Channel } from '../src/native';
import { encodeMessage, FLAG_NEED_REPLY, Request } from '../src/protocol';

export const u64 = (v: bigint | number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};
const vringState = (index: number, num: number): Buffer => Buffer.from(new Uint32Array([index, num]).buffer);
const UADDR = 0x7f0000000000n;
/** guest memory of a synthetic session: room for 64 vrings of 256 entries at 16 KiB each */
export const SYNTHETIC_MEM = 1 << 20;
const RING_STRIDE = 0x4000n;

export interface Outgoing {
  msg: Buffer;
  fds: number[];
  /** the backend answers it (the frontend counts replies) */
  reply: boolean;
}

/**
 * A frontend's handshake for `vrings` vrings, in QEMU's order. Each eventfd sent is dup'ed first:
 * `kicks` and `calls` are the frontend's own copies (the caller closes them).
 */
export function frontendHandshake(vrings: number): { messages: Outgoing[]; kicks: number[]; calls: number[] } {
  if (vrings < 1 || vrings > 64) throw new Error(`synthetic session: ${vrings} vrings (1..64)`);
  const messages: Outgoing[] = [];
  const send = (msg: Buffer, fds: number[] = [], reply = false): number => messages.push({ msg, fds, reply });
  const kicks: number[] = [];
  const calls: number[] = [];
  send(encodeMessage(Request.GET_FEATURES, 1), [], true);
  send(encodeMessage(Request.GET_PROTOCOL_FEATURES, 1), [], true);
  send(encodeMessage(Request.SET_PROTOCOL_FEATURES, 1, u64(1n << 3n)));
  send(encodeMessage(Request.SET_FEATURES, 1, u64(1n << 32n)));
  const mem = Buffer.concat([u64(1), u64(0), u64(SYNTHETIC_MEM), u64(UADDR), u64(0)]);
  send(encodeMessage(Request.SET_MEM_TABLE, 1, mem), [native.memfdCreate('synthetic', SYNTHETIC_MEM)]);
  for (let v = 0; v < vrings; v++) {
    const ring = UADDR + BigInt(v) * RING_STRIDE;
    send(encodeMessage(Request.SET_VRING_NUM, 1, vringState(v, 256)));
    // desc, then used at +0x2000 and avail at +0x1000 (SET_VRING_ADDR: desc, used, avail, log)
    send(encodeMessage(Request.SET_VRING_ADDR, 1, Buffer.concat([vringState(v, 0), u64(ring), u64(ring + 0x2000n), u64(ring + 0x1000n), u64(0)])));
    send(encodeMessage(Request.SET_VRING_BASE, 1, vringState(v, 0)));
    const k = native.eventfd(0);
    kicks.push(native.dup(k));
    send(encodeMessage(Request.SET_VRING_KICK, 1, u64(v)), [k]);
    const c = native.eventfd(0);
    calls.push(native.dup(c));
    send(encodeMessage(Request.SET_VRING_CALL, 1, u64(v)), [c]);
    send(encodeMessage(Request.SET_VRING_ENABLE, 1, vringState(v, 1)));
  }
  return { messages, kicks, calls };
}

/** What a synthetic backend answers to a request: features with VERSION_1, protocol REPLY_ACK, acks. */
export function backendReply(m: Buffer): Buffer | undefined {
  const code = m.readUInt32LE(0);
  if (code === Request.GET_FEATURES) return encodeMessage(code, 5, u64((1n << 30n) | (1n << 32n)));
  if (code === Request.GET_PROTOCOL_FEATURES) return encodeMessage(code, 5, u64(1n << 3n));
  if ((m.readUInt32LE(4) & FLAG_NEED_REPLY) !== 0) return encodeMessage(code, 5, u64(0));
  return undefined;
}

/** One backend connection: the current kick and call eventfd of each vring, messages counted. */
export interface BackendConn {
  ch: Channel;
  got: number;
  kicks: Map<number, number>;
  calls: Map<number, number>;
  paused: boolean;
}

function dropFds(conn: BackendConn): void {
  for (const f of [...conn.kicks.values(), ...conn.calls.values()]) native.close(f);
  conn.kicks.clear();
  conn.calls.clear();
}

/**
 * A backend listening on `fd`: answers (backendReply), keeps each vring's latest kick and call
 * eventfd (closing the one replaced), and closes every other fd it is sent.
 */
export function syntheticBackend(listenFd: number, onConnection: (c: BackendConn) => void): { close(): void } {
  const conns: BackendConn[] = [];
  const listener = new native.Listener(listenFd, (_e, fd) => {
    if (fd === null) return;
    const conn: BackendConn = { ch: undefined as unknown as Channel, got: 0, kicks: new Map(), calls: new Map(), paused: false };
    conn.ch = new native.Channel(
      fd,
      65536,
      (m, fds) => {
        conn.got++;
        const code = m.readUInt32LE(0);
        const keep = code === Request.SET_VRING_KICK ? conn.kicks : code === Request.SET_VRING_CALL ? conn.calls : undefined;
        if (keep && fds.length === 1) {
          const vring = Number(m.readBigUInt64LE(12) & 0xffn);
          const old = keep.get(vring);
          if (old !== undefined) native.close(old);
          keep.set(vring, fds[0]!);
        } else for (const f of fds) native.close(f);
        const reply = backendReply(m);
        try {
          if (reply) conn.ch.send(reply);
        } catch (err) {
          // the daemon closes a replaced session's backend connection while messages it forwarded
          // before are still being answered (EPIPE): that session is gone, the rest go on
          if (!/EPIPE|ECONNRESET|closed/.test(String(err))) throw err;
        }
      },
      () => dropFds(conn),
    );
    conn.ch.start();
    conns.push(conn);
    onConnection(conn);
  });
  return {
    close(): void {
      listener.close();
      for (const c of conns) {
        c.ch.close();
        dropFds(c);
      }
    },
  };
}
