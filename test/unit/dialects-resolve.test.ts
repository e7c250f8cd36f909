/**
 * What a code means in a session (src/protocol/dialects.ts resolveRequest), each case with the
 * reason it gives: no other meaning, the standard's feature negotiated, --dialect, the only
 * meaning, the payload's size, and ambiguity with every meaning listed.
 */
import { describe, expect, it } from 'vitest';
import { newNegotiation, ProtocolFeature, requestSpec, resolveRequest } from '../../src/protocol';

const withFeature = (bit: number) => ({ ...newNegotiation(), protocolFeatures: 1n << BigInt(bit) });

describe('resolveRequest', () => {
  it('a code with no other meaning: the standard, nothing more said', () => {
    expect(resolveRequest('main', 1)).toEqual({ spec: requestSpec('main', 1) });
    expect(resolveRequest('backend', 42)).toEqual({ spec: undefined });
  });

  it('the standard when its protocol feature is negotiated, even against --dialect; another feature decides nothing', () => {
    const n = withFeature(ProtocolFeature.DEVICE_STATE);
    expect(resolveRequest('main', 42, { negotiation: n, dialect: 'crosvm-2023' })).toEqual({
      spec: requestSpec('main', 42),
      because: 'its protocol feature is negotiated',
    });
    expect(resolveRequest('main', 42, { negotiation: withFeature(ProtocolFeature.SHMEM) }).ambiguous).toBeDefined(); // another feature: undecided
  });

  it("--dialect picks that dialect's meaning, with the variant's defaults; a dialect without one keeps the standard", () => {
    expect(resolveRequest('main', 42, { dialect: 'crosvm-2023', negotiation: newNegotiation() })).toEqual({
      spec: {
        code: 42,
        name: 'SLEEP',
        doc: 'crosvm (2023): stop the queue handlers, keep their state.',
        request: 'none',
        requestFds: [0, 8],
        reply: 'ack',
        replyFds: [0, 8],
        alwaysReply: false,
      },
      dialect: 'crosvm-2023',
      because: '--dialect crosvm-2023',
    });
    expect(resolveRequest('main', 42, { dialect: 'yandex' })).toEqual({ spec: requestSpec('main', 42), because: '--dialect yandex' });
    expect(resolveRequest('main', 41, { dialect: 'crosvm-2023' }).spec).toMatchObject({
      name: 'GET_SHARED_MEMORY_REGIONS',
      reply: 'opaque',
      alwaysReply: true,
    });
  });

  it('a code only a dialect has means that', () => {
    expect(resolveRequest('main', 1004)).toMatchObject({
      dialect: 'crosvm-2024',
      because: 'no standard request has this code',
      spec: { name: 'GET_SHARED_MEMORY_REGIONS' },
    });
    expect(resolveRequest('backend', 1000)).toMatchObject({ dialect: 'crosvm-2024', spec: { name: 'SHMEM_MAP' } });
    expect(resolveRequest('main', 1000)).toEqual({ spec: undefined });
  });

  it('45 and 44 with an 8-byte payload: a vring state, so the standard and Yandex respectively', () => {
    expect(resolveRequest('main', 45, { payloadSize: 8 })).toEqual({ spec: requestSpec('main', 45), because: 'an 8-byte payload (a vring state)' });
    expect(resolveRequest('main', 44, { payloadSize: 8 })).toMatchObject({
      spec: { name: 'GET_VRING_BASE_SKIP_DRAIN', request: 'vringState' },
      dialect: 'yandex',
      because: 'an 8-byte payload (a vring state)',
    });
  });

  it('otherwise ambiguous: decoded as the standard, every meaning listed', () => {
    expect(resolveRequest('main', 45, { payloadSize: 0 })).toEqual({
      spec: requestSpec('main', 45),
      ambiguous: ['GET_VRING_BASE_SKIP_DRAIN (standard)', 'RESTORE (crosvm-2023)'],
      because: 'the negotiated features do not decide it',
    });
    expect(resolveRequest('main', 44, { payloadSize: 0 }).ambiguous).toEqual([
      'GET_SHMEM_CONFIG (standard)',
      'SNAPSHOT (crosvm-2023)',
      'GET_VRING_BASE_SKIP_DRAIN (yandex)',
    ]);
  });
});
