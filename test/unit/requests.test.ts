/** Per-request latency from ring snapshots (src/rings/requests.ts), on crafted snapshot sequences. */
import { describe, expect, it } from 'vitest';
import { RequestTracker } from '../../src/rings/requests';
import type { RingSnapshot } from '../../src/rings/snapshot';

const us = (x: number): bigint => BigInt(x * 1000);
function snap(kind: RingSnapshot['kind'], ts: number, availIdx: number, usedIdx: number, heads: number[], packed = false, readUs = 0): RingSnapshot {
  return { ts: us(ts), pair: 1, ring: 1, kind, packed, truncated: false, availIdx, usedIdx, readUs, entries: heads.map((head) => ({ head, descs: [] })) };
}

describe('RequestTracker', () => {
  it('matches out-of-order completions by head, with the time each request was first seen', () => {
    const t = new RequestTracker('generic');
    expect(t.observe(0, snap('kick', 100, 2, 0, [5, 9]))).toEqual([]);
    const first = t.observe(0, snap('call', 130, 2, 1, [9]));
    expect(first).toMatchObject([{ head: 9, latencyNs: 30_000, uncertaintyNs: 0 }]);
    const second = t.observe(0, snap('call', 180, 2, 2, [5]));
    expect(second).toMatchObject([{ head: 5, latencyNs: 80_000 }]);
    expect(t.outstanding()).toEqual([]);
    expect(t.unmatched).toBe(0);
  });

  it('sees a chain submitted without a kick (event idx) at the first snapshot whose avail index covers it', () => {
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 100, 1, 0, [0]));
    // the driver adds head 1 without kicking; a call at 150 shows avail idx 2 already
    expect(t.observe(0, snap('call', 150, 2, 1, [0]))).toMatchObject([{ head: 0, latencyNs: 50_000 }]);
    // the next kick lists head 1 (made available since the last kick): submitted at 150, not 300,
    // somewhere after the snapshot before (100)
    t.observe(0, snap('kick', 300, 3, 1, [1, 2]));
    const done = t.observe(0, snap('call', 400, 3, 3, [1, 2]));
    expect(done).toMatchObject([
      { head: 1, submittedNs: us(150), latencyNs: 250_000, uncertaintyNs: 50_000 },
      { head: 2, submittedNs: us(300), latencyNs: 100_000, uncertaintyNs: 150_000 },
    ]);
    // head 1 was seen used at 400 only: the call told the driver at once
    expect(done[0]).toMatchObject({ completedNs: us(400), notifiedNs: us(400), notifyNs: 0 });
  });

  it('completes a request whose answer chain was gone when the call was read (virtiofs frees its indirect table at once)', () => {
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 100, 1, 0, [0]));
    // seen in a real virtiofsd recording: the used element names head 0, its descriptors no longer lead into guest memory
    const [r] = t.observe(0, { ...snap('call', 150, 1, 1, [0]), error: 'a descriptor points outside every memory region' });
    expect(r).toMatchObject({ head: 0, latencyNs: 50_000 });
    expect(t.outstanding()).toEqual([]);
    expect(t.usedWithoutCall().size).toBe(0);
    // a ring that could not be read at all says nothing about its indices
    t.observe(0, snap('kick', 200, 2, 1, [1]));
    expect(t.observe(0, { ...snap('call', 250, 0, 0, []), error: 'a ring address is in no memory region' })).toEqual([]);
    expect(t.outstanding()).toMatchObject([{ head: 1 }]);
  });

  it('matches a chain the device completed before any kick listed it (seen with qemu-storage-daemon and event idx)', () => {
    // the sequence of a real vhost-user-blk recording: head 2 was made available without a kick,
    // qsd found it while busy and answered it; the kick that lists it comes after the call
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 50, 12, 12, []));
    t.observe(0, snap('kick', 100, 13, 12, [0]));
    t.observe(0, snap('kick', 110, 14, 12, [1]));
    expect(t.observe(0, snap('call', 120, 15, 13, [0]))).toMatchObject([{ head: 0, latencyNs: 20_000 }]);
    expect(t.observe(0, snap('call', 130, 15, 14, [2]))).toEqual([]);
    // available by 120 (the call's avail index 15 covers position 14), used by 130
    expect(t.observe(0, snap('kick', 200, 16, 15, [2, 1]))).toMatchObject([
      { head: 2, submittedNs: us(120), completedNs: us(130), notifiedNs: us(130), latencyNs: 10_000 },
    ]);
    expect(t.observe(0, snap('call', 210, 16, 16, [1, 1]))).toMatchObject([
      { head: 1, submittedNs: us(110), latencyNs: 90_000 },
      { head: 1, submittedNs: us(200), latencyNs: 10_000 },
    ]);
    expect(t.outstanding()).toEqual([]);
    expect(t.unmatched).toBe(0);
  });

  it('ends a request when the used index first covers it, and keeps the wait for the call apart', () => {
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 100, 1, 0, [3]));
    t.observe(1, snap('kick', 150, 0, 0, [])); // another ring: no effect on ring 0
    t.observe(0, snap('kick', 160, 1, 1, [])); // a kick with nothing new, the used index shows head 3 done
    const [r] = t.observe(0, snap('call', 200, 1, 1, [3]));
    expect(r).toMatchObject({ latencyNs: 60_000, notifyNs: 40_000, completedNs: us(160), notifiedNs: us(200) });
    // done after the kick at 100 (whose used index did not show it) and by 160
    expect(r.completionUncertaintyNs).toBe(60_000);
    expect(r.unbounded).toBeUndefined(); // a bracket of 60 µs: a latency
  });

  it('keeps a request whose completion only a kick seconds later bracketed out of the latencies (a driver that polled for it)', () => {
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 100, 1, 0, [3]));
    t.observe(0, snap('kick', 2_000_100, 2, 1, [4])); // the next request, 2 s on: head 3 was done by then
    const [polled, next] = t.observe(0, snap('call', 2_000_300, 2, 2, [3, 4]));
    expect(polled).toMatchObject({ head: 3, completedNs: us(2_000_100), completionUncertaintyNs: 2_000_000_000, unbounded: true });
    expect(next.unbounded).toBeUndefined(); // done by the device's call, 200 µs after its kick
    // a call that marks the completion is the device's own word, however long the request took
    const slow = new RequestTracker('generic');
    slow.observe(0, snap('kick', 100, 1, 0, [0]));
    const [long] = slow.observe(0, snap('call', 3_000_100, 1, 1, [0]));
    expect(long).toMatchObject({ latencyNs: 3_000_000_000, completionUncertaintyNs: 3_000_000_000 });
    expect(long.unbounded).toBeUndefined();
  });

  it('bounds a request done while its kick was forwarded by the read time of that snapshot', () => {
    const t = new RequestTracker('generic');
    // a polling driver (SeaBIOS): the device is done before the kick's snapshot is read, and the
    // call comes seconds later; the request did not take seconds
    t.observe(0, snap('kick', 100, 1, 1, [0], false, 7));
    const [r] = t.observe(0, snap('call', 4_000_100, 1, 1, [0]));
    expect(r).toMatchObject({ latencyNs: 7_000, belowResolution: true, notifyNs: 4_000_000_000 - 7_000, completionUncertaintyNs: 7_000 });
    // without the read time (older recordings) only the call bounds it
    const old = new RequestTracker('generic');
    old.observe(0, snap('kick', 100, 1, 1, [0]));
    expect(old.observe(0, snap('call', 4_000_100, 1, 1, [0]))[0].latencyNs).toBe(4_000_000_000);
  });

  it('reports a chain reused before the call of its first use in order (same head twice in one call)', () => {
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 100, 1, 0, [2]));
    t.observe(0, snap('kick', 120, 2, 1, [2])); // head 2 used at once and submitted again
    const done = t.observe(0, snap('call', 150, 2, 2, [2, 2]));
    // the first use was seen at 120 already (used idx 1), the second at the call
    expect(done.map((d) => d.latencyNs)).toEqual([20_000, 30_000]);
    expect(t.unmatched).toBe(0);
  });

  it('keeps what never completes as outstanding, and counts completions it never saw submitted', () => {
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 100, 1, 0, [7]));
    t.observe(0, snap('call', 110, 1, 0, [4])); // submitted before the snapshots began
    expect(t.unmatched).toBe(1);
    expect(t.outstanding()).toMatchObject([{ vring: 0, head: 7, submittedNs: us(100) }]);
  });

  it('completes chains in flight at GET_VRING_BASE by the calls that follow, and abandons the rest when the ring runs again', () => {
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 100, 2, 0, [0, 1]));
    t.observe(0, snap('base', 110, 2, 1, []));
    // the base snapshot's used index already covered it: done by 110, told at 120
    expect(t.observe(0, snap('call', 120, 2, 1, [0]))).toMatchObject([{ head: 0, latencyNs: 10_000, notifyNs: 10_000 }]);
    t.observe(0, snap('kick', 200, 0, 0, [])); // a new ring
    expect(t.abandoned).toBe(1);
    expect(t.outstanding()).toEqual([]);
  });

  it("takes a polling driver's request as done at its own kick when the call comes after GET_VRING_BASE, and starts the next ring afresh", () => {
    // as QEMU + qemu-storage-daemon do it (recorded): SeaBIOS submits head 0 and polls, the device
    // is done within the kick's snapshot; at the switch to Linux, GET_VRING_BASE answers 1, a call
    // (reading the old ring) lists head 0, then Linux sets the ring up again from index 0
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 100, 1, 1, [0], false, 5));
    t.observe(0, snap('base', 9_000_000, 1, 1, []));
    const [bios] = t.observe(0, snap('call', 9_040_000, 1, 1, [0]));
    expect(bios).toMatchObject({ head: 0, latencyNs: 5_000, belowResolution: true });
    t.observe(0, snap('kick', 9_070_000, 1, 0, [0]));
    const [linux] = t.observe(0, snap('call', 9_071_000, 1, 1, [0]));
    expect(linux).toMatchObject({ head: 0, submittedNs: us(9_070_000), latencyNs: 1_000_000 });
    // the new ring's used index counts from its own start: no wrap-around into 65535 uncalled completions
    expect([...t.usedWithoutCall()]).toEqual([]);
    expect(t.abandoned).toBe(0);
    expect(t.outstanding()).toEqual([]);
  });

  it('takes what no call listed as done when its ring stopped idle, bounded by the snapshots around it (QEMU 7.2 SeaBIOS on qemu-storage-daemon)', () => {
    // SeaBIOS submits head 0 and polls; the kick's snapshot read before the device finished; no call
    // follows. GET_VRING_BASE finds the ring idle (avail 1, used 1); Linux resets the ring before the
    // next call reads it (avail 0, used 0), then submits from index 0.
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 100, 1, 0, [0]));
    expect(t.observe(0, snap('base', 11_000_000, 1, 1, []))).toEqual([]);
    expect(t.observe(0, snap('call', 11_080_000, 0, 0, []))).toEqual([]);
    const done = t.observe(0, snap('kick', 11_100_000, 1, 0, [0]));
    expect(done).toHaveLength(1);
    const [bios] = done;
    // done somewhere between its kick and the stop: reported with that whole span as its bound
    expect(bios).toMatchObject({
      head: 0,
      submittedNs: us(100),
      completedNs: us(11_000_000),
      notifiedNs: us(11_000_000),
      completionUncertaintyNs: 10_999_900_000,
      unbounded: true, // no latency: stats leaves it out of the percentiles
    });
    expect(bios!.notifyNs).toBeUndefined();
    expect(t.abandoned).toBe(0);
    // Linux's request on the new ring is its own
    expect(t.observe(0, snap('call', 11_101_000, 1, 1, [0]))).toMatchObject([{ head: 0, submittedNs: us(11_100_000), latencyNs: 1_000_000 }]);
    expect(t.outstanding()).toEqual([]);
  });

  it('handles packed rings by buffer id, from the kick that lists a chain', () => {
    const t = new RequestTracker('generic');
    t.observe(0, snap('kick', 100, 0x8003, 0x8000, [0, 1], true));
    const done = t.observe(0, snap('call', 140, 0x8003, 0x8003, [1, 0], true));
    expect(done.map((d) => [d.head, d.latencyNs])).toEqual([
      [1, 40_000],
      [0, 40_000],
    ]);
    expect(done[0].notifyNs).toBeUndefined();
  });

  it('keeps at most two submissions per head: a driver listing heads it never gets back cannot grow it', () => {
    const t = new RequestTracker('generic');
    // 10 000 kicks each listing heads 0..63 again (a guest writing garbage to its avail ring)
    for (let k = 0; k < 10_000; k++)
      t.observe(
        0,
        snap(
          'kick',
          100 + k,
          (k + 1) * 64,
          0,
          Array.from({ length: 64 }, (_x, i) => i),
          true,
        ),
      );
    expect(t.outstanding().length).toBe(128);
    expect(t.abandoned).toBe(10_000 * 64 - 128);
  });

  it('names net operations by queue direction', () => {
    const t = new RequestTracker('net');
    t.observe(0, snap('kick', 100, 1, 0, [0]));
    t.observe(1, snap('kick', 100, 1, 0, [0]));
    expect(t.observe(0, snap('call', 900, 1, 1, [0]))[0].op).toBe('rx fill');
    expect(t.observe(1, snap('call', 120, 1, 1, [0]))[0].op).toBe('tx');
  });
});
