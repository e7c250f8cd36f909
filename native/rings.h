// Read-only views of guest memory and vring snapshots (no Node here: the relay thread calls
// this, and the native tests can too).
//
// The proxy receives every guest-memory fd (SET_MEM_TABLE, ADD_MEM_REG). GuestMemory translates
// guest physical and front-end virtual addresses to bytes of those fds.
//
// A read must never fault. Touching a mapping past the end of its file raises SIGBUS, and a
// peer can shrink an unsealed file at any moment: checking its size first leaves a window
// between the check and the copy. So a region is read through a mapping only when the kernel
// promises the file cannot shrink (a memfd sealed with F_SEAL_SHRINK, as QEMU's
// memory-backend-memfd seals by default); every other file (unsealed memfds, /dev/shm and
// hugetlbfs files) is read with pread(), which returns short at the end of the file and cannot
// raise a signal.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace vhs {

struct Region {
  int fd = -1;  // our own (dup'ed) fd, read with pread() when the file is not sealed
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint64_t uaddr = 0;
  uint64_t mmap_offset = 0;
  const uint8_t* map = nullptr;  // sealed files only: the whole file, from offset 0
  uint64_t map_len = 0;
};

class GuestMemory {
 public:
  ~GuestMemory();
  // Takes ownership of fd. Returns an errno (0: mapped).
  int Add(int fd, uint64_t gpa, uint64_t size, uint64_t uaddr, uint64_t mmap_offset);
  // Returns whether a region was removed (and unmapped).
  bool Remove(uint64_t gpa, uint64_t size);
  void Clear();
  size_t Count();

  // Copies len bytes at a guest physical (by_gpa) or front-end virtual address into out.
  // Returns 0, or an error code of the snapshot format (kErr*). Call with Lock() held.
  int Read(uint64_t addr, bool by_gpa, void* out, uint64_t len);
  std::mutex& Lock() { return mu_; }
  // How many regions are read through a mapping (sealed against shrinking).
  size_t Mapped();

 private:
  std::mutex mu_;
  std::vector<Region> regions_;
};

enum : uint16_t {
  kErrNone = 0,
  kErrRingUnmapped = 1,  // a ring address is in no region
  kErrShrunk = 2,        // the file is smaller than the region now
  kErrDescUnmapped = 3,  // a descriptor's buffer is in no region
  kErrChain = 4,         // a descriptor chain loops or runs past the ring
};

enum : uint8_t { kSnapKick = 0, kSnapCall = 1, kSnapBase = 2 };
enum : uint8_t { kSnapPacked = 1, kSnapError = 2, kSnapTruncated = 4 };

// One vring: where it is, and what the last snapshot saw.
struct RingState {
  std::shared_ptr<GuestMemory> mem;
  uint64_t desc = 0, avail = 0, used = 0;  // front-end virtual addresses (SET_VRING_ADDR)
  uint16_t num = 0;
  bool packed = false;
  uint16_t header_bytes = 0;  // bytes of buffer contents to copy per chain (0: none)
  // split: next avail / used index to report; packed: position | wrap counter << 15
  uint16_t last_avail = 0;
  uint16_t last_used = 0;
  bool used_known = false;
  std::vector<uint8_t> chain_len;  // packed: descriptors per buffer id, learnt at kicks
};

// Appends one snapshot record (layout in src/rings/snapshot.ts) to out.
void SnapshotRing(RingState& r, uint8_t kind, uint64_t ts, uint32_t pair, uint32_t ring_id, std::vector<uint8_t>& out);

}  // namespace vhs
