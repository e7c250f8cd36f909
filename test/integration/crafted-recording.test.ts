/**
 * A recording is input from whoever made it (its strings come from the peers: exe paths, memfd
 * names, command lines, reasons): one crafted with markup and terminal escapes in every string
 * field, and in the slots a peer or a forger fills where numbers are expected (pids, vrings, a
 * relay transit's kind), reaches neither the HTML report unescaped nor the terminal raw.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { reportHtml } from '../../src/cli/report-command';
import { encodeFrame } from '../../src/recording/frames';
import { readRecording } from '../../src/recording/reader';
import type { RecordingRecord } from '../../src/recording/records';
import { tmpDir } from '../helpers';

const XSS = '<img src=x onerror=alert(1)><script>alert(2)</script>';
const CSI = '\x1b[2J\x1b]0;pwned\x07';

/** every string (but the record's type and the keys' own names) gets the payloads around it */
function poison(v: unknown, key = ''): unknown {
  if (typeof v === 'string') return key === 'type' || key === 'dir' || key === 'channel' ? v : `${XSS}${CSI}${v}`;
  if (Array.isArray(v)) return v.map((x) => poison(x));
  if (v && typeof v === 'object' && !Buffer.isBuffer(v) && typeof v !== 'bigint')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, poison(x, k)]));
  return v;
}

/** numbers a forger can put markup in: pids, and the relay transit's vring and kind */
function forge(r: Record<string, unknown>): Record<string, unknown> {
  if (r.type === 'session-start') {
    const peers = r.peers as Record<string, Record<string, unknown>> | undefined;
    for (const p of Object.values(peers ?? {})) p.pid = XSS;
  }
  for (const t of (r.relayTransit as Record<string, unknown>[] | undefined) ?? []) {
    t.vring = XSS;
    t.kind = XSS;
  }
  return r;
}

function crafted(): string {
  const src = path.resolve(__dirname, '..', '..', 'recordings', 'qemu-blk-qsd.vhsrec');
  const records = readRecording(src).records.map((r) => forge(poison(r) as Record<string, unknown>) as unknown as RecordingRecord);
  const file = path.join(tmpDir('crafted'), 'crafted.vhsrec');
  fs.writeFileSync(file, Buffer.concat(records.map(encodeFrame)));
  return file;
}

const CLI = path.resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');

describe('a crafted recording', () => {
  it.each([['show'], ['info'], ['stats'], ['check']])('%s prints no control character: escapes show as \\xHH', (cmd) => {
    const r = spawnSync(process.execPath, [CLI, cmd, crafted()], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout + r.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    expect(r.status === 0 || /frame \d+|not a valid record/.test(r.stderr), r.stderr).toBe(true);
    if (cmd !== 'check' && cmd !== 'stats') expect(r.stdout).toContain('\\x1b[2J');
  });

  it('renders an HTML report with every injected string escaped, or is refused with a clear error', () => {
    const file = crafted();
    let html: string;
    try {
      html = reportHtml(file);
    } catch (err) {
      expect((err as Error).message).toMatch(/frame \d+|not a valid record/);
      return;
    }
    expect(html).not.toContain('<img src=x');
    expect(html).not.toContain('<script>alert(2)');
    expect(html).not.toContain('\x1b');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
  });
});
