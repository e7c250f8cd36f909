/**
 * The HTML report, opened in a real headless Chromium (Debian's chromium): the plots render,
 * the console stays clean, and a screenshot is taken.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { reportHtml } from '../../src/cli/report-command';
import { tmpDir } from '../helpers';

const REC = path.resolve(__dirname, '..', '..', 'recordings');

function chromium(dir: string, args: string[]): { out: string; err: string } {
  const base = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${path.join(dir, 'profile')}`, '--enable-logging=stderr', '--v=0'];
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
  const base = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${path.join(dir, 'profile')}`, '--enable-logging=stderr', '--v=0'];
  const out = execFileSync('chromium', [...base, ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', fd] });
  fs.closeSync(fd);
  return { out, err: fs.readFileSync(errFile, 'utf8') };
}

describe('HTML report', () => {
  it.each(['qemu-blk-qsd.vhsrec', 'qemu-net-backend-restart.vhsrec'])('%s renders in Chromium with its plots and no console error', (rec) => {
    const dir = tmpDir('report');
    const html = path.join(dir, 'report.html');
    fs.writeFileSync(html, reportHtml(path.join(REC, rec)));
    const text = fs.readFileSync(html, 'utf8');
    expect(text).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?https?:/); // self-contained
    const { out, err } = chromiumWithLog(dir, ['--dump-dom', `file://${html}`]);
    const sessions = (text.match(/<section class="session">/g) ?? []).length;
    // every session's timeline and histogram block was drawn by the inline script
    expect(out).toMatch(new RegExp(`data-plots="${2 * sessions}"`));
    expect((out.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(sessions);
    expect(out).toMatch(/kick→next call per vring/);
    expect(err.split('\n').filter((l) => /CONSOLE/.test(l))).toEqual([]);
    const png = path.join(dir, 'report.png');
    chromium(dir, ['--window-size=1200,1600', `--screenshot=${png}`, `file://${html}`]);
    const shot = fs.readFileSync(png);
    expect(shot.subarray(1, 4).toString()).toBe('PNG');
    expect(shot.length).toBeGreaterThan(30_000); // a rendered page, not a blank one
  }, 120_000);
});
