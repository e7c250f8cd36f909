/**
 * The scripted peers the integration tests talk to, one set for all of them (after rust-vmm's
 * dummy_backend.rs): a back-end that listens and answers what its script says, and a front-end
 * that connects and keeps what it gets. A test says only what its peer does differently.
 */
import * as path from 'node:path';
import { native, type Channel } from '../src/native';
import { encodeMessage, HEADER_SIZE } from '../src/protocol';
import { tmpDir, until } from './helpers';

export { u64 } from '../lab/synthetic-peers';

/** A message a scripted peer got, with its fds (the test's to close) and when. */
export interface Got {
  msg: Buffer;
  code: number;
  flags: number;
  payload: Buffer;
  fds: number[];
  /** bytes of the message that came before its fds (0: with the header's first byte) */
  fdsAt: number;
  at: number;
}

/** One connection of a scripted back-end. */
export interface PeerConn {
  /** 1 for the first connection, 2 for the second, ... */
  readonly n: number;
  readonly ch: Channel;
  /** what it got, in order */
  readonly got: Got[];
  ended: boolean;
  /** sends `msg` (and `fds`, which the channel takes); false when the proxy has closed this connection */
  send(msg: Buffer, fds?: number[]): boolean;
}

/** A back-end's script: called with every message of every connection (the fds are the script's to close or keep). */
export type PeerScript = (got: Got, conn: PeerConn) => void;

export interface ScriptedBackend {
  readonly path: string;
  /** every connection so far, in order */
  readonly conns: PeerConn[];
  /** what every connection got, in the order it came */
  readonly got: Got[];
  /** resolves once `n` connections have come */
  connected(n?: number, timeoutMs?: number): Promise<PeerConn>;
  close(): void;
}

/** A reply (flags 5: version 1, REPLY) to `code` with `payload`. */
export const reply = (code: number, payload: Buffer = Buffer.alloc(0)): Buffer => encodeMessage(code, 5, payload);

function received(msg: Buffer, fds: number[], fdsAt: number): Got {
  return { msg, code: msg.readUInt32LE(0), flags: msg.readUInt32LE(4), payload: msg.subarray(HEADER_SIZE), fds, fdsAt, at: Date.now() };
}

/**
 * A back-end listening at `sock` (or a fresh socket in a temporary directory when `sock` is a
 * bare name): each connection is read, kept in `conns`, and handed to `script`.
 */
export function scriptedBackend(sock: string, script: PeerScript = () => {}, opts: { backlog?: number; maxPayload?: number } = {}): ScriptedBackend {
  const sockPath = sock.includes('/') ? sock : path.join(tmpDir(sock), 'peer.sock');
  const conns: PeerConn[] = [];
  const all: Got[] = [];
  const listener = new native.Listener(native.listenUnix(sockPath, opts.backlog ?? 16, 0o600), (_e, fd) => {
    if (fd === null) return;
    const conn: PeerConn = {
      n: conns.length + 1,
      got: [],
      ended: false,
      ch: new native.Channel(
        fd,
        opts.maxPayload ?? 1 << 20,
        (msg, fds, _ts, fdsAt) => {
          const g = received(msg, fds, fdsAt);
          conn.got.push(g);
          all.push(g);
          script(g, conn);
        },
        () => (conn.ended = true),
      ),
      send(msg, fds = []) {
        try {
          conn.ch.send(msg, fds);
          return true;
        } catch {
          for (const f of fds) native.close(f);
          return false; // the proxy closed this connection
        }
      },
    };
    conns.push(conn);
    conn.ch.start();
  });
  return {
    path: sockPath,
    conns,
    got: all,
    async connected(n = 1, timeoutMs = 5000) {
      await until(() => conns.length >= n, timeoutMs, `backend connection ${n}`);
      return conns[n - 1]!;
    },
    close() {
      listener.close();
      for (const c of conns) c.ch.close();
    },
  };
}

/** A script that answers each request in `answers` by code with that payload, and nothing else. */
export function answering(answers: Record<number, Buffer | ((g: Got) => Buffer)>): PeerScript {
  return (g, conn) => {
    const a = answers[g.code];
    if (a !== undefined) conn.send(reply(g.code, typeof a === 'function' ? a(g) : a));
  };
}

export interface ScriptedFrontend {
  readonly ch: Channel;
  /** what it got, in order */
  readonly got: Got[];
  readonly ended: boolean;
  send(msg: Buffer, fds?: number[]): void;
  close(): void;
}

/** A front-end connected to `sock`: keeps what it gets (its fds are the test's to close). */
export function scriptedFrontend(sock: string, onMessage: (g: Got) => void = () => {}): ScriptedFrontend {
  const got: Got[] = [];
  let ended = false;
  const ch = new native.Channel(
    native.connectUnix(sock),
    1 << 20,
    (msg, fds, _ts, fdsAt) => {
      const g = received(msg, fds, fdsAt);
      got.push(g);
      onMessage(g);
    },
    () => (ended = true),
  );
  ch.start();
  return {
    ch,
    got,
    get ended() {
      return ended;
    },
    send: (msg, fds = []) => ch.send(msg, fds),
    close: () => ch.close(),
  };
}
