/**
 * Checks a session as it happens (live, `proxy --check`) or from a recording (`check`): feed it
 * proxy events in order, get findings. Pure: all state is per session, built from the events.
 */
import {
  applyMainMessage,
  hasBit,
  HEADER_SIZE,
  isReplyExpected,
  MAX_VRINGS,
  newNegotiation,
  ProtocolFeature,
  Request,
  validateMessage,
  VirtioFeature,
  DeviceStatus,
  DIRTY_LOG_PAGE as LOG_PAGE,
  type ChannelKind,
  type MemoryRegion,
  type Negotiation,
} from '../protocol';
import type { MessageEvent, ProxyEvent } from '../events/events';
import { RULES, type Rule } from './rules';

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

interface Pending {
  channel: ChannelKind;
  request: number;
  name: string;
  ts: bigint;
  message: number;
  /** why no reply can come: a fault rule dropped the request or its reply */
  cause?: string;
}

/** "fault rule r1, r2" for the rules applied to a message, when any were. */
const rulesOf = (e: MessageEvent): string | undefined => (e.faults?.length ? `fault rule ${e.faults.join(', ')}` : undefined);

/**
 * Per-vring state follows the vrings the daemon does (below MAX_VRINGS, as --rings): a peer that
 * names millions of vring indices must not grow the checker's tables with them.
 */
class VringMap<V> extends Map<number, V> {
  override set(vring: number, v: V): this {
    return vring >= 0 && vring < MAX_VRINGS ? super.set(vring, v) : this;
  }
}
class VringSet extends Set<number> {
  override add(vring: number): this {
    return vring >= 0 && vring < MAX_VRINGS ? super.add(vring) : this;
  }
}

class SessionState {
  negotiation: Negotiation = newNegotiation();
  /** GET_FEATURES / GET_PROTOCOL_FEATURES replies as the frontend saw them */
  offered?: bigint;
  offeredProtocol?: bigint;
  regions: MemoryRegion[] = [];
  haveMemTable = false;
  maxSlots?: number;
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
  /** per vring, since its SET_VRING_BASE: that base and the calls the back-end made */
  ringUse = new VringMap<{ base: number; calls: number }>();
  /** vrings that had a SET_VRING_BASE in this session (a migration's destination sets each once) */
  everStarted = new VringSet();
  /** hold-state fault rules that fired for the transfer under way */
  stateHolds: string[] = [];
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
const MIGRATION_DOWNTIME_NS = 300_000_000n;

/** A migration source's ring as its back-end left it: what the destination must resume from. */
interface MigrationStop {
  session: number;
  base: number;
  ts: bigint;
  /** guest memory size: a destination with another size is another VM */
  memoryBytes: bigint;
}

const VALIDATOR_RULES: Record<string, Rule> = {
  'payload-size': RULES.payloadSize,
  'fd-count': RULES.fdCount,
  'reply-flags': RULES.replyFlags,
  'need-reply-without-reply-ack': RULES.needReplyWithoutAck,
  'unknown-request': RULES.unknownRequest,
  'reply-from-requester': RULES.direction,
  'request-from-responder': RULES.direction,
};

export class Checker {
  private readonly sessions = new Map<number, SessionState>();
  /** per vring index: the last migration source's stop not yet matched by a destination */
  private readonly migrationStops = new VringMap<MigrationStop>();

  /** @param replyTimeoutNs a reply later than this counts as missing */
  constructor(private readonly replyTimeoutNs = 5_000_000_000n) {}

  private state(id: number): SessionState {
    let s = this.sessions.get(id);
    if (!s) this.sessions.set(id, (s = new SessionState()));
    return s;
  }

