/**
 * Checks a session as it happens (live, `proxy --check`) or from a recording (`check`): feed it
 * proxy events in order, get findings. Pure: all state is per session, built from the events
 * (check/state.ts). The rules on the device's set-up and on migration have files of their own
 * (check/setup.ts, check/migration.ts); the reply, kick and ring rules are here.
 */
import {
  applyMainMessage,
  BackendRequest,
  hasBit,
  HEADER_SIZE,
  isReplyExpected,
  ProtocolFeature,
  Request,
  validateMessage,
  VirtioFeature,
  DeviceStatus,
} from '../protocol';
import type { MessageEvent, ProxyEvent, RingEvent } from '../events/events';
import { inflightProblems } from '../rings/inflight';
import { RULES, type Rule } from './rules';
import { MIGRATION_DOWNTIME_NS, SessionState, VringMap, type CheckFinding, type Handshake, type MigrationStop } from './check/state';
import { migrationLeftovers, migrationRules } from './check/migration';
import { setupRules } from './check/setup';
import { outsideAckedMemory, trackAckedMemory } from './check/acked-memory';
import { negotiationRules } from './check/negotiation';
import { backendChannelRules } from './check/backend-channel';
import { blockedFinding, noteBlocked } from './check/blocking';
import { onCall, onRingSnapshot, ringReinitialised, stalled } from './check/ring-progress';
import { handshakeAtEnd, reconnectRules } from './check/reconnect';

export type { CheckFinding } from './check/state';

/** GET_SHMEM_CONFIG, or the back-end's SHMEM_MAP / SHMEM_UNMAP: a peer that speaks SHMEM. */
const usesShmem = (e: MessageEvent): boolean =>
  (e.channel === 'main' && e.decoded.request === Request.GET_SHMEM_CONFIG) ||
  (e.channel === 'backend' && (e.decoded.request === BackendRequest.SHMEM_MAP || e.decoded.request === BackendRequest.SHMEM_UNMAP));

/** Bit 21 in use and 22 not: SHMEM where rust-vmm vhost 0.16 puts it. */
const shmemAt21 = (protocol: bigint | undefined): boolean => hasBit(protocol, ProtocolFeature.GPA_ADDRESSES) && !hasBit(protocol, ProtocolFeature.SHMEM);

/** What a SET_FEATURES that changed only LOG_ALL means for a ring that stalls after it. */
function logAllToggle(before: bigint | undefined, after: bigint, message: number): string | undefined {
  const bit = 1n << BigInt(VirtioFeature.LOG_ALL);
  if (before === undefined || (before ^ after) !== bit) return undefined;
  return `it came after SET_FEATURES (message #${message}) only turned LOG_ALL ${after & bit ? 'on' : 'off'}: a back-end that disables its rings on every SET_FEATURES stops serving here (rust-vmm/vhost 7f326dd)`;
}

/** "fault rule r1, r2" for the rules applied to a message, when any were. */
const rulesOf = (e: MessageEvent): string | undefined => (e.faults?.length ? `fault rule ${e.faults.join(', ')}` : undefined);

const VALIDATOR_RULES: Record<string, Rule> = {
  'payload-size': RULES.payloadSize,
  'fd-count': RULES.fdCount,
  'reply-flags': RULES.replyFlags,
  'need-reply-without-reply-ack': RULES.needReplyWithoutAck,
  'unknown-request': RULES.unknownRequest,
  'reply-from-requester': RULES.direction,
  'request-from-responder': RULES.direction,
  'header-version': RULES.headerInvalid,
  'header-reserved-flags': RULES.headerInvalid,
  'header-oversize': RULES.headerInvalid,
  'too-many-fds': RULES.headerInvalid,
  'fds-after-header': RULES.fdsAfterHeader,
};

/**
 * A call on a replaced fd stamped within this much of the back-end's answer may have been
 * signalled before it: the relay thread stamps what it reads, and it may have been descheduled.
 */
