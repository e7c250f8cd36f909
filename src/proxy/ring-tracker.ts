/**
 * `--rings`: follows one session's memory table and vring setup, maps the guest memory it is
 * given read-only (native GuestMemory), and has the relay snapshot a vring's state whenever it
 * relays that vring's kick or call. What the relay saw comes back as ring events.
 *
 * The fds of SET_MEM_TABLE / ADD_MEM_REG are dup()ed before the message is forwarded (the
 * forwarded copies go to the backend); the mappings go with REM_MEM_REG, a new table, or the
 * end of the session.
 *
 * Ring addresses are the front-end's virtual addresses, unless GPA_ADDRESSES (protocol feature
 * 21, 2026) is in use: then they are guest-physical, and are translated through the regions.
 */
import { native, type GuestMemory } from '../native';
import { decoders, hasBit, HEADER_SIZE, MAX_RAM_SLOTS, MAX_VRINGS, ProtocolFeature, regionHolds, Request, VirtioFeature, type MemoryRegion } from '../protocol';
import type { RingSnapshot } from '../rings/snapshot';
import type { RelayHub } from './relay-hub';

export type RingsMode = 'ring' | 'headers';

/** bytes of buffer contents copied per chain with --rings=headers (a virtio-net header and an ICMP echo fit) */
export const HEADER_BYTES = 128;

interface VringSetup {
  ringId: number;
  num?: number;
  base?: number;
  addr?: { desc: bigint; avail: bigint; used: bigint };
}

export class RingTracker {
  readonly memory: GuestMemory = new native.GuestMemory();
  private readonly vrings = new Map<number, VringSetup>();
  private packed = false;
  private closed = false;
  /** GPA_ADDRESSES in use: ring addresses are guest-physical */
  private gpaAddresses = false;
  /** the memory table as the front-end gave it (mapped or not), to translate guest-physical ring addresses */
  private regions: MemoryRegion[] = [];

  constructor(
    private readonly hub: RelayHub,
    private readonly mode: RingsMode,
    private readonly onSnapshot: (vring: number, s: RingSnapshot, raw: Buffer) => void,
    private readonly onProblem: (msg: string) => void,
  ) {}

  private vring(i: number): VringSetup {
    if (i >= MAX_VRINGS) throw new Error(`vring ${i} is beyond the ${MAX_VRINGS} a virtio device can have; not followed`);
    let v = this.vrings.get(i);
    if (!v) {
      v = { ringId: this.hub.allocRing((s, raw) => this.onSnapshot(i, s, raw)) };
      this.vrings.set(i, v);
    }
    return v;
  }

  /**
   * A frontend request about to be forwarded: keep what rings need. Called before the send,
   * because the fds belong to the channel once sent.
   */
  beforeForward(request: number, raw: Buffer, fds: number[]): void {
    if (this.closed) return;
    const p = raw.subarray(HEADER_SIZE);
    try {
      switch (request) {
        case Request.SET_MEM_TABLE: {
          this.memory.clear();
          const regions = decoders.memTable(p).regions as MemoryRegion[];
          this.regions = regions.slice(0, MAX_RAM_SLOTS);
          // rings already given to the relay read through this same GuestMemory: nothing to redo
          regions.forEach((r, i) => fds[i] !== undefined && this.map(fds[i], r));
          break;
        }
        case Request.ADD_MEM_REG: {
          const r = decoders.memRegion(p).region as MemoryRegion;
          if (this.regions.length < MAX_RAM_SLOTS) this.regions.push(r);
          if (fds.length === 1) this.map(fds[0], r);
          break;
        }
        case Request.REM_MEM_REG: {
          const r = decoders.memRegion(p).region as MemoryRegion;
          this.regions = this.regions.filter((x) => x.guestPhysAddr !== r.guestPhysAddr || x.memorySize !== r.memorySize);
          this.memory.remove(r.guestPhysAddr, r.memorySize);
          break;
        }
        case Request.SET_PROTOCOL_FEATURES:
          this.gpaAddresses = hasBit(decoders.protocolFeatures(p).protocolFeatures as bigint, ProtocolFeature.GPA_ADDRESSES);
          break;
        case Request.SET_FEATURES:
          this.packed = hasBit(decoders.features(p).features as bigint, VirtioFeature.RING_PACKED);
          break;
        case Request.SET_VRING_NUM: {
          const s = decoders.vringState(p);
          const v = this.vring(s.index as number);
          v.num = s.num as number;
          this.program(v); // (once the address is known; a restarted ring starts over)
          break;
        }
        case Request.SET_VRING_BASE: {
          const s = decoders.vringState(p);
          const v = this.vring(s.index as number);
          v.base = s.num as number;
          this.program(v);
          break;
        }
        case Request.SET_VRING_ADDR: {
          const a = decoders.vringAddr(p);
          const v = this.vring(a.index as number);
          v.addr = { desc: a.desc as bigint, avail: a.avail as bigint, used: a.used as bigint };
          this.program(v);
          break;
        }
      }
    } catch (err) {
      this.onProblem(`--rings: ${(err as Error).message}`);
    }
  }