  onEvent(e: ProxyEvent): CheckFinding[] {
    switch (e.type) {
      case 'session-start':
        this.sessions.set(e.session, new SessionState());
        return [];
      case 'message':
        return this.onMessage(e);
      case 'notification': {
        const s = this.state(e.session);
        const out: CheckFinding[] = [];
        if (e.kind === 'call') {
          const use = s.ringUse.get(e.vring);
          if (use) use.calls++;
        }
        if (e.kind !== 'kick') return out;
        const at = `kick vring ${e.vring}`;
        if (!s.haveMemTable)
          out.push({
            rule: RULES.kickBeforeMemTable,
            session: e.session,
            ts: e.ts,
            at,
            detail: `vring ${e.vring} kicked before any SET_MEM_TABLE/ADD_MEM_REG`,
          });
        if (hasBit(s.negotiation.ackedFeatures, VirtioFeature.PROTOCOL_FEATURES) && !s.enabled.has(e.vring))
          out.push({
            rule: RULES.kickBeforeEnable,
            session: e.session,
            ts: e.ts,
            at,
            detail: `vring ${e.vring} kicked before SET_VRING_ENABLE(${e.vring}, 1)`,
          });
        return out;
      }
      case 'fault': {
        const s = this.state(e.session);
        s.faultText.set(e.rule, e.text);
        if (e.action === 'hold-state') s.stateHolds.push(e.rule);
        return [];
      }
      case 'device-state': {
        const s = this.state(e.session);
        const ms = Number(e.ts - e.startNs) / 1e6;
        const holds = s.stateHolds.splice(0);
        if (e.ts - e.startNs <= MIGRATION_DOWNTIME_NS) return [];
        const why = e.heldMs ? `; fault rule ${holds.join(', ') || '?'} held it ${e.heldMs} ms` : '';
        return [
          {
            rule: RULES.deviceStateBeyondDowntime,
            session: e.session,
            ts: e.ts,
            at: `device state ${e.direction}`,
            detail: `the ${e.direction} of the device state (${e.bytes} bytes through the proxy's pipe) took ${ms.toFixed(0)} ms (QEMU's default downtime limit: 300 ms)${why}`,
          },
        ];
      }
      case 'ring': {
        // split rings only: a packed ring's device position is not visible to a polling backend's calls
        const s = e.snapshot;
        if (s.kind !== 'base' || e.base === undefined || s.packed || s.error) return [];
        const base = e.base & 0xffff;
        if (((base - s.usedIdx) & 0xffff) <= ((s.availIdx - s.usedIdx) & 0xffff)) return [];
        return [
          {
            rule: RULES.vringBaseMismatch,
            session: e.session,
            ts: e.ts,
            at: `B>F GET_VRING_BASE reply (vring ${e.vring})`,
            detail: `vring ${e.vring}: the back-end answered ${e.base}, but the ring's used idx is ${s.usedIdx} and its avail idx ${s.availIdx}`,
          },
        ];
      }
      case 'session-end': {
        const s = this.sessions.get(e.session);
        this.sessions.delete(e.session);
        const noKick = s ? this.vringsWithoutKick(s, e.session, e.ts, 'at the end of the session') : [];
        if (s) noKick.push(...this.migrationLeftovers(s, e.session, e.ts));
        return noKick.concat(
          (s?.pending ?? []).map((p) => ({
            rule: RULES.missingReply,
            session: e.session,
            ts: p.ts,
            message: p.message,
            at: `F>B ${p.name}`,
            detail: `${p.name} (${p.channel} channel) was never answered before the session ended${p.cause ? `: ${p.cause}` : ''}`,
          })),
        );
      }
      default:
        return [];
    }
  }