const REPLACED_CALL_MARGIN_NS = 20_000_000n;

export class Checker {
  private readonly sessions = new Map<number, SessionState>();
  /** per vring index: the last migration source's stop not yet matched by a destination */
  private readonly migrationStops = new VringMap<MigrationStop>();
  /** shared objects (uuid) and the session whose back-end added each */
  private readonly sharedObjectOwners = new Map<string, number>();
  /** the last session its back-end ended: the next one to start is a reconnect */
  private lastBackendEnd?: Handshake;

  /** @param replyTimeoutNs a reply later than this counts as missing */
  constructor(private readonly replyTimeoutNs = 5_000_000_000n) {}

  private state(id: number): SessionState {
    let s = this.sessions.get(id);
    if (!s) this.sessions.set(id, (s = new SessionState()));
    return s;
  }

  /**
   * Live: what is overdue at `now` (monotonic ns) though no event came (a kick the back-end
   * never served); the daemon calls it every second or so.
   */
  tick(now: bigint, sessions?: Set<number>): CheckFinding[] {
    return [...this.sessions].flatMap(([id, s]) => (sessions && !sessions.has(id) ? [] : stalled(s, id, now, this.replyTimeoutNs)));
  }

  onEvent(e: ProxyEvent): CheckFinding[] {
    const s = 'session' in e && e.type !== 'session-start' ? this.sessions.get(e.session) : undefined;
    const overdue = s && e.type !== 'ring' ? stalled(s, e.session, e.ts, this.replyTimeoutNs) : [];
    return overdue.length ? overdue.concat(this.handle(e)) : this.handle(e);
  }