  private map(fd: number, r: MemoryRegion): void {
    if (this.memory.regions >= MAX_RAM_SLOTS) {
      this.onProblem(
        `--rings: more than ${MAX_RAM_SLOTS} memory regions (ADD_MEM_REG); the region at gpa 0x${r.guestPhysAddr.toString(16)} is not mapped, its rings are not shown`,
      );
      return;
    }
    // a region on FUSE or NFS would be read with pread on the relay thread every session shares,
    // and such a read can wait for a server that never answers
    const remote = native.fdInfo(fd).remote;
    if (remote) {
      this.onProblem(
        `--rings: the region at gpa 0x${r.guestPhysAddr.toString(16)} is a file on a ${remote} file system, whose reads may wait for its server: not read, its rings are not shown`,
      );
      return;
    }
    const own = native.dup(fd);
    try {
      this.memory.add(own, r.guestPhysAddr, r.memorySize, r.userspaceAddr, r.mmapOffset);
    } catch (err) {
      this.onProblem(
        `--rings: cannot map the region at gpa 0x${r.guestPhysAddr.toString(16)} (${r.memorySize} bytes): ${(err as Error).message}; its rings are not shown`,
      );
    }
  }

  /** Gives the relay the ring's place once address, size and memory are known. */
  private program(v: VringSetup): void {
    if (!v.addr || !v.num) return;
    // split: SET_VRING_BASE is the next avail index, and used has caught up with it; packed:
    // bits 0-14 position, bit 15 wrap counter, for both the driver and the device side
    const base = (v.base ?? (this.packed ? 0x8000 : 0)) & 0xffff;
    const a = this.gpaAddresses ? this.toFrontendAddresses(v.addr) : v.addr;
    if (!a) return;
    this.hub.setRing(v.ringId, this.memory, a.desc, a.avail, a.used, v.num, this.packed, this.mode === 'headers' ? HEADER_BYTES : 0, base, base);
  }

  /** Guest-physical ring addresses (GPA_ADDRESSES) as the front-end's virtual ones the relay reads by; undefined (told) when one is in no region. */
  private toFrontendAddresses(addr: NonNullable<VringSetup['addr']>): VringSetup['addr'] {
    const out = { ...addr };
    for (const k of ['desc', 'avail', 'used'] as const) {
      const r = this.regions.find((x) => regionHolds(x, addr[k]));
      if (!r) {
        this.onProblem(`--rings: the ring's ${k} at guest-physical 0x${addr[k].toString(16)} (GPA_ADDRESSES) is in no memory region; this ring is not shown`);
        return undefined;
      }
      out[k] = r.userspaceAddr + (addr[k] - r.guestPhysAddr);
    }
    return out;
  }

  /** The interposer made a relay pair for this vring's kick or call. */
  attach(vring: number, kind: 'kick' | 'call' | 'err', pairId: number | undefined): void {
    if (this.closed || pairId === undefined || kind === 'err') return;
    this.hub.attachRing(pairId, this.vring(vring).ringId, kind === 'kick' ? 0 : 1);
  }

  /** The ring's indices at GET_VRING_BASE time (before its pairs go). */
  snapshotNow(vring: number): { snapshot: RingSnapshot; raw: Buffer } | undefined {
    const v = this.vrings.get(vring);
    return v?.addr ? this.hub.snapshotRing(v.ringId) : undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const v of this.vrings.values()) this.hub.freeRing(v.ringId);
    this.vrings.clear();
    this.memory.clear();
  }
}