  private onMessage(e: MessageEvent): CheckFinding[] {
    const s = this.state(e.session);
    const index = s.messages++;
    const d = e.decoded;
    const at = `${e.dir} ${e.channel === 'main' ? '' : `${e.channel}:`}${d.name}${d.reply ? ' reply' : ''}`;
    const out: CheckFinding[] = [];
    const add = (rule: Rule, detail: string): void => void out.push({ rule, session: e.session, ts: e.ts, message: index, at, detail });
    const received = e.received ?? e.raw;
    // message-level rules: the validator's (one source of truth for sizes, fds, flags)
    for (const f of validateMessage(received, { channel: e.channel, sender: e.sender, fdCount: e.fds.length, negotiation: s.negotiation })) {
      const r = VALIDATOR_RULES[f.rule];
      if (r) add(r, f.message);
    }
    // only where what was negotiated (or --dialect) does not decide the meaning: a GET_SHMEM_CONFIG
    // with SHMEM negotiated is the standard request
    if (d.ambiguous)
      add(
        RULES.ambiguousRequest,
        `${e.channel} request ${d.request} means ${d.ambiguous.join(' or ')}; the negotiated features do not tell which (--dialect decides)`,
      );

    // replies: one outstanding request per channel at a time
    const requester = e.channel === 'main' ? 'frontend' : 'backend';
    const pendingHere = s.pending.filter((p) => p.channel === e.channel);
    if (d.reply) {
      const p = pendingHere.find((x) => x.request === d.request);
      if (!p) add(RULES.unexpectedReply, `${d.name} reply, but no ${d.name} request was waiting for one`);
      else if (e.undelivered === 'dropped') {
        // the front-end never gets it: still waiting, and now we know why
        p.cause = `${rulesOf(e) ?? 'a fault rule'} dropped the reply`;
      } else {
        s.pending.splice(s.pending.indexOf(p), 1);
        // a reply a fault rule held back says so: the slowness is the rule's, not the back-end's
        const held = e.heldNs !== undefined && rulesOf(e) ? `; ${rulesOf(e)} held it ${(Number(e.heldNs) / 1e6).toFixed(0)} ms` : '';
        if (e.ts - p.ts > this.replyTimeoutNs) add(RULES.missingReply, `${d.name} answered after ${Number(e.ts - p.ts) / 1e6} ms${held}`);
        // SET_LOG_BASE comes just before LOG_ALL is acked (QEMU's order): it starts the migration too
        else if ((s.logAll || d.request === Request.SET_LOG_BASE) && e.ts - p.ts > MIGRATION_DOWNTIME_NS)
          add(
            RULES.replyBeyondDowntime,
            `${d.name} answered after ${(Number(e.ts - p.ts) / 1e6).toFixed(0)} ms while ${s.logAll ? 'dirty logging was on' : 'dirty logging started'} (QEMU's default downtime limit: 300 ms)${held}`,
          );
      }
    } else if (e.sender === requester) {
      for (const p of pendingHere) {
        s.pending.splice(s.pending.indexOf(p), 1);
        out.push({
          rule: RULES.missingReply,
          session: e.session,
          ts: p.ts,
          message: p.message,
          at: `${e.dir} ${p.name}`,
          detail: `${p.name} got no reply before the next request (${d.name})${p.cause ? `: ${p.cause}` : ''}`,
        });
      }
    }

    if (e.undelivered) {
      // the far side never saw it (a fault rule): it changes nothing there, but say what it was
      if (e.channel === 'main' && !d.reply && d.request === Request.SET_VRING_KICK) {
        s.lostKick.set((d.payload as { index: number }).index, { how: e.undelivered, rules: e.faults ?? [] });
      }
    } else if (e.channel === 'main') {
      this.mainRules(s, e, add);
      this.migrationRules(s, e, index, at, add);
    }

    // state after the message
    if (e.channel === 'main' && !e.undelivered) {
      if (!d.reply && d.request === Request.SET_VRING_ADDR) s.ringsSetUp.add((d.payload as { index: number }).index);
      if (!d.reply && d.request === Request.SET_VRING_KICK) {
        s.kicked.add((d.payload as { index: number }).index);
        s.lostKick.delete((d.payload as { index: number }).index);
      }
      if (!d.reply && d.request === Request.SET_STATUS && ((d.payload as { status?: number }).status ?? 0) & DeviceStatus.DRIVER_OK)
        out.push(...this.vringsWithoutKick(s, e.session, e.ts, 'when the driver set DRIVER_OK', index, at));
      const payload = e.raw.subarray(HEADER_SIZE);
      if (d.reply && d.request === Request.GET_FEATURES) s.offered = d.payload.features as bigint;
      if (d.reply && d.request === Request.GET_PROTOCOL_FEATURES) s.offeredProtocol = d.payload.protocolFeatures as bigint;
      if (d.reply && d.request === Request.GET_MAX_MEM_SLOTS) s.maxSlots = Number(d.payload.value as bigint);
      applyMainMessage(s.negotiation, d.request, d.flags, payload);
    }
    if (!d.reply && e.sender === requester && isReplyExpected(e.channel, d.request, d.flags, s.negotiation))
      s.pending.push({
        channel: e.channel,
        request: d.request,
        name: d.name,
        ts: e.ts,
        message: index,
        ...(e.undelivered === 'dropped' ? { cause: `${rulesOf(e) ?? 'a fault rule'} dropped the request` } : {}),
      });
    return out;
  }

