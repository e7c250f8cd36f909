/** The real message sequences captured from QEMU, DPDK, qemu-storage-daemon and virtiofsd. */
import { describe, expect, it } from 'vitest';
import {
  applyMainMessage,
  decodeMessage,
  formatPayload,
  requestByName,
  isReplyExpected,
  newNegotiation,
  protocolFeatureNames,
  validateMessage,
} from '../../src/protocol';
import { loadTrace, traceNames } from '../fixtures/trace';

describe.each(traceNames())('trace %s', (name) => {
  const t = loadTrace(name);
  const main = t.messages.filter((m) => m.chan === 'main');

  it('has messages and raw bytes to check', () => {
    expect(main.length).toBeGreaterThan(30);
    expect(t.sent.length).toBeGreaterThan(5);
    expect(t.received.length).toBeGreaterThan(2);
  });

  it('decodes every raw message to the traced name, flags and size', () => {
    for (const [dir, raw] of [
      ['>>', t.sent],
      ['<<', t.received],
    ] as const) {
      const listed = main.filter((m) => m.dir === dir);
      raw.forEach((msg, i) => {
        const d = decodeMessage('main', msg);
        const want = listed[i];
        expect(d.name, `${dir} #${i}`).toBe(want.name);
        expect(d.size).toBe(want.size);
        expect(d.reply).toBe(want.flag === 'R');
        expect((d.flags & 8) !== 0).toBe(want.flag === 'NR');
        const text = formatPayload(d);
        const hex = want.decoded.match(/^0x[0-9a-f]+/)?.[0];
        if (hex && d.layout === 'features') expect((d.payload as { features: bigint }).features).toBe(BigInt(hex));
        if (hex && d.layout === 'protocolFeatures') {
          expect((d.payload as { protocolFeatures: bigint }).protocolFeatures).toBe(BigInt(hex));
          expect(want.decoded).toContain(`(${protocolFeatureNames(BigInt(hex)).join('|')})`);
        }
        const st = want.decoded.match(/^idx=(\d+) num=(\d+)$/);
        if (st) expect(text).toBe(`vring=${st[1]} num=${st[2]}`);
      });
    }
  });

  it('finds nothing wrong in a real session, and predicts every reply', () => {
    const n = newNegotiation();
    for (const [dir, raw, sender] of [
      ['>>', t.sent, 'frontend'],
      ['<<', t.received, 'backend'],
    ] as const) {
      const listed = main.filter((m) => m.dir === dir);
      raw.forEach((m, i) => {
        const findings = validateMessage(m, { channel: 'main', sender, fdCount: listed[i].fds, negotiation: n });
        expect(findings, `${dir} #${i} ${listed[i].name}`).toEqual([]);
      });
    }
    // replay the traced order: a request is followed by a reply iff the rule says so
    const neg = newNegotiation();
    for (let i = 0; i < main.length; i++) {
      const m = main[i];
      if (m.flag === 'R') continue;
      const flags = 1 | (m.flag === 'NR' ? 8 : 0);
      const code = requestByName('main', m.name)!.code;
      const payload =
        m.name.endsWith('PROTOCOL_FEATURES') && m.decoded.startsWith('0x')
          ? Buffer.from(BigInt(m.decoded.split(' ')[0]).toString(16).padStart(16, '0'), 'hex').reverse()
          : Buffer.alloc(8);
      applyMainMessage(neg, code, flags, payload);
      const next = main[i + 1];
      const replied = next !== undefined && next.flag === 'R' && next.name === m.name;
      expect(isReplyExpected('main', code, flags, neg), `${m.name} #${i}`).toBe(replied);
    }
  });
});
