/** The blk latency bench's reading of what the guest printed (lab/qemu-blk.ts). */
import { describe, expect, it } from 'vitest';
import { parseBlkPasses } from '../../lab/qemu-blk';

describe('parseBlkPasses', () => {
  it("takes each pass's requests and their mean latency from three /sys/block/vda/stat snapshots", () => {
    // printed by a QEMU 7.2 guest on qemu-storage-daemon (100 reads, then 100 writes, of 4 KiB)
    const line =
      'GUEST-BLK:       67        0      536       43        0        0        0        0        0       40       43        0        0        0        0        0        0 |      167        0     1336       69        0        0        0        0        0       64       69        0        0        0        0        0        0 |      167        0     1336       69      100        0      800       15        0       80       85        0        0        0        0        0        0';
    // reads: 167 - 67 = 100 requests in 69 - 43 = 26 ms; writes: 100 in 15 ms
    expect(parseBlkPasses(`boot noise\n${line}\nGUEST-RESULT: done\n`)).toEqual([{ reads: 100, writes: 100, readUs: 260, writeUs: 150 }]);
  });
});