  /**
   * VU020-VU024: dirty logging, ring positions across a stop and a migration, device state.
   * Runs on main-channel messages the far side received, before the negotiation takes them in.
   */
  private migrationRules(s: SessionState, e: MessageEvent, index: number, at: string, add: (r: Rule, detail: string) => void): void {
    const d = e.decoded;
    const p = d.payload as Record<string, never>;
    const packed = hasBit(s.negotiation.ackedFeatures, VirtioFeature.RING_PACKED);
    if (d.reply) {
      if (d.request !== Request.GET_VRING_BASE || e.sender !== 'backend') return;
      const vring = p.index as number;
      const num = p.num as number;
      const use = s.ringUse.get(vring);
      s.ringUse.delete(vring);
      if (!packed && (num & 0xffff) === 0 && use && (use.calls > 0 || use.base !== 0))
        add(
          RULES.vringBaseZeroAfterUse,
          `vring ${vring}: GET_VRING_BASE answered 0, but the ring ${use.base !== 0 ? `was set up from base ${use.base}` : `had ${use.calls} call(s) from the back-end since it started`}`,
        );
      if (s.logAll) this.migrationStops.set(vring, { session: e.session, base: num, ts: e.ts, memoryBytes: s.memoryBytes });
      return;
    }
    if (e.sender !== 'frontend') return;
    switch (d.request) {
      case Request.SET_VRING_BASE: {
        const vring = p.index as number;
        const num = p.num as number;
        s.ringUse.set(vring, { base: num & 0xffff, calls: 0 });
        const stop = this.migrationStops.get(vring);
        // a destination: another session, setting this ring up for the first time, after the
        // source stopped, with the same amount of guest memory (another VM behind the same daemon is not)
        if (stop && stop.session !== e.session && stop.ts < e.ts && !s.everStarted.has(vring) && stop.memoryBytes === s.memoryBytes) {
          this.migrationStops.delete(vring);
          if (num !== stop.base)
            add(
              RULES.migratedBaseMismatch,
              `vring ${vring}: the destination resumes from ${num}, the source's back-end stopped at ${stop.base} (session ${stop.session})`,
            );
        }
        s.everStarted.add(vring);
        break;
      }
      case Request.GET_VRING_BASE:
        if (s.logAll && s.logBytes === undefined && !s.reportedLogAll) {
          s.reportedLogAll = true;
          add(RULES.logAllWithoutLogBase, `vring ${p.index} stopped with LOG_ALL acked and no SET_LOG_BASE in this session`);
        }
        break;
      case Request.SET_LOG_BASE: {
        s.logBytes = p.mmapSize as bigint;
        const end = s.regions.reduce((m, r) => (r.guestPhysAddr + r.memorySize > m ? r.guestPhysAddr + r.memorySize : m), 0n);
        const needed = (end / LOG_PAGE + 7n) / 8n;
        if (end > 0n && s.logBytes < needed)
          add(RULES.logTooSmall, `a ${s.logBytes}-byte log for guest memory up to 0x${end.toString(16)}: one bit per 4 KiB page needs ${needed} bytes`);
        break;
      }
      case Request.SET_DEVICE_STATE_FD:
        if (s.deviceState)
          add(RULES.deviceStateUnchecked, `a new SET_DEVICE_STATE_FD, and the transfer started by message #${s.deviceState.message} was never checked`);
        s.deviceState = { ts: e.ts, message: index, at };
        break;
      case Request.CHECK_DEVICE_STATE:
        s.deviceState = undefined;
        break;
    }
  }

