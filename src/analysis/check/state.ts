/** What the checker keeps per session (and per vring, bounded), built from the events alone. */
import { hasBit, MAX_VRINGS, newNegotiation, VirtioFeature, type ChannelKind, type MemoryRegion, type Negotiation } from '../../protocol';
import type { Rule } from '../rules';
import { SessionRings } from '../ring-states';

/** A finding: a rule broken, where and how. */
export interface CheckFinding {
  rule: Rule;
  session: number;
  ts: bigint;
  /** message number within the session (0-based, all channels), when it points at a message */
  message?: number;
  /** e.g. "F>B SET_VRING_ADDR" */
  at: string;
  detail: string;
}

/** Adds a finding of `rule` at the message being checked. */
export type AddFinding = (rule: Rule, detail: string) => void;

/** A kick whose requests are not served yet. */
export interface WaitingKick {
  ts: bigint;
  availIdx: number;
  usedIdx: number;
  /** what the session knew at the kick that may explain a stall */
  note?: string;
}

/** What a session acked, as the next session after a reconnect is compared with it. */
export interface Handshake {
  session: number;
  features?: bigint;
  protocol?: bigint;
}

/** One SHMEM_MAP the front-end holds for the back-end. */
export interface ShmemMapping {
  shmid: number;
  offset: bigint;
  len: bigint;
}

/** A request waiting for its reply. */
export interface Pending {
  channel: ChannelKind;
  request: number;
  name: string;
  ts: bigint;
  message: number;
  /** why no reply can come: a fault rule dropped the request or its reply */
  cause?: string;
  /** a both-sides-blocked finding (VU036) names this request: its lateness is told there */
  blocked?: boolean;
}

/**
 * Per-vring state follows the vrings the daemon does (below MAX_VRINGS, as --rings): a peer that
 * names millions of vring indices must not grow the checker's tables with them.
 */
export class VringMap<V> extends Map<number, V> {
  override set(vring: number, v: V): this {
    return vring >= 0 && vring < MAX_VRINGS ? super.set(vring, v) : this;
  }
}
export class VringSet extends Set<number> {
  override add(vring: number): this {
    return vring >= 0 && vring < MAX_VRINGS ? super.add(vring) : this;
  }
}

export class SessionState {
  negotiation: Negotiation = newNegotiation();
  /** GET_FEATURES / GET_PROTOCOL_FEATURES replies as the frontend saw them */
  offered?: bigint;
  offeredProtocol?: bigint;
  regions: MemoryRegion[] = [];
  haveMemTable = false;
  maxSlots?: number;
  /** the memory table as the back-end last acknowledged it (check/acked-memory.ts) */
  ackedRegions?: MemoryRegion[];
  /** the first table change since then, until a reply acknowledges it */
  tableChange?: { name: string; ts: bigint };
  /** vrings told a descriptor outside the acknowledged table, until the table changes */
  reportedOutsideAcked = new Set<number>();
  /** the config bytes the front-end's last GET_CONFIG asked for, until the back-end answers */
  configAsked?: { offset: number; size: number };
  enabled = new VringSet();
  vringNum = new VringMap<number>();
  sawVringBase = false;
  pending: Pending[] = [];
  messages = 0;
  /** vrings with SET_VRING_ADDR / SET_VRING_KICK delivered to the back-end */
  ringsSetUp = new VringSet();
  kicked = new VringSet();
  /** a vring's SET_VRING_KICK the proxy kept from the back-end: how, and by which fault rules */
  lostKick = new VringMap<{ how: string; rules: string[] }>();
  reportedNoKick = new VringSet();
  faultText = new Map<string, string>();
  /** the dirty log's size, once SET_LOG_BASE gave one */
  logBytes?: bigint;
  reportedLogAll = false;
  reportedShmemBit = false;
  /** per vring, since its SET_VRING_BASE: that base and the calls the back-end made */
  ringUse = new VringMap<{ base: number; calls: number }>();
  /** vrings that had a SET_VRING_BASE in this session (a migration's destination sets each once) */
  everStarted = new VringSet();
  /** hold-state fault rules that fired for the transfer under way */
  stateHolds: string[] = [];
  /** each ring's spec state (started/stopped x enabled/disabled) */
  rings = new SessionRings(this.negotiation);
  /** GET_SHMEM_CONFIG's regions by shmid, and the back-end's SHMEM_MAPs still mapped */
  shmemSizes?: Map<number, bigint>;
  shmemMaps: ShmemMapping[] = [];
  /** per vring: the message that replaced its call fd, and when the back-end first answered a request sent at or after it */
  callSwap = new VringMap<{ message: number; answeredTs?: bigint; reported?: boolean }>();
  /** the session before, when this one follows its back-end's end (a reconnect): what it acked */
  reconnectOf?: Handshake;
  /** since when each side has waited on the other (a main and a backend channel request both pending) */
  blockedSince?: bigint;
  /** per vring (--rings): the last used index seen, a kick not served yet, a regression reported */
  lastUsed = new VringMap<number>();
  waitingKick = new VringMap<WaitingKick>();
  /** rings whose stall VU041 told, with the used index it stalled at: told once until progress */
  stalledAt = new VringMap<number>();
  reportedRegress = new VringSet();
  /** the last SET_FEATURES that only toggled LOG_ALL, as a kick's stall would mention it */
  logAllToggle?: string;
  reportedBlocked = false;
  /** SET_DEVICE_STATE_FD not followed by CHECK_DEVICE_STATE yet */
  deviceState?: { ts: bigint; message: number; at: string };

  get logAll(): boolean {
    return hasBit(this.negotiation.ackedFeatures, VirtioFeature.LOG_ALL);
  }

  get memoryBytes(): bigint {
    return this.regions.reduce((n, r) => n + r.memorySize, 0n);
  }
}

/** QEMU's default migration downtime limit: a reply slower than this during a migration is felt. */
export const MIGRATION_DOWNTIME_NS = 300_000_000n;

/** A migration source's ring as its back-end left it: what the destination must resume from. */
export interface MigrationStop {
  session: number;
  base: number;
  ts: bigint;
  /** guest memory size: a destination with another size is another VM */
  memoryBytes: bigint;
}
