/**
 * Rules on what the back-end asks of the front-end on the backend channel (VU035, VU037, VU038):
 * nothing while the device is suspended, shared-memory mappings the front-end can honour, and
 * shared objects removed only by their owner. `owners` is daemon-wide: an object one session's
 * back-end added may be removed from another session.
 */
import { BackendRequest, Request } from '../../protocol';
import type { MessageEvent } from '../../events/events';
import { RULES } from '../rules';
import type { AddFinding, SessionState, ShmemMapping } from './state';

/** SHMEM_MAP offsets and lengths are whole pages */
const PAGE = 4096n;

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const mappingText = (m: ShmemMapping): string => `shmid ${m.shmid} [${hex(m.offset)}, ${hex(m.offset + m.len)})`;

export function backendChannelRules(s: SessionState, owners: Map<string, number>, e: MessageEvent, add: AddFinding): void {
  const d = e.decoded;
  // the shared-memory regions the front-end has (GET_SHMEM_CONFIG), and a reset dropping every mapping
  if (e.channel === 'main') {
    if (d.reply && d.request === Request.GET_SHMEM_CONFIG && !d.dialect && !d.ambiguous)
      s.shmemSizes = new Map((d.payload as { sizes?: { shmid: number; size: bigint }[] }).sizes?.map((r) => [r.shmid, r.size]));
    if (!d.reply && (d.request === Request.RESET_DEVICE || d.request === Request.RESET_OWNER)) s.shmemMaps = [];
    return;
  }
  if (e.channel !== 'backend' || d.reply || e.sender !== 'backend') return;
  if (s.rings.suspended) add(RULES.backendRequestWhileSuspended, `${d.name} while every started ring is stopped`);
  switch (d.request) {
    case BackendRequest.SHMEM_MAP:
      return shmemMap(s, d.payload as never, add);
    case BackendRequest.SHMEM_UNMAP: {
      const m = mapping(d.payload as never);
      const i = s.shmemMaps.findIndex((x) => x.shmid === m.shmid && x.offset === m.offset && x.len === m.len);
      if (i >= 0) s.shmemMaps.splice(i, 1);
      else add(RULES.shmemMapInvalid, `SHMEM_UNMAP ${mappingText(m)} is not one earlier SHMEM_MAP`);
      return;
    }
    case BackendRequest.SHARED_OBJECT_ADD:
      owners.set((d.payload as { uuid: string }).uuid, e.session);
      return;
    case BackendRequest.SHARED_OBJECT_REMOVE: {
      const uuid = (d.payload as { uuid: string }).uuid;
      const owner = owners.get(uuid);
      if (owner !== undefined && owner !== e.session) add(RULES.sharedObjectNotOwner, `SHARED_OBJECT_REMOVE ${uuid}, which session ${owner}'s back-end added`);
      else owners.delete(uuid);
      return;
    }
  }
}

const mapping = (p: { shmid: number; shmOffset: bigint; len: bigint }): ShmemMapping => ({ shmid: p.shmid, offset: p.shmOffset, len: p.len });

function shmemMap(s: SessionState, p: { shmid: number; shmOffset: bigint; len: bigint }, add: AddFinding): void {
  const m = mapping(p);
  const size = s.shmemSizes?.get(m.shmid);
  if (s.shmemSizes && size === undefined) add(RULES.shmemMapInvalid, `SHMEM_MAP ${mappingText(m)}: GET_SHMEM_CONFIG gave no region ${m.shmid}`);
  else if (size !== undefined && m.offset + m.len > size) add(RULES.shmemMapInvalid, `SHMEM_MAP ${mappingText(m)} ends beyond the region's ${hex(size)} bytes`);
  if (m.offset % PAGE !== 0n || m.len % PAGE !== 0n || m.len === 0n)
    add(RULES.shmemMapInvalid, `SHMEM_MAP ${mappingText(m)} is not a whole number of ${PAGE}-byte pages`);
  const over = s.shmemMaps.find((x) => x.shmid === m.shmid && x.offset < m.offset + m.len && m.offset < x.offset + x.len);
  if (over) add(RULES.shmemMapInvalid, `SHMEM_MAP ${mappingText(m)} overlaps ${mappingText(over)}, not unmapped first`);
  // a bounded list: a back-end mapping without end must not grow the checker
  if (s.shmemMaps.length < 4096) s.shmemMaps.push(m);
}