  /** At the end of a session: dirty logging never given a log, a device state never checked. */
  private migrationLeftovers(s: SessionState, session: number, ts: bigint): CheckFinding[] {
    const out: CheckFinding[] = [];
    if (s.logAll && s.logBytes === undefined && !s.reportedLogAll)
      out.push({ rule: RULES.logAllWithoutLogBase, session, ts, at: 'end of session', detail: 'LOG_ALL acked and no SET_LOG_BASE before the session ended' });
    if (s.deviceState)
      out.push({
        rule: RULES.deviceStateUnchecked,
        session,
        ts: s.deviceState.ts,
        message: s.deviceState.message,
        at: s.deviceState.at,
        detail: 'SET_DEVICE_STATE_FD started a transfer that no CHECK_DEVICE_STATE checked before the session ended',
      });
    return out;
  }

  /** VU018 for each set-up vring the back-end has no kick fd for (once per vring). */
  private vringsWithoutKick(s: SessionState, session: number, ts: bigint, when: string, message?: number, at?: string): CheckFinding[] {
    const out: CheckFinding[] = [];
    for (const v of [...s.ringsSetUp].sort((a, b) => a - b)) {
      if (s.kicked.has(v) || s.reportedNoKick.has(v)) continue;
      // at the end of a session only rings that were started count (a frontend may set up and leave)
      if (message === undefined && !s.enabled.has(v)) continue;
      s.reportedNoKick.add(v);
      const lost = s.lostKick.get(v);
      // rule texts come from fault events, which may be stamped just after the message they acted on
      const rules = lost?.rules.map((id) => `fault rule ${id}${s.faultText.has(id) ? ` (${s.faultText.get(id)})` : ''}`).join(', ');
      const cause = lost ? `SET_VRING_KICK for vring ${v} was ${lost.how} by the proxy's ${rules || 'fault rules'}` : 'the front-end never sent one';
      out.push({
        rule: RULES.vringWithoutKick,
        session,
        ts,
        ...(message !== undefined ? { message } : {}),
        at: at ?? `vring ${v}`,
        detail: `vring ${v} was set up (SET_VRING_ADDR) but had no kick fd ${when}: ${cause}`,
      });
    }
    return out;
  }

