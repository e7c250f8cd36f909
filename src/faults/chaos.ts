/**
 * Chaos mode (`proxy --chaos SEED[:PROFILE]`): perturbs what the spec leaves free, the way the
 * races of the field hit, deterministically from the seed. Each message's fate is a function of
 * the seed and the message's place in its stream (channel and sender, counted per session), not
 * of the clock: the same peers doing the same thing get the same perturbations, run after run.
 */
import { Request, type ChannelKind, type Side } from '../protocol';

/** Which perturbations a chaos rule makes. */
export const CHAOS_PROFILES = {
  /** every perturbation below at its own rate */
  all: 'every perturbation below, each at its own rate',
  /** any message, one in four, up to the limit late */
  delays: 'one message in four (either way, any channel) forwarded up to the limit late',
  /** replies, one in two, up to the limit late */
  replies: 'one reply in two forwarded up to the limit late',
  /** SET_VRING_ENABLE(1) held until its vring has been kicked: the kick overtakes the enable (rust-vmm/vhost#247) */
  enable: 'every SET_VRING_ENABLE(1) held until its vring is kicked (at most 30 s): the kick overtakes the enable (field case C1)',
  /** SET_VRING_CALL up to the limit late: the back-end signals the old call fd longer (QEMU 1ba9a5220325) */
  call: 'every SET_VRING_CALL forwarded up to the limit late: the back-end keeps the old call fd longer (field case C2)',
  /** one message in two sent in two writes, the rest up to the limit later (not part of "all": older seeds keep their draws) */
  split:
    'one message in two (either way, any channel) forwarded in two writes, cut at a drawn byte, its fds with the first and the rest up to the limit later: a reader that expects a message in one read fails',
} as const;
export type ChaosProfile = keyof typeof CHAOS_PROFILES;

/** The longest a chaos delay lasts unless the rule says (ms). */
export const CHAOS_DEFAULT_MAX_MS = 20;
/** The longest an enable waits for its kick (ms): a driver that never kicks gets its enable anyway. */
export const CHAOS_ENABLE_HOLD_MS = 30_000;

/** What chaos does to one message. */
export type ChaosPerturbation =
  | { delayMs: number; why: string }
  | { holdUntilKick: number; maxMs: number; why: string }
  /** the first `splitAt` bytes (and the fds) now, the rest `restMs` later */
  | { splitAt: number; restMs: number; why: string };

export interface ChaosMessage {
  channel: ChannelKind;
  sender: Side;
  request: number;
  reply: boolean;
  /** the vring index of a vring request's payload, when it has one */
  vring?: number;
  /** SET_VRING_ENABLE's num */
  num?: number;
  /** its place in its stream (channel and sender) within the session, from 0 */
  index: number;
  /** its length in bytes, header included */
  size: number;
}

/** A 32-bit mix of the seed, the stream and the index (splitmix32's finaliser): the same inputs, the same draw. */
export function draw(seed: number, stream: string, index: number, salt: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < stream.length; i++) h = Math.imul(h ^ stream.charCodeAt(i), 0x85ebca6b) >>> 0;
  h = (h ^ Math.imul(index + 1, 0xc2b2ae35) ^ Math.imul(salt + 1, 0x27d4eb2f)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const wants = (profile: ChaosProfile, p: ChaosProfile): boolean => profile === p || (profile === 'all' && p !== 'split');

/** What chaos does to `m`, if anything. */
export function chaosPerturbation(seed: number, profile: ChaosProfile, maxMs: number, m: ChaosMessage): ChaosPerturbation | undefined {
  const stream = `${m.channel}/${m.sender}`;
  const roll = (salt: number): number => draw(seed, stream, m.index, salt);
  const upTo = (limit: number): number => 1 + (roll(1) % Math.max(1, limit));
  const main = m.channel === 'main' && !m.reply && m.sender === 'frontend';
  if (
    main &&
    m.request === Request.SET_VRING_ENABLE &&
    m.num === 1 &&
    m.vring !== undefined &&
    wants(profile, 'enable') &&
    (profile === 'enable' || roll(2) % 2 === 0)
  )
    return { holdUntilKick: m.vring, maxMs: CHAOS_ENABLE_HOLD_MS, why: `enable held until vring ${m.vring} is kicked` };
  if (main && m.request === Request.SET_VRING_CALL && wants(profile, 'call')) return { delayMs: upTo(maxMs), why: 'call fd swap late' };
  if (m.reply && wants(profile, 'replies') && roll(3) % 2 === 0) return { delayMs: upTo(maxMs), why: 'reply late' };
  if (wants(profile, 'delays') && roll(4) % 4 === 0) return { delayMs: upTo(maxMs), why: 'message late' };
  if (wants(profile, 'split') && m.size > 1 && roll(5) % 2 === 0)
    return { splitAt: 1 + (roll(6) % (m.size - 1)), restMs: upTo(maxMs), why: 'split in two writes' };
  return undefined;
}
