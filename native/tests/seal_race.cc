// Finding 4 of the security review, as its experiment ran it: while GuestMemory::Add looks at a
// memfd, another thread shrinks it and seals it against shrinking. Add must never map more of a
// file than the file holds once sealed: a read through such a mapping past the file's end is a
// SIGBUS on the relay thread, which ends the daemon. Prints "tries N mapped M violations V".
// Built and run by test/native/seal-race.test.ts (g++ -O2 -pthread with native/rings.cc).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "rings.h"

namespace {
constexpr uint64_t kBig = 64 * 1024;
constexpr uint64_t kSmall = 4096;
std::atomic<int> published{-1};
std::atomic<long> handled{0};
std::atomic<bool> stop{false};

// Shrinks and seals each published memfd once, as fast as it can after it appears.
void Racer() {
  while (!stop.load(std::memory_order_relaxed)) {
    int fd = published.exchange(-1);
    if (fd < 0) continue;
    if (ftruncate(fd, kSmall) == 0) fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
    close(fd);
    handled.fetch_add(1);
  }
}
}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? atof(argv[1]) : 2.0;
  std::thread racer(Racer);
  long tries = 0, mapped = 0, violations = 0;
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  unsigned spin = 1;
  while (std::chrono::steady_clock::now() < end) {
    int fd = memfd_create("seal-race", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, kBig) != 0) return 2;
    int theirs = dup(fd);
    int ours = dup(fd);
    published.store(theirs);
    // vary where Add falls against the racer's two calls
    spin = spin * 1103515245 + 12345;
    for (volatile unsigned i = 0, n = (spin >> 16) % 64; i < n; i = i + 1) {
    }
    vhs::GuestMemory mem;
    tries++;
    // the region is the whole file as it was made: 64 KiB
    if (mem.Add(ours, 0, kBig, 0, 0) == 0 && mem.Mapped() == 1) {
      mapped++;
      while (handled.load() < tries) {
      }
      // the file is sealed against shrinking now (the racer is done with it): its size is the
      // least it will ever be, and a mapped region must lie inside it. Judged from the size,
      // never by touching the mapping (that would be the SIGBUS itself).
      struct stat st {};
      fstat(fd, &st);
      if (static_cast<uint64_t>(st.st_size) < kBig) violations++;
    }
    while (handled.load() < tries) {
    }
    mem.Clear();
    close(fd);
  }
  stop = true;
  racer.join();
  printf("tries %ld mapped %ld violations %ld\n", tries, mapped, violations);
  return violations ? 1 : 0;
}
