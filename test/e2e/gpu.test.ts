/**
 * vhost-user-gpu end to end (Debian 13: QEMU 10 + vhost-user-gpu 10, under TCG): the guest's
 * framebuffer reaches QEMU's display through the proxy as it does directly, and the GPU socket's
 * messages are logged and recorded decoded, with real QEMU's header flags (0 and 0x4).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootMissing } from '../../src/demo/roots';
import { recordingDevices } from '../../src/recording/devices';
import { readRecording, recordingEvents } from '../../src/recording/reader';
import { tmpDir } from '../helpers';
import { runGpuGuest } from './harness/gpu';
import { checkRecording, ProxyProcess, type LogRecord } from './harness/proxy';

const updates = (gpu: LogRecord[]): LogRecord[] => gpu.filter((m) => m.request === 'GPU_UPDATE');

describe('QEMU 10 vhost-user-gpu-pci <-> vhost-user-gpu through the proxy', () => {
  it('shows the guest framebuffer as a direct run does, with the GPU socket decoded', async () => {
    const missing = rootMissing('debian13');
    if (missing) throw new Error(missing);
    const work = tmpDir('gpu');
    const direct = await runGpuGuest(path.join(work, 'direct'));
    const proxy = new ProxyProcess(work, [], 'qemu10-gpu');
    let proxied: Awaited<ReturnType<typeof runGpuGuest>>;
    try {
      proxied = await runGpuGuest(path.join(work, 'proxied'), proxy);
    } finally {
      await proxy.stop();
    }
    console.log(`screendump ${proxied.width}x${proxied.height}: ${proxied.orange} orange pixels through the proxy, ${direct.orange} directly`);
    expect(direct.orange).toBeGreaterThan((direct.width * direct.height) / 2);
    expect(proxied.orange).toBeGreaterThanOrEqual(direct.orange);

    const gpu = proxy.messages().filter((m) => m.channel === 'gpu');
    const seen = (name: string, dir?: string) => gpu.filter((m) => m.request === name && (!dir || m.dir === dir));
    // QEMU's replies carry 0x4 and the backend's requests 0, except where vhost-user-gpu leaves
    // a GPU_UPDATE's flags uninitialised (g_malloc'd message): that is flagged, and forwarded
    expect(gpu.filter((m) => m.findings?.some((f) => f.rule !== 'request-flags'))).toEqual([]);
    const junk = gpu.filter((m) => m.findings?.length);
    expect(junk.every((m) => m.request === 'GPU_UPDATE' && m.dir === 'B>F')).toBe(true);
    console.log(
      `GPU socket: ${gpu.length} messages, ${updates(gpu).length} GPU_UPDATE, ${junk.length} with uninitialised flags (${[...new Set(junk.map((m) => m.flags))].join(', ')})`,
    );
    expect(seen('GPU_GET_PROTOCOL_FEATURES', 'B>F')[0].flags).toBe('0');
    const offered = seen('GPU_GET_PROTOCOL_FEATURES', 'F>B')[0];
    expect(offered.flags).toBe('REPLY');
    expect(offered.summary).toMatch(/EDID\|DMABUF2/);
    expect(seen('GPU_SET_PROTOCOL_FEATURES')[0].summary).toMatch(/EDID/);
    expect(seen('GPU_GET_DISPLAY_INFO', 'F>B')[0].summary).toMatch(/scanout0=\d+x\d+\+0\+0/);
    expect(seen('GPU_GET_EDID', 'F>B')[0].summary).toMatch(/edid \d+ bytes/);
    expect(seen('GPU_SCANOUT').some((m) => /scanout=0 [1-9]\d*x[1-9]\d*/.test(String(m.summary)))).toBe(true);
    const updateMessages = updates(gpu);
    expect(updateMessages.length).toBeGreaterThan(0);
    // pixels summarised: the rectangle, the byte count and the first pixel (the guest's orange)
    expect(updateMessages.some((m) => /rect=\d+x\d+\+\d+\+\d+ pixels=\d+ bytes first=#00ff8000/.test(String(m.summary)))).toBe(true);
    const biggest = Math.max(...updateMessages.map((m) => m.size ?? 0));
    expect(biggest).toBeGreaterThan(64 * 1024);
    const longest = Math.max(
      ...fs
        .readFileSync(proxy.logFile, 'utf8')
        .split('\n')
        .map((l) => l.length),
    );
    expect(longest).toBeLessThan(8192);
    expect(
      proxy
        .records()
        .filter((r) => r.event === 'session-end')
        .map((r) => r.reason),
    ).not.toContainEqual(expect.stringMatching(/bad input/));

    // the device is named without --device, from QEMU's command line (GPU_SET_SOCKET confirms it)
    expect(recordingDevices(readRecording(proxy.recordFile).records).get(1)).toEqual({
      device: 'gpu',
      reason: "the peer on the listen side's command line (vhost-user-gpu)",
    });
    // the recording holds the same GPU messages, decoded the same way
    checkRecording(proxy, ['request-flags']);
    const recorded = recordingEvents(readRecording(proxy.recordFile).records).filter((e) => e.type === 'message' && e.channel === 'gpu');
    expect(recorded.map((e) => (e.type === 'message' ? e.decoded.name : ''))).toEqual(gpu.map((m) => m.request));
  }, 420_000);
});
