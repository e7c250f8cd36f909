// Guest memory mappings and vring snapshots. See rings.h; the record layout is documented once,
// in src/rings/snapshot.ts, which decodes it.
#include "rings.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "closer.h"

namespace vhs {

GuestMemory::~GuestMemory() { Clear(); }

// Whether the kernel forbids shrinking the file: only then can a mapping of it never fault.
static bool SealedAgainstShrinking(int fd) {
  int seals = fcntl(fd, F_GET_SEALS);
  return seals >= 0 && (seals & F_SEAL_SHRINK);
}

int GuestMemory::Add(int fd, uint64_t gpa, uint64_t size, uint64_t uaddr, uint64_t mmap_offset) {
  // The seals first, the size after: once sealed against shrinking the size read next can only
  // grow, so a mapping of it never faults. Read the other way round, a peer could shrink and seal
  // in between and leave a mapping past the file's end (SIGBUS on the relay thread).
  const bool sealed = SealedAgainstShrinking(fd);
  struct stat st {};
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return e;
  }
  uint64_t file_len = static_cast<uint64_t>(st.st_size);
  if (size == 0 || mmap_offset > file_len || size > file_len - mmap_offset) {
    close(fd);
    return EINVAL;  // the region does not fit in the file: nothing to read safely
  }
  Region r;
  if (sealed) {
    // Map from offset 0 so that any alignment the file needs holds; the region is a window of it.
    void* p = mmap(nullptr, file_len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      close(fd);
      return e;
    }
    r.map = static_cast<const uint8_t*>(p);
    r.map_len = file_len;
  }
  std::lock_guard<std::mutex> lock(mu_);
  r.fd = fd;
  r.gpa = gpa;
  r.size = size;
  r.uaddr = uaddr;
  r.mmap_offset = mmap_offset;
  regions_.push_back(r);
  return 0;
}

static void Unmap(Region& r) {
  if (r.map) munmap(const_cast<uint8_t*>(r.map), r.map_len);
  if (r.fd >= 0) CloseForeign(r.fd);  // a file-backed region's close may wait for its file system
  r.map = nullptr;
  r.fd = -1;
}

bool GuestMemory::Remove(uint64_t gpa, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < regions_.size(); i++) {
    if (regions_[i].gpa == gpa && regions_[i].size == size) {
      Unmap(regions_[i]);
      regions_.erase(regions_.begin() + static_cast<long>(i));
      return true;
    }
  }
  return false;
}

void GuestMemory::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& r : regions_) Unmap(r);
  regions_.clear();
}

size_t GuestMemory::Count() {
  std::lock_guard<std::mutex> lock(mu_);
  return regions_.size();
}

size_t GuestMemory::Mapped() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<size_t>(
      std::count_if(regions_.begin(), regions_.end(), [](const Region& r) { return r.map != nullptr; }));
}

// pread() the whole range, or report that the file ended first (it shrank under us).
static int ReadFile(int fd, uint64_t off, void* out, uint64_t len) {
  auto* dst = static_cast<uint8_t*>(out);
  while (len > 0) {
    ssize_t n = pread(fd, dst, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return kErrShrunk;
    dst += n;
    off += static_cast<uint64_t>(n);
    len -= static_cast<uint64_t>(n);
  }
  return kErrNone;
}

int GuestMemory::Read(uint64_t addr, bool by_gpa, void* out, uint64_t len) {
  for (const Region& r : regions_) {
    uint64_t base = by_gpa ? r.gpa : r.uaddr;
    if (addr < base || addr - base >= r.size || len > r.size - (addr - base)) continue;
    uint64_t off = r.mmap_offset + (addr - base);
    if (!r.map) return ReadFile(r.fd, off, out, len);
    if (off + len > r.map_len) return kErrShrunk;
    memcpy(out, r.map + off, len);  // sealed: the file cannot be shorter than map_len
    return kErrNone;
  }
  return by_gpa ? kErrDescUnmapped : kErrRingUnmapped;
}

namespace {

constexpr int kMaxEntries = 64;
constexpr int kMaxDescs = 128;  // a 512 KiB block request of 4 KiB pages, and its header and status
constexpr uint16_t kLaterDescCap = 64;
constexpr uint32_t kSmallDesc = 16;

constexpr uint16_t VRING_DESC_F_NEXT = 1;
constexpr uint16_t VRING_DESC_F_INDIRECT = 4;
constexpr uint16_t VRING_PACKED_DESC_F_AVAIL = 1 << 7;
constexpr uint16_t VRING_PACKED_DESC_F_USED = 1 << 15;

template <typename T>
void Put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86_64, aarch64): the format says LE
  out.insert(out.end(), b, b + sizeof(T));
}

