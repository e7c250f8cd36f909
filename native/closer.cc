#include "closer.h"

#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

namespace vhs {
namespace {

// What the fd is, from /proc's link alone (a readlink never reaches the file system behind it):
// a path outside /dev is a file whose close may wait for its file system.
bool MayWaitInClose(int fd) {
  char proc[48];
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
  char link[16];
  ssize_t n = readlink(proc, link, sizeof(link));
  if (n <= 0) return false;
  if (link[0] != '/') return false;  // anon_inode:, socket:, pipe:
  if (n >= 7 && memcmp(link, "/memfd:", 7) == 0) return false;
  if (n >= 5 && memcmp(link, "/dev/", 5) == 0) return false;  // /dev/shm, /dev/hugepages
  return true;
}

class Closer {
 public:
  void Add(int fd) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!started_) {
        // process-long, detached: at exit a close that never returns must not hold the exit up
        std::thread([this] { Run(); }).detach();
        started_ = true;
      }
      queue_.push_back(fd);
      pending_++;
    }
    cv_.notify_one();
  }
  long Pending() {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_;
  }

 private:
  void Run() {
    for (;;) {
      int fd;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        fd = queue_.front();
        queue_.pop_front();
      }
      close(fd);
      std::lock_guard<std::mutex> lock(mu_);
      pending_--;
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> queue_;
  long pending_ = 0;
  bool started_ = false;
};

Closer& TheCloser() {
  static Closer* c = new Closer();  // never destroyed: its thread may outlive static destructors
  return *c;
}

}  // namespace

void CloseForeign(int fd) {
  if (fd < 0) return;
  if (MayWaitInClose(fd))
    TheCloser().Add(fd);
  else
    close(fd);
}

long PendingForeignCloses() { return TheCloser().Pending(); }

}  // namespace vhs
