/**
 * Whether the back-end serves what the driver makes available (VU041, VU042; needs --rings):
 * a kick that made requests available and was followed by no progress on its ring (a lost kick,
 * rust-vmm/vhost#247; or a ring the back-end stopped serving, as after a SET_FEATURES that only
 * toggled LOG_ALL, rust-vmm/vhost 7f326dd), and a used index that goes backwards within one
 * life of a ring (field case C6). Progress is any change of the ring's used index, or a call.
 */
import { indicesRead, VRING_DESC_F_WRITE, type RingSnapshot } from '../../rings/snapshot';
import type { RingEvent } from '../../events/events';
import { RULES } from '../rules';
import type { CheckFinding, SessionState } from './state';

/** Chains the driver expects the device to act on: any with a descriptor the device reads (an RX buffer offered is not). */
const hasWork = (s: RingSnapshot): boolean => s.entries.some((e) => e.descs.some((d) => (d.flags & VRING_DESC_F_WRITE) === 0));

/** Takes in one ring snapshot: progress, a new kick to wait on, a used index gone backwards. */
export function onRingSnapshot(s: SessionState, e: RingEvent, timeoutNs: bigint): CheckFinding[] {
  const snap = e.snapshot;
  if (!indicesRead(snap)) return [];
  const out = stalled(s, e.session, e.ts, timeoutNs, e.vring);
  const last = s.lastUsed.get(e.vring);
  // packed rings carry wrap counters in bit 15: only split rings' indices compare this way
  if (!snap.packed && last !== undefined && !s.reportedRegress.has(e.vring)) {
    const back = (last - snap.usedIdx) & 0xffff;
    if (back > 0 && back < 0x8000) {
      s.reportedRegress.add(e.vring);
      out.push({
        rule: RULES.usedIndexRegressed,
        session: e.session,
        ts: e.ts,
        at: `${snap.kind} vring ${e.vring}`,
        detail: `vring ${e.vring}: the used index went from ${last} back to ${snap.usedIdx} with no re-initialisation of the ring in between`,
      });
    }
  }
  const waiting = s.waitingKick.get(e.vring);
  if (waiting && snap.usedIdx !== waiting.usedIdx) s.waitingKick.delete(e.vring);
  // progress ends a stall that was told: the next one is told again
  const stall = s.stalledAt.get(e.vring);
  if (stall !== undefined && snap.usedIdx !== stall) s.stalledAt.delete(e.vring);
  if (snap.kind === 'base') {
    // stopped: what is left resumes from the base, and the ring's next life starts with SET_VRING_BASE
    s.waitingKick.delete(e.vring);
    s.stalledAt.delete(e.vring);
    s.lastUsed.delete(e.vring);
    return out;
  }
  s.lastUsed.set(e.vring, snap.usedIdx);
  // one finding per stall: kicks while a told stall lasts wait for nothing new
  if (snap.kind === 'kick' && !s.waitingKick.has(e.vring) && !s.stalledAt.has(e.vring) && snap.availIdx !== snap.usedIdx && hasWork(snap))
    s.waitingKick.set(e.vring, { ts: e.ts, availIdx: snap.availIdx, usedIdx: snap.usedIdx, ...(s.logAllToggle ? { note: s.logAllToggle } : {}) });
  return out;
}

/** A call is progress: the back-end used something. */
export function onCall(s: SessionState, vring: number): void {
  s.waitingKick.delete(vring);
  s.stalledAt.delete(vring);
}

/** The ring was set up again (SET_VRING_ADDR, SET_VRING_BASE) or reset: its indices start over. */
export function ringReinitialised(s: SessionState, vring?: number): void {
  for (const v of vring === undefined ? [...new Set([...s.lastUsed.keys(), ...s.waitingKick.keys(), ...s.stalledAt.keys()])] : [vring]) {
    s.lastUsed.delete(v);
    s.waitingKick.delete(v);
    s.stalledAt.delete(v);
  }
}

/** VU041 for each kick (of `vring`, or of every ring) the back-end has not served for longer than the timeout, at `now`. */
export function stalled(s: SessionState, session: number, now: bigint, timeoutNs: bigint, vring?: number): CheckFinding[] {
  const out: CheckFinding[] = [];
  for (const [v, k] of s.waitingKick) {
    if ((vring !== undefined && v !== vring) || now - k.ts <= timeoutNs) continue;
    s.waitingKick.delete(v);
    s.stalledAt.set(v, k.usedIdx);
    out.push({
      rule: RULES.kickWithoutProgress,
      session,
      ts: k.ts,
      at: `kick vring ${v}`,
      detail:
        `vring ${v}: a kick made requests available (avail idx ${k.availIdx}, used idx ${k.usedIdx}) and the proxy saw no progress on the ring (no call, no used-index change) for ${(Number(now - k.ts) / 1e9).toFixed(1)} s` +
        (k.note ? `; ${k.note}` : ''),
    });
  }
  return out;
}
