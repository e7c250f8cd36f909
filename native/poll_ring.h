// PollRing: io_uring multishot polls on fds that another process consumes.
//
// An observed eventfd is never read here: its owner reads it. epoll cannot watch such an fd
// reliably, since epoll_wait polls the fd again before it reports it and finds the count
// already consumed (a probe with a consumer thread saw 1 wake-up in 2-3 lost). An io_uring poll
// takes its readiness from the wake-up itself (the eventfd's write passes EPOLLIN), so every
// write that wakes it is seen; writes closer together than the observer's own wake-up coalesce.
//
// Single-threaded: the thread that arms the polls must be the one that waits, since the kernel
// completes a poll as task work of the task that submitted it.
#pragma once
#include <cstdint>
#include <functional>

struct io_uring_sqe;
struct io_uring_cqe;

namespace vhs {

class PollRing {
 public:
  // entries: submission queue size (completions: twice that). ok() tells whether it was set up.
  explicit PollRing(unsigned entries);
  ~PollRing();
  PollRing(const PollRing&) = delete;
  PollRing& operator=(const PollRing&) = delete;

  bool ok() const { return fd_ >= 0; }
  int error() const { return err_; }

  // Queues a multishot poll for POLLIN on fd, completions tagged with `tag`; false when the
  // submission queue is full (submit() first).
  bool Arm(int fd, uint64_t tag);
  // Queues the removal of the poll tagged `tag`; its last completion then comes with -ECANCELED.
  bool Disarm(uint64_t tag);
  // Submits what is queued without waiting; false on an error (errno set).
  bool Submit();
  // Submits what is queued and waits for at least one completion; false on an error other than
  // EINTR (errno set).
  bool SubmitAndWait();
  // Calls fn(tag, res, more) for each completion waiting: res > 0 is readiness, `more` false
  // means the poll ended (re-arm it to keep watching).
  void Reap(const std::function<void(uint64_t tag, int res, bool more)>& fn);

 private:
  io_uring_sqe* NextSqe();

  int fd_ = -1;
  int err_ = 0;
  unsigned to_submit_ = 0;
  void* sq_ = nullptr;
  void* cq_ = nullptr;
  size_t sq_len_ = 0, cq_len_ = 0, sqes_len_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  io_uring_cqe* cqes_ = nullptr;
  unsigned *sq_head_ = nullptr, *sq_tail_ = nullptr, *sq_array_ = nullptr;
  unsigned *cq_head_ = nullptr, *cq_tail_ = nullptr;
  unsigned sq_mask_ = 0, cq_mask_ = 0, sq_entries_ = 0;
};

}  // namespace vhs
