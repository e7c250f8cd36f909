/**
 * The back-end channel's rules at their edges (VU035, VU037, VU038; src/analysis/check/
 * backend-channel.ts): a reset forgets the mappings, only the back-end's requests count, an
 * unmap must name a mapping exactly, mappings that touch do not overlap, pages are whole in both
 * offset and length, and removing an object nobody added is no finding.
 */
import { describe, expect, it } from 'vitest';
import { checkEvents } from '../../src/analysis/checker';
import { BackendRequest, Request } from '../../src/protocol';
import { BACKEND_REQ, CONFIGURE_MEM_SLOTS, PF, REPLY_ACK, Session, SHARED_OBJECT, SHMEM, shmemConfig, shmemMapping, UUID, V1 } from '../sessions';

const backend = { channel: 'backend' as const, flags: 1 };
const map = (offset: bigint, len: bigint, shmid = 0) => [BackendRequest.SHMEM_MAP, shmemMapping(shmid, offset, len), { ...backend, fds: 1 }] as const;
const unmap = (offset: bigint, len: bigint, shmid = 0) => [BackendRequest.SHMEM_UNMAP, shmemMapping(shmid, offset, len), backend] as const;
const withShmem = (): Session =>
  new Session()
    .handshake(PF | V1, REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | SHMEM)
    .fe(Request.GET_SHMEM_CONFIG)
    .be(Request.GET_SHMEM_CONFIG, shmemConfig(0x10000n));
const details = (s: Session): string[] => checkEvents(s.end()).map((f) => `${f.rule.id} ${f.detail}`);

describe('back-end channel rules at their edges', () => {
  it('RESET_DEVICE and RESET_OWNER forget every mapping; another request does not', () => {
    for (const reset of [Request.RESET_DEVICE, Request.RESET_OWNER]) {
      const s = withShmem()
        .be(...map(0n, 0x1000n))
        .fe(reset)
        .be(...map(0n, 0x1000n));
      expect(
        details(s).filter((d) => d.startsWith('VU037')),
        `after request ${reset}`,
      ).toEqual([]);
    }
    expect(
      details(
        withShmem()
          .be(...map(0n, 0x1000n))
          .fe(Request.SET_VRING_NUM, Buffer.alloc(8))
          .be(...map(0n, 0x1000n)),
      ),
    ).toEqual(['VU037 SHMEM_MAP shmid 0 [0x0, 0x1000) overlaps shmid 0 [0x0, 0x1000), not unmapped first']);
  });

  it("counts the back-end's requests only: not a reply, not the front-end's, not the main channel's same codes", () => {
    const s = withShmem()
      .fe(BackendRequest.SHMEM_MAP, shmemMapping(0, 0x800n, 0x10n), { channel: 'backend', flags: 1 }) // from the front-end
      .be(BackendRequest.SHMEM_MAP, shmemMapping(0, 0x800n, 0x10n), { channel: 'backend', flags: 5 }) // a reply
      .fe(BackendRequest.SHMEM_MAP, shmemMapping(0, 0x800n, 0x10n), { flags: 1 }); // 9 on the main channel is not SHMEM_MAP
    expect(details(s).filter((d) => d.startsWith('VU037'))).toEqual([]);
  });

  it('an unmap names one mapping exactly: its region, offset and length', () => {
    const s = withShmem()
      .be(...map(0n, 0x2000n))
      .be(...unmap(0n, 0x1000n))
      .be(...unmap(0x1000n, 0x2000n))
      .be(...unmap(0n, 0x2000n, 1))
      .be(...unmap(0n, 0x2000n));
    expect(details(s)).toEqual([
      'VU037 SHMEM_UNMAP shmid 0 [0x0, 0x1000) is not one earlier SHMEM_MAP',
      'VU037 SHMEM_UNMAP shmid 0 [0x1000, 0x3000) is not one earlier SHMEM_MAP',
      'VU037 SHMEM_UNMAP shmid 1 [0x0, 0x2000) is not one earlier SHMEM_MAP',
    ]);
  });

  it('mappings that only touch do not overlap, in either order; a page-aligned length alone is not enough', () => {
    expect(
      details(
        withShmem()
          .be(...map(0x2000n, 0x1000n))
          .be(...map(0x1000n, 0x1000n))
          .be(...map(0x3000n, 0x1000n)),
      ),
    ).toEqual([]);
    expect(
      details(
        withShmem()
          .be(...map(0x1000n, 0x800n))
          .be(...map(0x4800n, 0x1000n)),
      ),
    ).toEqual([
      'VU037 SHMEM_MAP shmid 0 [0x1000, 0x1800) is not a whole number of 4096-byte pages',
      'VU037 SHMEM_MAP shmid 0 [0x4800, 0x5800) is not a whole number of 4096-byte pages',
    ]);
    expect(details(withShmem().be(...map(0x1000n, 0n)))).toEqual(['VU037 SHMEM_MAP shmid 0 [0x1000, 0x1000) is not a whole number of 4096-byte pages']);
  });

  it('removing a shared object nobody added is no finding, nor is its owner removing it', () => {
    const protocol = REPLY_ACK | CONFIGURE_MEM_SLOTS | BACKEND_REQ | SHARED_OBJECT;
    const s = new Session()
      .handshake(PF | V1, protocol)
      .be(BackendRequest.SHARED_OBJECT_REMOVE, UUID, backend)
      .be(BackendRequest.SHARED_OBJECT_ADD, UUID, backend)
      .be(BackendRequest.SHARED_OBJECT_REMOVE, UUID, backend);
    expect(details(s)).toEqual([]);
  });
});