template <typename T>
void PutAt(std::vector<uint8_t>& out, size_t at, T v) {
  memcpy(out.data() + at, &v, sizeof(T));
}

struct Writer {
  std::vector<uint8_t>& out;
  size_t start;
  uint16_t entries = 0;
  uint8_t flags = 0;
  uint16_t err = 0;
  void Fail(uint16_t e) {
    flags |= kSnapError;
    if (!err) err = e;
  }
};

// One descriptor: {u64 addr, u32 len, u16 flags, u16 next_or_id, u16 cap_len, bytes}
uint16_t PutDesc(Writer& w, GuestMemory& mem, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next_or_id,
                 uint16_t cap) {
  Put<uint64_t>(w.out, addr);
  Put<uint32_t>(w.out, len);
  Put<uint16_t>(w.out, flags);
  Put<uint16_t>(w.out, next_or_id);
  uint16_t n = static_cast<uint16_t>(std::min<uint64_t>(cap, len));
  if (flags & VRING_DESC_F_INDIRECT) n = 0;  // a table of descriptors, not data
  size_t at = w.out.size();
  Put<uint16_t>(w.out, 0);
  if (!n) return 0;
  std::vector<uint8_t> tmp(n);
  int e = mem.Read(addr, true, tmp.data(), n);
  if (e) {
    w.Fail(static_cast<uint16_t>(e));
    return 0;
  }
  PutAt<uint16_t>(w.out, at, n);
  w.out.insert(w.out.end(), tmp.begin(), tmp.end());
  return n;
}

// Bytes to copy from the k-th descriptor of a chain: the first gets the budget (a net header and
// frame, a block or FUSE request header), later ones a little of it, and small ones (a block
// status byte, a FUSE reply header) always, whatever is left: they are what a request's
// outcome is made of, and they come last.
uint16_t CapFor(int k, uint16_t budget, uint32_t len) {
  if (k == 0) return budget;
  if (len <= kSmallDesc) return static_cast<uint16_t>(len);
  return std::min(budget, kLaterDescCap);
}

// A 16-byte descriptor as stored: split rings lay it out {addr, len, flags, next}, packed rings
// {addr, len, id, flags}; `a` and `b` are the last two fields in that order.
struct RawDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t a, b;
};

// Reads descriptor i of a table (a ring's own, by front-end address, or an indirect one, by guest address).
bool ReadDesc(Writer& w, GuestMemory& mem, uint64_t table, bool by_gpa, uint32_t i, RawDesc& d) {
  uint8_t raw[16];
  int e = mem.Read(table + uint64_t(i) * 16, by_gpa, raw, 16);
  if (e) {
    w.Fail(static_cast<uint16_t>(e));
    return false;
  }
  memcpy(&d.addr, raw, 8);
  memcpy(&d.len, raw + 8, 4);
  memcpy(&d.a, raw + 12, 2);
  memcpy(&d.b, raw + 14, 2);
  return true;
}

// The k-th descriptor of a chain, with as many of its bytes as the chain's budget allows.
void PutChainDesc(Writer& w, GuestMemory& mem, int k, uint16_t& budget, uint64_t addr, uint32_t len, uint16_t flags,
                  uint16_t next_or_id) {
  uint16_t got = PutDesc(w, mem, addr, len, flags, next_or_id, CapFor(k, budget, len));
  if (k == 0 || len > kSmallDesc) budget = static_cast<uint16_t>(budget - std::min(budget, got));
}

