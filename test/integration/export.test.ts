/** Exports: Perfetto trace JSON, and pcapng decoded by real tshark with the generated dissector. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { wiresharkDissector } from '../../src/analysis/pcapng';
import { exportRecording } from '../../src/cli/export-command';
import { tmpDir } from '../helpers';

const REC = path.resolve(__dirname, '..', '..', 'recordings');

describe('export', () => {
  it('perfetto: a track per channel and vring, requests as slices ending at their reply, notifications as instants', () => {
    const trace = JSON.parse(exportRecording(path.join(REC, 'qemu-blk-qsd.vhsrec'), 'perfetto').toString());
    const ev = trace.traceEvents as { name: string; ph: string; dur?: number; tid: number; args?: Record<string, unknown> }[];
    const tracks = ev.filter((e) => e.name === 'thread_name').map((e) => e.args?.name);
    expect(tracks).toEqual(expect.arrayContaining(['main channel', 'backend channel', 'vring 0']));
    const getConfig = ev.find((e) => e.name === 'GET_CONFIG' && e.ph === 'X')!;
    expect(getConfig.dur).toBeGreaterThan(0);
    expect(getConfig.args?.reply).toMatch(/^offset=0 size=57/);
    expect(ev.filter((e) => e.ph === 'i' && (e.name === 'kick' || e.name === 'call')).length).toBeGreaterThan(10);
    expect(ev.find((e) => e.name === 'CONFIG_CHANGE_MSG')).toMatchObject({ ph: 'X', tid: 2 });
  });

  it('the dissector in wireshark/ is the one the protocol tables generate', () => {
    expect(fs.readFileSync(path.resolve(__dirname, '..', '..', 'wireshark', 'vhostscope.lua'), 'utf8')).toBe(wiresharkDissector());
  });

  it('pcapng: tshark with the dissector names requests and decodes headers and payloads', () => {
    const dir = tmpDir('pcap');
    const pcap = path.join(dir, 'blk.pcapng');
    fs.writeFileSync(pcap, exportRecording(path.join(REC, 'qemu-blk-qsd.vhsrec'), 'pcapng'));
    fs.chmodSync(dir, 0o755);
    const out = execFileSync(
      'tshark',
      [
        '-X',
        `lua_script:${path.resolve(__dirname, '..', '..', 'wireshark', 'vhostscope.lua')}`,
        '-r',
        pcap,
        '-T',
        'fields',
        '-E',
        'separator=/t',
        '-e',
        'vhostuser.channel',
        '-e',
        'vhostuser.direction',
        '-e',
        'vhostuser.request_name',
        '-e',
        'vhostuser.flags.reply',
        '-e',
        'vhostuser.size',
        '-e',
        'vhostuser.features',
        '-e',
        'vhostuser.region.size',
        '-e',
        'vhostuser.vring',
        '-e',
        'vhostuser.num',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const rows = out
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(rows.length).toBeGreaterThan(40);
    expect(rows[0].slice(0, 3)).toEqual(['0', '0', 'GET_FEATURES']);
    expect(rows.find((r) => r[2] === 'SET_PROTOCOL_FEATURES')?.[5]).toBe(
      'MQ|LOG_SHMFD|REPLY_ACK|BACKEND_REQ|PAGEFAULT|CONFIG|BACKEND_SEND_FD|CONFIGURE_MEM_SLOTS',
    );
    expect(rows.find((r) => r[2] === 'ADD_MEM_REG' && r[3] !== 'True')?.[6]).toBe('0x0000000010000000');
    expect(rows.find((r) => r[2] === 'SET_VRING_NUM')?.slice(7, 9)).toEqual(['0', '128']);
    expect(rows.find((r) => r[2] === 'CONFIG_CHANGE_MSG')?.slice(0, 2)).toEqual(['1', '1']);
  });
});