  private handle(e: ProxyEvent): CheckFinding[] {
    switch (e.type) {
      case 'session-start': {
        const s = new SessionState();
        if (this.lastBackendEnd) s.reconnectOf = this.lastBackendEnd;
        this.lastBackendEnd = undefined;
        this.sessions.set(e.session, s);
        return [];
      }
      case 'message':
        return this.onMessage(e);
      case 'notification': {
        const s = this.state(e.session);
        const out: CheckFinding[] = [];
        if (e.kind === 'call') {
          onCall(s, e.vring);
          const use = s.ringUse.get(e.vring);
          if (use) use.calls++;
          const swap = s.callSwap.get(e.vring);
          if (e.replaced && swap?.answeredTs !== undefined && e.ts > swap.answeredTs + REPLACED_CALL_MARGIN_NS && !swap.reported) {
            swap.reported = true;
            out.push({
              rule: RULES.callOnReplacedFd,
              session: e.session,
              ts: e.ts,
              at: `call vring ${e.vring}`,
              detail: `vring ${e.vring}: the back-end signalled the call fd that SET_VRING_CALL (message #${swap.message}) replaced, ${(Number(e.ts - swap.answeredTs) / 1e6).toFixed(1)} ms after it answered a later request`,
            });
          }
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
      case 'inflight':
        return e.queues.flatMap((q) =>
          inflightProblems(q, e.queueSize).map((detail) => ({
            rule: RULES.inflightRegionInconsistent,
            session: e.session,
            ts: e.ts,
            at: `inflight region at ${e.when}`,
            detail,
          })),
        );
      case 'ring': {
        const state = this.state(e.session);
        const progress = onRingSnapshot(state, e, this.replyTimeoutNs);
        return progress.concat(this.baseOutsideRing(e), outsideAckedMemory(state, e));
      }
      case 'session-end': {
        const s = this.sessions.get(e.session);
        this.sessions.delete(e.session);
        if (s) this.lastBackendEnd = handshakeAtEnd(s, e);
        const noKick = s ? this.vringsWithoutKick(s, e.session, e.ts, 'at the end of the session') : [];
        if (s) noKick.push(...migrationLeftovers(s, e.session, e.ts), ...blockedFinding(s, e.session, e.ts, this.replyTimeoutNs, true));
        return noKick.concat(
          (s?.pending ?? [])
            .filter((p) => !p.blocked)
            .map((p) => ({
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
    out.push(...blockedFinding(s, e.session, e.ts, this.replyTimeoutNs, false));
    const received = e.received ?? e.raw;
    // message-level rules: the validator's (one source of truth for sizes, fds, flags)
    for (const f of validateMessage(received, { channel: e.channel, sender: e.sender, fdCount: e.fds.length, fdsAt: e.fdsAt, negotiation: s.negotiation })) {
      const r = VALIDATOR_RULES[f.rule];
      if (r) add(r, f.message);
    }
    if (!s.reportedShmemBit && !d.reply && usesShmem(e) && shmemAt21(s.negotiation.protocolFeatures)) {
      s.reportedShmemBit = true;
      add(RULES.shmemBit, `${d.name} with protocol feature 21 negotiated and 22 (SHMEM) not: the peers number SHMEM as rust-vmm vhost 0.16 does`);
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
        if (e.channel === 'main') for (const swap of s.callSwap.values()) if (p.message >= swap.message) swap.answeredTs ??= e.ts;
        // a reply a fault rule held back says so: the slowness is the rule's, not the back-end's
        const held = e.heldNs !== undefined && rulesOf(e) ? `; ${rulesOf(e)} held it ${(Number(e.heldNs) / 1e6).toFixed(0)} ms` : '';
        if (p.blocked) {
          // VU036 told why it came late
        } else if (e.ts - p.ts > this.replyTimeoutNs) add(RULES.missingReply, `${d.name} answered after ${Number(e.ts - p.ts) / 1e6} ms${held}`);
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
        if (p.blocked) continue;
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
    } else {
      negotiationRules(s, e, add);
      backendChannelRules(s, this.sharedObjectOwners, e, add);
      if (e.channel === 'main') {
        reconnectRules(s, e, add);
        setupRules(s, e, add);
        trackAckedMemory(s, e);
        migrationRules(s, this.migrationStops, e, index, at, add);
      }
      s.rings.apply(e);
    }

    // state after the message
    if (e.channel === 'main' && !e.undelivered) {
      if (!d.reply && d.request === Request.SET_VRING_ADDR) s.ringsSetUp.add((d.payload as { index: number }).index);
      if (!d.reply && (d.request === Request.SET_VRING_ADDR || d.request === Request.SET_VRING_BASE))
        ringReinitialised(s, (d.payload as { index: number }).index);
      if (!d.reply && (d.request === Request.RESET_OWNER || d.request === Request.RESET_DEVICE)) ringReinitialised(s);
      if (!d.reply && d.request === Request.SET_FEATURES)
        s.logAllToggle = logAllToggle(s.negotiation.ackedFeatures, d.payload.features as bigint, index) ?? s.logAllToggle;
      if (!d.reply && d.request === Request.SET_VRING_CALL && !(d.payload as { nofd?: boolean }).nofd)
        s.callSwap.set((d.payload as { index: number }).index, { message: index });
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
    if (!d.reply && e.sender === requester && isReplyExpected(e.channel, d.request, d.flags, s.negotiation)) {
      s.pending.push({
        channel: e.channel,
        request: d.request,
        name: d.name,
        ts: e.ts,
        message: index,
        ...(e.undelivered === 'dropped' ? { cause: `${rulesOf(e) ?? 'a fault rule'} dropped the request` } : {}),
      });
      noteBlocked(s, e.ts);
    }
    return out;
  }

  /** VU019: GET_VRING_BASE answered outside the ring's [used idx, avail idx] (split rings only: a packed ring's device position is not visible to a polling backend's calls). */
  private baseOutsideRing(e: RingEvent): CheckFinding[] {
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
}

/** Every finding of a sequence of events (a recording). */
export function checkEvents(events: ProxyEvent[], replyTimeoutNs?: bigint): CheckFinding[] {
  const c = new Checker(replyTimeoutNs);
  return events.flatMap((e) => c.onEvent(e));
}