// A split-ring chain from desc index head: the entry's descriptors. An indirect descriptor
// (RING_INDIRECT_DESC, which Linux guests use for block and fs requests) is replaced by the
// descriptors of its table, so that the chain reads as the device sees it.
void SplitChain(Writer& w, RingState& r, uint16_t head, uint32_t used_len) {
  GuestMemory& mem = *r.mem;
  size_t at = w.out.size();
  Put<uint16_t>(w.out, head);
  Put<uint16_t>(w.out, 0);  // ndesc, patched below
  Put<uint32_t>(w.out, used_len);
  uint16_t budget = r.header_bytes;
  uint32_t d = head;
  uint64_t table = r.desc;
  bool by_gpa = false;
  uint32_t table_len = r.num;
  int k = 0;
  for (int steps = 0; k < kMaxDescs; steps++) {
    if (d >= table_len || steps > r.num + kMaxDescs) {
      w.Fail(kErrChain);
      break;
    }
    RawDesc desc;
    if (!ReadDesc(w, mem, table, by_gpa, d, desc)) break;
    uint16_t flags = desc.a, next = desc.b;
    if ((flags & VRING_DESC_F_INDIRECT) && !by_gpa) {
      table = desc.addr;
      by_gpa = true;
      table_len = desc.len / 16;
      d = 0;
      continue;
    }
    PutChainDesc(w, mem, k, budget, desc.addr, desc.len, flags, next);
    k++;
    if (!(flags & VRING_DESC_F_NEXT)) break;
    d = next;
    if (k == kMaxDescs) w.flags |= kSnapTruncated;
  }
  PutAt<uint16_t>(w.out, at + 2, static_cast<uint16_t>(k));
  w.entries++;
}

bool ReadU16(Writer& w, GuestMemory& mem, uint64_t addr, uint16_t& v) {
  int e = mem.Read(addr, false, &v, 2);
  if (e) w.Fail(static_cast<uint16_t>(e));
  return e == 0;
}

void Split(Writer& w, RingState& r, uint8_t kind, uint16_t& avail_idx, uint16_t& used_idx) {
  GuestMemory& mem = *r.mem;
  if (!ReadU16(w, mem, r.avail + 2, avail_idx) || !ReadU16(w, mem, r.used + 2, used_idx)) return;
  if (kind == kSnapKick) {
    uint16_t n = static_cast<uint16_t>(avail_idx - r.last_avail);
    if (n > r.num) n = r.num;  // a confused or reset ring: show at most one ring's worth
    for (uint16_t i = 0; i < n; i++) {
      if (w.entries >= kMaxEntries) {
        w.flags |= kSnapTruncated;
        break;
      }
      uint16_t head;
      if (!ReadU16(w, mem, r.avail + 4 + uint64_t((r.last_avail + i) % r.num) * 2, head)) break;
      SplitChain(w, r, head, 0);
    }
    r.last_avail = avail_idx;
  } else if (kind == kSnapCall) {
    uint16_t n = static_cast<uint16_t>(used_idx - r.last_used);
    if (n > r.num) n = r.num;
    for (uint16_t i = 0; i < n; i++) {
      if (w.entries >= kMaxEntries) {
        w.flags |= kSnapTruncated;
        break;
      }
      uint32_t elem[2];
      int e = mem.Read(r.used + 4 + uint64_t((r.last_used + i) % r.num) * 8, false, elem, 8);
      if (e) {
        w.Fail(static_cast<uint16_t>(e));
        break;
      }
      if (elem[0] >= r.num) {
        w.Fail(kErrChain);
        break;
      }
      SplitChain(w, r, static_cast<uint16_t>(elem[0]), elem[1]);
    }
    r.last_used = used_idx;
  }
}

bool ReadPacked(Writer& w, RingState& r, uint16_t pos, uint64_t& addr, uint32_t& len, uint16_t& id, uint16_t& flags) {
  RawDesc d;
  if (!ReadDesc(w, *r.mem, r.desc, false, pos, d)) return false;
  addr = d.addr;
  len = d.len;
  id = d.a;
  flags = d.b;
  return true;
}

