/** The native relay's event ring as the tests read it. */
import type { Relay } from '../src/native';

export type RelayEv = { ts: bigint; pair: number; count: number };

/** Every waiting event, copied through one small reused buffer as RelayHub does. */
export function relayEvents(relay: Relay, batch = 64): RelayEv[] {
  const buf = Buffer.alloc(batch * 16);
  const out: RelayEv[] = [];
  for (let n = batch; n === batch; ) {
    n = relay.drain(buf);
    for (let off = 0; off < n * 16; off += 16) out.push({ ts: buf.readBigUInt64LE(off), pair: buf.readUInt32LE(off + 8), count: buf.readUInt32LE(off + 12) });
  }
  return out;
}
