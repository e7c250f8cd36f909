/**
 * The HTML report, opened in a real headless Chromium (Debian's chromium): the plots render,
 * the console stays clean, and a screenshot is taken.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { reportHtml } from '../../src/cli/report-command';
import { statsJson } from '../../src/views/stats';
import { readRecording, recordingEvents } from '../../src/recording/reader';
import { tmpDir } from '../helpers';

const REC = path.resolve(__dirname, '..', '..', 'recordings');

function chromium(dir: string, args: string[]): { out: string; err: string } {
  const base = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${path.join(dir, 'profile')}`,
    '--enable-logging=stderr',
    '--v=0',
  ];
  try {
    const out = execFileSync('chromium', [...base, ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { out, err: '' };
  } catch (e) {
    throw new Error(`chromium failed: ${(e as { stderr?: string }).stderr ?? e}`);
  }
}

function chromiumWithLog(dir: string, args: string[]): { out: string; err: string } {
  const errFile = path.join(dir, `chromium-${Date.now()}.err`);
  const fd = fs.openSync(errFile, 'w');
  const base = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${path.join(dir, 'profile')}`,
    '--enable-logging=stderr',
    '--v=0',
  ];
  const out = execFileSync('chromium', [...base, ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', fd] });
  fs.closeSync(fd);
  return { out, err: fs.readFileSync(errFile, 'utf8') };
}

describe('HTML report', () => {
  it.each(['qemu-blk-qsd.vhsrec', 'qemu-net-backend-restart.vhsrec'])(
    '%s renders in Chromium with its plots and no console error',
    (rec) => {
      const dir = tmpDir('report');
      const html = path.join(dir, 'report.html');
      fs.writeFileSync(html, reportHtml(path.join(REC, rec)));
      const text = fs.readFileSync(html, 'utf8');
      expect(text).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?https?:/); // self-contained
      const { out, err } = chromiumWithLog(dir, ['--dump-dom', `file://${html}`]);
      const sessions = (text.match(/<section class="session">/g) ?? []).length;
      const requestBlocks = (text.match(/<div class="plot requests"/g) ?? []).length;
      // every session's sequence diagram, timeline and histogram block (and request charts, --rings) was drawn by the inline script
      expect(out).toMatch(new RegExp(`data-plots="${3 * sessions + requestBlocks}"`));
      // the sequence diagram: one row per message (the first 200), two arrows for a forwarded one,
      // one (dashed) for what the proxy injected or absorbed
      const msgs = recordingEvents(readRecording(path.join(REC, rec)).records).filter((e) => e.type === 'message');
      const seq = /<svg [^>]*class="seq-chart" data-messages="(\d+)"[^>]*>([\s\S]*?)<\/svg>/.exec(out);
      expect(Number(seq![1])).toBe(Math.min(200, msgs.filter((m) => m.session === msgs[0].session).length));
      const arrows = (seq![2].match(/class="seq-arrow"/g) ?? []).length;
      expect(arrows).toBeGreaterThan(Number(seq![1]));
      expect(arrows).toBeLessThanOrEqual(2 * Number(seq![1]));
      expect(seq![2]).toMatch(/>GET_FEATURES reply 0x[0-9a-f]+ /);
      expect((out.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(sessions);
      expect(out).toMatch(/kick→next call per vring/);
      expect(err.split('\n').filter((l) => /CONSOLE/.test(l))).toEqual([]);
      const png = path.join(dir, 'report.png');
      chromium(dir, ['--window-size=1200,1600', `--screenshot=${png}`, `file://${html}`]);
      const shot = fs.readFileSync(png);
      expect(shot.subarray(1, 4).toString()).toBe('PNG');
      expect(shot.length).toBeGreaterThan(30_000); // a rendered page, not a blank one
    },
    120_000,
  );

  it('links each finding to what its rule means and how to fix it, once per rule', () => {
    // qemu-blk-qsd: QEMU 7.2's kick before enable (VU010), twice
    const text = reportHtml(path.join(REC, 'qemu-blk-qsd.vhsrec'));
    expect((text.match(/<a href="#rule-VU010">/g) ?? []).length).toBeGreaterThan(0);
    expect(text.match(/<dt id="rule-[^"]+"/g)).toEqual(['<dt id="rule-VU010"']);
    expect(text).toContain('fix: the back-end: look at the ring again when it is enabled');
    expect(reportHtml(path.join(REC, 'qemu-net-backend-restart.vhsrec'))).not.toContain('What the findings mean');
  });

  it("shows each ring's state changes: started by its kick fd, enabled, stopped by GET_VRING_BASE", () => {
    const text = reportHtml(path.join(REC, 'qemu-blk-qsd.vhsrec'));
    const rows = [...text.matchAll(/<tr><td>[\d.]+<\/td><td>(\d+)<\/td><td>([^<]+)<\/td><td>([^<]+)<\/td><\/tr>/g)].map((m) => `${m[1]} ${m[2]} (${m[3]})`);
    expect(rows.slice(0, 2)).toEqual(['0 started, disabled (SET_VRING_KICK)', '0 started, enabled (SET_VRING_ENABLE(1))']);
    expect(rows.at(-1)).toMatch(/^0 stopped, (en|dis)abled \(GET_VRING_BASE reply\)$/);
  });

  it('draws one latency chart per operation that carries what `stats --json` says (blk, --rings)', () => {
    const rec = path.join(REC, 'qemu-blk-qsd.vhsrec');
    const dir = tmpDir('report-req');
    const html = path.join(dir, 'report.html');
    fs.writeFileSync(html, reportHtml(rec));
    const { out } = chromiumWithLog(dir, ['--dump-dom', `file://${html}`]);
    const ops = statsJson(rec).sessions[0].requests!.operations;
    const charts = [...out.matchAll(/<svg [^>]*class="req-chart"[^>]*>[\s\S]*?<\/svg>/g)].map((m) => m[0]);
    expect(charts.length).toBe(ops.length);
    for (const o of ops) {
      const svg = charts.find((c) => c.includes(`data-op="${o.op}"`) && c.includes(`data-vring="${o.vring}"`));
      expect(svg, o.op).toBeDefined();
      const attr = (name: string): number => Number(new RegExp(`${name}="([^"]+)"`).exec(svg!)![1]);
      expect(attr('data-count')).toBe(o.count);
      expect(attr('data-max-us')).toBe(o.latencyUs.max);
      expect(attr('data-p99-us')).toBe(o.latencyUs.p99);
      // one dot per request (fewer than 2000 here), p50 and p99 drawn, histogram bars add up
      expect((svg!.match(/<circle [^>]*class="req"/g) ?? []).length).toBe(o.count);
      expect(svg).toMatch(/class="pct-p50"/);
      expect(svg).toMatch(/class="pct-p99"/);
      expect([...svg!.matchAll(/class="hist-bar" data-count="(\d+)"/g)].reduce((n, m) => n + Number(m[1]), 0)).toBe(o.count);
    }
  }, 120_000);
});