  private mainRules(s: SessionState, e: MessageEvent, add: (r: Rule, detail: string) => void): void {
    const d = e.decoded;
    if (d.reply || e.sender !== 'frontend') return;
    const p = d.payload as Record<string, never>;
    switch (d.request) {
      case Request.SET_FEATURES: {
        const extra = s.offered !== undefined ? (p.features as bigint) & ~s.offered : 0n;
        if (extra) add(RULES.featureNotOffered, `SET_FEATURES acks 0x${extra.toString(16)} that GET_FEATURES never offered`);
        break;
      }
      case Request.SET_PROTOCOL_FEATURES: {
        const extra = s.offeredProtocol !== undefined ? (p.protocolFeatures as bigint) & ~s.offeredProtocol : 0n;
        if (extra) add(RULES.featureNotOffered, `SET_PROTOCOL_FEATURES sets 0x${extra.toString(16)} that GET_PROTOCOL_FEATURES never offered`);
        break;
      }
      case Request.SET_MEM_TABLE: {
        s.regions = (p.regions as MemoryRegion[]) ?? [];
        s.haveMemTable = true;
        const limit = s.maxSlots !== undefined ? Math.min(s.maxSlots, 8) : 8;
        if ((p.nregions as number) > limit) add(RULES.tooManyRegions, `SET_MEM_TABLE with ${p.nregions} regions, at most ${limit}`);
        break;
      }
      case Request.ADD_MEM_REG: {
        s.regions.push(p.region as MemoryRegion);
        s.haveMemTable = true;
        if (s.maxSlots !== undefined && s.regions.length > s.maxSlots)
          add(RULES.tooManyRegions, `${s.regions.length} regions after ADD_MEM_REG, GET_MAX_MEM_SLOTS said ${s.maxSlots}`);
        break;
      }
      case Request.REM_MEM_REG: {
        const r = p.region as MemoryRegion;
        s.regions = s.regions.filter((x) => !(x.guestPhysAddr === r.guestPhysAddr && x.memorySize === r.memorySize && x.userspaceAddr === r.userspaceAddr));
        break;
      }
      case Request.SET_VRING_NUM:
        s.vringNum.set(p.index as number, p.num as number);
        break;
      case Request.SET_VRING_BASE: {
        s.sawVringBase = true;
        const packed = hasBit(s.negotiation.ackedFeatures, VirtioFeature.RING_PACKED);
        if (!packed && ((p.num as number) & 0xffff0000) !== 0)
          add(RULES.packedLayoutMismatch, `split ring but SET_VRING_BASE num 0x${(p.num as number).toString(16)} uses the packed encoding (bits 16-31)`);
        break;
      }
      case Request.SET_VRING_ADDR: {
        if (!s.haveMemTable) add(RULES.ringBeforeMemTable, `vring ${p.index} addresses set before any memory table`);
        const iova =
          hasBit(s.negotiation.ackedFeatures, VirtioFeature.ACCESS_PLATFORM) || hasBit(s.negotiation.protocolFeatures, ProtocolFeature.GPA_ADDRESSES);
        if (s.haveMemTable && !iova) {
          const inside = (a: bigint): boolean => s.regions.some((r) => a >= r.userspaceAddr && a < r.userspaceAddr + r.memorySize);
          for (const k of ['desc', 'used', 'avail'] as const)
            if (!inside(p[k] as bigint)) add(RULES.ringOutsideRegions, `vring ${p.index} ${k}=0x${(p[k] as bigint).toString(16)} is in no memory region`);
        }
        const q = s.vringNum.get(p.index as number);
        const packed = hasBit(s.negotiation.ackedFeatures, VirtioFeature.RING_PACKED);
        if (
          packed &&
          q !== undefined &&
          (p.avail as bigint) === (p.desc as bigint) + BigInt(16 * q) &&
          (p.used as bigint) - (p.avail as bigint) >= BigInt(6 + 2 * q)
        )
          add(
            RULES.packedLayoutMismatch,
            `RING_PACKED negotiated but vring ${p.index} is laid out as a split ring (avail ring after the descriptors, used ring after it)`,
          );
        break;
      }
      case Request.SET_VRING_ENABLE:
        if ((p.num as number) === 1) s.enabled.add(p.index as number);
        else s.enabled.delete(p.index as number);
        break;
      case Request.SET_INFLIGHT_FD:
        if (!s.sawVringBase) add(RULES.inflightBeforeVringBase, 'SET_INFLIGHT_FD before any SET_VRING_BASE');
        break;
    }
  }
}

/** Every finding of a sequence of events (a recording). */
export function checkEvents(events: ProxyEvent[], replyTimeoutNs?: bigint): CheckFinding[] {
  const c = new Checker(replyTimeoutNs);
  return events.flatMap((e) => c.onEvent(e));
}
