// The floor of observing notifications, for bench/blk.js: the least any observer can do. It
// takes the vring eventfds two peers share (the fds of PID_A and PID_B with the same
// eventfd-id: the kick and call fds that went through `vhostscope proxy --no-interpose`) from
// PID_B with pidfd_getfd, and for each write to one of them wakes on the io_uring poll vhostscope
// uses (native/poll_ring.cc) and reads the clock into a preallocated array: no lock, no ring to
// JS, no statistics. Both processes' pidfds are polled too: their exit ends it.
//   observe-floor PID_A PID_B   prints "fds wakeups"
#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <vector>

#include "poll_ring.h"

namespace {

uint64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// eventfd-id -> fd number, of one process's eventfds
std::map<long, int> EventfdIds(int pid) {
  std::map<long, int> ids;
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/fdinfo", pid);
  DIR* d = opendir(dir);
  if (!d) return ids;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char path[320], line[256];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE* f = fopen(path, "r");
    if (!f) continue;
    long id;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "eventfd-id: %ld", &id) == 1) ids[id] = atoi(e->d_name);
    fclose(f);
  }
  closedir(d);
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const int a = atoi(argv[1]), b = atoi(argv[2]);
  const int pid_a = static_cast<int>(syscall(SYS_pidfd_open, a, 0)), pid_b = static_cast<int>(syscall(SYS_pidfd_open, b, 0));
  if (pid_a < 0 || pid_b < 0) return perror("observe-floor: pidfd_open"), 1;
  // the peers set their vrings up within milliseconds; take the fds as soon as two are shared
  std::vector<int> shared;
  for (int tries = 0; shared.size() < 2 && tries < 20000 && kill(a, 0) == 0 && kill(b, 0) == 0; tries++) {
    shared.clear();
    const auto in_a = EventfdIds(a);
    for (const auto& [id, fd] : EventfdIds(b))
      if (in_a.count(id)) shared.push_back(fd);
    if (shared.size() < 2) usleep(200);
  }
  vhs::PollRing ring(64);
  if (!ring.ok()) return fprintf(stderr, "observe-floor: io_uring_setup: errno %d\n", ring.error()), 1;
  constexpr uint64_t kExit = ~0ull;
  ring.Arm(pid_a, kExit);
  ring.Arm(pid_b, kExit);
  for (size_t i = 0; i < shared.size(); i++) ring.Arm(static_cast<int>(syscall(SYS_pidfd_getfd, pid_b, shared[i], 0)), i);
  std::vector<uint64_t> stamps(1 << 22);
  size_t n = 0;
  for (bool done = false; !done && ring.SubmitAndWait();) {
    const uint64_t t = NowNs();
    ring.Reap([&](uint64_t tag, int res, bool) {
      if (tag == kExit) done = true;
      else if (res > 0 && n < stamps.size()) stamps[n++] = t;
    });
  }
  printf("%zu %zu\n", shared.size(), n);
  return 0;
}
