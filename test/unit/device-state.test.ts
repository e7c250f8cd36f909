/** The interposed device-state pipe (src/proxy/device-state.ts): every byte through, counted, both ends closed. */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { DeviceStatePipe, type StateTransfer } from '../../src/proxy/device-state';
import { openFds, readAll, until } from '../helpers';

/** Writes `data` into fd through the thread pool (a blocking pipe write must not stop the loop) and closes it. */
function writeAll(fd: number, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const w = fs.createWriteStream('', { fd, autoClose: true });
    w.on('error', reject);
    w.end(data, () => resolve());
  });
}

const state = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff));

describe('DeviceStatePipe', () => {
  it('save: what the back-end writes reaches the front-end whole, counted, the first bytes kept', async () => {
    const before = openFds();
    const [feRead, feWrite] = native.pipe();
    let ended: StateTransfer | undefined;
    const p = new DeviceStatePipe('save', feWrite, 1000, (t) => (ended = t));
    const [got] = await Promise.all([readAll(feRead), writeAll(p.backendFd, state)]);
    expect(got.equals(state)).toBe(true);
    // the reader can see its end of file before the pipe has reported the transfer's end
    await until(() => ended !== undefined, 5000, 'the end of the transfer');
    expect(ended).toMatchObject({ direction: 'save', bytes: state.length, truncated: true });
    expect(ended!.error).toBeUndefined();
    expect(ended!.data!.equals(state.subarray(0, 1000))).toBe(true);
    expect(ended!.endNs >= ended!.startNs).toBe(true);
    await until(() => openFds() === before, 5000, 'both ends closed'); // a stream closes its fd in the thread pool
    expect(openFds()).toBe(before);
  });

  it('load: what the front-end writes reaches the back-end whole; nothing kept unless asked', async () => {
    const before = openFds();
    const [feRead, feWrite] = native.pipe();
    let ended: StateTransfer | undefined;
    const p = new DeviceStatePipe('load', feRead, 0, (t) => (ended = t));
    const [got] = await Promise.all([readAll(p.backendFd), writeAll(feWrite, state)]);
    expect(got.equals(state)).toBe(true);
    await until(() => ended !== undefined, 5000, 'the end of the transfer');
    expect(ended).toMatchObject({ direction: 'load', bytes: state.length });
    expect(ended!.data).toBeUndefined();
    await until(() => openFds() === before, 5000, 'both ends closed');
    expect(openFds()).toBe(before);
  });

  it('a session that ends mid-transfer closes both ends: the reader sees its end of file, no fd stays open', async () => {
    const before = openFds();
    const [feRead, feWrite] = native.pipe();
    let ended: StateTransfer | undefined;
    const p = new DeviceStatePipe('save', feWrite, 0, (t) => (ended = t));
    const reading = readAll(feRead);
    const w = fs.createWriteStream('', { fd: p.backendFd, autoClose: true });
    await new Promise<void>((resolve) => w.write(state.subarray(0, 1000), () => resolve()));
    await new Promise((r) => setTimeout(r, 50));
    p.close();
    expect((await reading).length).toBeLessThanOrEqual(1000);
    expect(ended).toMatchObject({ error: 'the session ended during the transfer' });
    w.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(openFds()).toBe(before);
  });
});
