// io_uring without liburing (Debian 12 has no liburing-dev in the build's dependencies): the
// three syscalls and the shared rings, only as much as multishot polls need.
#include "poll_ring.h"

#include <linux/io_uring.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

namespace vhs {
namespace {

template <typename T>
T* At(void* base, uint32_t off) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + off);
}

unsigned LoadAcquire(unsigned* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
void StoreRelease(unsigned* p, unsigned v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

}  // namespace

PollRing::PollRing(unsigned entries) {
  io_uring_params p{};
  int fd = static_cast<int>(syscall(__NR_io_uring_setup, entries, &p));
  if (fd < 0) {
    err_ = errno;
    return;
  }
  sq_len_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  cq_len_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  bool single = p.features & IORING_FEAT_SINGLE_MMAP;
  if (single) sq_len_ = cq_len_ = std::max(sq_len_, cq_len_);
  sq_ = mmap(nullptr, sq_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  cq_ =
      single ? sq_ : mmap(nullptr, cq_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
  sqes_len_ = p.sq_entries * sizeof(io_uring_sqe);
  void* sqes = mmap(nullptr, sqes_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (sq_ == MAP_FAILED || cq_ == MAP_FAILED || sqes == MAP_FAILED) {
    err_ = errno;
    if (sq_ != MAP_FAILED) munmap(sq_, sq_len_);
    if (!single && cq_ != MAP_FAILED) munmap(cq_, cq_len_);
    if (sqes != MAP_FAILED) munmap(sqes, sqes_len_);
    sq_ = cq_ = nullptr;
    close(fd);
    return;
  }
  fd_ = fd;
  sqes_ = static_cast<io_uring_sqe*>(sqes);
  sq_head_ = At<unsigned>(sq_, p.sq_off.head);
  sq_tail_ = At<unsigned>(sq_, p.sq_off.tail);
  sq_array_ = At<unsigned>(sq_, p.sq_off.array);
  sq_mask_ = *At<unsigned>(sq_, p.sq_off.ring_mask);
  sq_entries_ = p.sq_entries;
  cq_head_ = At<unsigned>(cq_, p.cq_off.head);
  cq_tail_ = At<unsigned>(cq_, p.cq_off.tail);
  cq_mask_ = *At<unsigned>(cq_, p.cq_off.ring_mask);
  cqes_ = At<io_uring_cqe>(cq_, p.cq_off.cqes);
}

PollRing::~PollRing() {
  if (fd_ < 0) return;
  munmap(sqes_, sqes_len_);
  if (cq_ != sq_) munmap(cq_, cq_len_);
  munmap(sq_, sq_len_);
  close(fd_);  // ends every poll still armed
}

io_uring_sqe* PollRing::NextSqe() {
  unsigned tail = *sq_tail_;
  if (tail - LoadAcquire(sq_head_) >= sq_entries_) return nullptr;
  unsigned i = tail & sq_mask_;
  sq_array_[i] = i;
  io_uring_sqe* s = &sqes_[i];
  memset(s, 0, sizeof(*s));
  StoreRelease(sq_tail_, tail + 1);
  to_submit_++;
  return s;
}

bool PollRing::Arm(int fd, uint64_t tag) {
  io_uring_sqe* s = fd_ >= 0 ? NextSqe() : nullptr;
  if (!s) return false;
  s->opcode = IORING_OP_POLL_ADD;
  s->fd = fd;
  s->poll32_events = POLLIN;
  s->len = IORING_POLL_ADD_MULTI;
  s->user_data = tag;
  return true;
}

bool PollRing::Disarm(uint64_t tag) {
  io_uring_sqe* s = fd_ >= 0 ? NextSqe() : nullptr;
  if (!s) return false;
  s->opcode = IORING_OP_POLL_REMOVE;
  s->fd = -1;
  s->addr = tag;
  s->user_data = tag;  // its own completion comes tagged too; Reap's caller ignores res <= 0
  return true;
}

bool PollRing::Submit() {
  if (to_submit_ == 0) return true;
  long r = syscall(__NR_io_uring_enter, fd_, to_submit_, 0, 0, nullptr, 0);
  if (r < 0) return false;
  to_submit_ -= std::min<unsigned>(to_submit_, static_cast<unsigned>(r));
  return true;
}

bool PollRing::SubmitAndWait() {
  long r = syscall(__NR_io_uring_enter, fd_, to_submit_, 1, IORING_ENTER_GETEVENTS, nullptr, 0);
  if (r < 0) return errno == EINTR || errno == EAGAIN || errno == EBUSY;
  to_submit_ -= std::min<unsigned>(to_submit_, static_cast<unsigned>(r));
  return true;
}

void PollRing::Reap(const std::function<void(uint64_t, int, bool)>& fn) {
  unsigned head = *cq_head_;
  const unsigned tail = LoadAcquire(cq_tail_);
  for (; head != tail; head++) {
    const io_uring_cqe& c = cqes_[head & cq_mask_];
    fn(c.user_data, c.res, c.flags & IORING_CQE_F_MORE);
  }
  StoreRelease(cq_head_, head);
}

}  // namespace vhs
