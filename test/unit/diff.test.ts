/** `vhostscope diff`: alignment, changed fields, features bit by bit, volatile fields ignored. */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffMessages } from '../../src/analysis/diff';
import { latencyDiff } from '../../src/analysis/latency-diff';
import { requestLatency } from '../../src/analysis/request-latency';
import { diffText, latencyDiffText, sessionMessages } from '../../src/views/diff';
import { readRecording } from '../../src/recording/reader';
import { decodeMessage, encodeMessage, Request } from '../../src/protocol';
import type { MessageEvent } from '../../src/events/events';

const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};
let t = 0n;
const msg = (dir: 'F>B' | 'B>F', code: number, payload?: Buffer, flags = dir === 'F>B' ? 1 : 5): MessageEvent => {
  const raw = encodeMessage(code, flags, payload);
  return {
    type: 'message',
    ts: (t += 1n),
    session: 1,
    channel: 'main',
    sender: dir === 'F>B' ? 'frontend' : 'backend',
    dir,
    raw,
    decoded: decodeMessage('main', raw),
    fds: [],
    findings: [],
  };
};
const addr = (desc: bigint): Buffer => Buffer.concat([Buffer.alloc(8), u64(desc), u64(desc + 0x2000n), u64(desc + 0x1000n), u64(0n)]);

describe('diff', () => {
  it('aligns insertions and deletions, diffs features by name and ignores addresses', () => {
    const a = [
      msg('F>B', Request.GET_FEATURES),
      msg('B>F', Request.GET_FEATURES, u64((1n << 32n) | (1n << 29n))),
      msg('F>B', Request.SET_OWNER),
      msg('F>B', Request.SET_VRING_ADDR, addr(0x7f0000000000n)),
    ];
    const b = [
      msg('F>B', Request.SET_OWNER),
      msg('F>B', Request.GET_FEATURES),
      msg('B>F', Request.GET_FEATURES, u64((1n << 32n) | (1n << 34n))),
      msg('F>B', Request.SET_VRING_ADDR, addr(0x7e0000000000n)),
    ];
    const text = diffText(diffMessages(a, b, 'net'));
    expect(text).toEqual([
      '+ F>B main SET_OWNER',
      '~ B>F main GET_FEATURES reply: features: -RING_EVENT_IDX +RING_PACKED',
      '- F>B main SET_OWNER',
      '2 same, 1 changed, 1 only in A (-), 1 only in B (+)',
    ]);
  });

  it('shows what QEMU changed when it renegotiated after the backend restart', () => {
    const file = path.resolve(__dirname, '..', '..', 'recordings', 'qemu-net-backend-restart.vhsrec');
    const lines = diffMessages(sessionMessages(file, 1), sessionMessages(file, 2), 'net');
    const changed = lines.filter((l) => l.op === 'changed').flatMap((l) => (l.op === 'changed' ? l.fields : []));
    // the first session started the rings at 0; the second restored them from the used index
    expect(changed.some((f) => /^num: 0 -> [1-9]\d*$/.test(f))).toBe(true);
    expect(lines.filter((l) => l.op === 'same').length).toBeGreaterThan(20);
  });
});

describe('diff --latency', () => {
  it('compares the real virtiofsd recording with itself: nothing moves, FUSE READ tested and the same', () => {
    const file = path.resolve(__dirname, '..', '..', 'recordings', 'qemu-fs-virtiofsd.vhsrec');
    const reqs = requestLatency(readRecording(file).records)[0].requests;
    const rows = latencyDiff(reqs, reqs);
    const read = rows.find((r) => r.op === 'FUSE READ')!;
    expect(read).toMatchObject({ nA: 52, nB: 52, p50ShiftPct: 0, verdict: 'same', pValue: 1 });
    expect(rows.every((r) => r.verdict === 'same' || r.verdict === 'too few')).toBe(true);
    const text = latencyDiffText(rows).join('\n');
    expect(text).toMatch(/vring 1 FUSE READ: n 52 → 52, p50 [\d.]+ µs → [\d.]+ µs \(0%\).*no significant difference/);
  });

  it('finds the same requests made twice as slow (and then faster again) significant, with the shift they had', () => {
    const file = path.resolve(__dirname, '..', '..', 'recordings', 'qemu-fs-virtiofsd.vhsrec');
    const reqs = requestLatency(readRecording(file).records)[0].requests;
    const slow = reqs.map((r) => ({ ...r, latencyNs: r.latencyNs * 2 }));
    const read = latencyDiff(reqs, slow).find((r) => r.op === 'FUSE READ')!;
    expect(read.verdict).toBe('slower');
    expect(read.pValue).toBeLessThan(0.01);
    expect(read.p50ShiftPct).toBeGreaterThan(80); // 2x, within the histogram's bucket resolution
    expect(read.p50ShiftPct).toBeLessThan(120);
    expect(latencyDiff(slow, reqs).find((r) => r.op === 'FUSE READ')!.verdict).toBe('faster');
  });
});