void Packed(Writer& w, RingState& r, uint8_t kind) {
  w.flags |= kSnapPacked;
  if (r.chain_len.size() < r.num) r.chain_len.resize(r.num, 1);
  if (kind == kSnapKick) {
    uint16_t pos = r.last_avail & 0x7fff;
    bool wrap = r.last_avail >> 15;
    for (int scanned = 0; scanned < r.num && w.entries < kMaxEntries;) {
      uint64_t addr;
      uint32_t len;
      uint16_t id, flags;
      if (pos >= r.num || !ReadPacked(w, r, pos, addr, len, id, flags)) break;
      bool a = flags & VRING_PACKED_DESC_F_AVAIL, u = flags & VRING_PACKED_DESC_F_USED;
      if (!(a == wrap && u != wrap)) break;  // not made available since we last looked
      size_t at = w.out.size();
      Put<uint16_t>(w.out, 0);
      Put<uint16_t>(w.out, 0);
      Put<uint32_t>(w.out, 0);
      uint16_t budget = r.header_bytes;
      int k = 0;
      for (;;) {
        PutChainDesc(w, *r.mem, k, budget, addr, len, flags, id);
        k++;
        scanned++;
        if (++pos == r.num) {
          pos = 0;
          wrap = !wrap;
        }
        if (!(flags & VRING_DESC_F_NEXT) || k >= kMaxDescs || scanned >= r.num) break;
        if (!ReadPacked(w, r, pos, addr, len, id, flags)) break;
      }
      PutAt<uint16_t>(w.out, at, id);  // the buffer id is in the chain's last descriptor
      PutAt<uint16_t>(w.out, at + 2, static_cast<uint16_t>(k));
      if (id < r.num) r.chain_len[id] = static_cast<uint8_t>(std::min(k, 255));
      w.entries++;
    }
    if (w.entries >= kMaxEntries) w.flags |= kSnapTruncated;  // the rest shows at the next kick
    r.last_avail = static_cast<uint16_t>(pos | (wrap ? 0x8000 : 0));
  } else if (kind == kSnapCall) {
    uint16_t pos = r.last_used & 0x7fff;
    bool wrap = r.last_used >> 15;
    for (int scanned = 0; scanned < r.num && w.entries < kMaxEntries;) {
      uint64_t addr;
      uint32_t len;
      uint16_t id, flags;
      if (pos >= r.num || !ReadPacked(w, r, pos, addr, len, id, flags)) break;
      bool a = flags & VRING_PACKED_DESC_F_AVAIL, u = flags & VRING_PACKED_DESC_F_USED;
      if (!(a == wrap && u == wrap)) break;  // the device has not used it yet
      Put<uint16_t>(w.out, id);
      Put<uint16_t>(w.out, 1);
      Put<uint32_t>(w.out, len);
      PutDesc(w, *r.mem, addr, len, flags, id, r.header_bytes);
      w.entries++;
      uint16_t step = id < r.num ? std::max<uint16_t>(1, r.chain_len[id]) : 1;
      scanned += step;
      pos = static_cast<uint16_t>(pos + step);
      if (pos >= r.num) {
        pos = static_cast<uint16_t>(pos - r.num);
        wrap = !wrap;
      }
    }
    r.last_used = static_cast<uint16_t>(pos | (wrap ? 0x8000 : 0));
  }
}

}  // namespace

void SnapshotRing(RingState& r, uint8_t kind, uint64_t ts, uint32_t pair, uint32_t ring_id, std::vector<uint8_t>& out) {
  Writer w{out, out.size()};
  Put<uint32_t>(out, 0);  // record length, patched below
  Put<uint64_t>(out, ts);
  Put<uint32_t>(out, pair);
  Put<uint32_t>(out, ring_id);
  Put<uint8_t>(out, kind);
  Put<uint8_t>(out, 0);   // flags
  Put<uint16_t>(out, 0);  // entries
  Put<uint16_t>(out, 0);  // avail idx
  Put<uint16_t>(out, 0);  // used idx
  Put<uint16_t>(out, 0);  // error
  Put<uint16_t>(out, 0);  // read within (µs), patched below
  uint16_t avail_idx = 0, used_idx = 0;
  if (r.mem && r.num) {
    std::lock_guard<std::mutex> lock(r.mem->Lock());
    if (r.packed) {
      Packed(w, r, kind);
      avail_idx = r.last_avail;
      used_idx = r.last_used;
    } else {
      Split(w, r, kind, avail_idx, used_idx);
    }
  } else {
    w.Fail(kErrRingUnmapped);
  }
  PutAt<uint32_t>(out, w.start, static_cast<uint32_t>(out.size() - w.start));
  PutAt<uint8_t>(out, w.start + 21, w.flags);
  PutAt<uint16_t>(out, w.start + 22, w.entries);
  PutAt<uint16_t>(out, w.start + 24, avail_idx);
  PutAt<uint16_t>(out, w.start + 26, used_idx);
  PutAt<uint16_t>(out, w.start + 28, w.err);
  // µs from `ts` (the notification's pick-up) to the end of this read, rounded up, saturating:
  // what the snapshot shows happened before ts + this. A device that answers while the relay
  // forwards its kick is seen done here already; this bounds how long it took.
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t end = uint64_t(now.tv_sec) * 1000000000ull + uint64_t(now.tv_nsec);
  const uint64_t us = end > ts ? (end - ts + 999) / 1000 : 0;
  PutAt<uint16_t>(out, w.start + 30, static_cast<uint16_t>(std::min<uint64_t>(us, 0xffff)));
}

}  // namespace vhs
