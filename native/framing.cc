#include "framing.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "closer.h"

namespace vhs {

constexpr size_t kInitialPayload = 64 * 1024;

FrameReader::Step FrameReader::Fail(const char* code, int err, const char* message) {
  end_code_ = code;
  end_errno_ = err;
  end_message_ = message;
  return Step::kEnd;
}

FrameReader::Step FrameReader::ReadOne(int fd) {
  for (;;) {
    if (hdr_got_ == kHeaderSize && payload_got_ == payload_size_) return Step::kMessage;
    uint8_t* dst;
    size_t want;
    if (hdr_got_ < kHeaderSize) {
      dst = header_ + hdr_got_;
      want = kHeaderSize - hdr_got_;
    } else {
      if (payload_got_ == payload_.size())
        payload_.resize(std::min(payload_size_, std::max(payload_.size() * 2, kInitialPayload)));
      dst = payload_.data() + payload_got_;
      want = payload_.size() - payload_got_;
    }
    iovec iov{dst, want};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFdsPerRecv)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof(cbuf);
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Step::kAgain;
      // a peer that closed with data unread by it resets the connection: between messages
      // that is a close like any other
      if (errno == ECONNRESET && hdr_got_ == 0 && fds_.empty()) return Fail(nullptr, 0, nullptr);
      return Fail("EREAD", errno, "recvmsg failed");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int* p = reinterpret_cast<int*>(CMSG_DATA(c));
        if (nfds && fds_.empty()) fds_at_ = hdr_got_ + payload_got_;
        for (size_t i = 0; i < nfds; i++) fds_.push_back(p[i]);
      }
    }
    if (fds_.size() > kMaxFdsPerMessage)
      return Fail("TOO_MANY_FDS", 0,
                  "more fds than any message carries arrived with one message (64 held, more coming): the peer is "
                  "hoarding fds in the proxy");
    if (msg.msg_flags & MSG_CTRUNC)
      return Fail("CTRUNC", 0,
                  "control data truncated: more fds than the receive buffer holds, the kernel closed the rest");
    if (n == 0) {
      if (hdr_got_ == 0 && fds_.empty()) return Fail(nullptr, 0, nullptr);
      return Fail("EOF_MID_MESSAGE", 0, "peer closed in the middle of a message");
    }
    if (hdr_got_ < kHeaderSize) {
      hdr_got_ += n;
      if (hdr_got_ < kHeaderSize) continue;
      uint32_t size;
      memcpy(&size, header_ + 8, 4);
      if (size > max_payload_) return Fail("OVERSIZE", 0, "payload size in header exceeds the limit");
      payload_size_ = size;
      payload_.clear();
      payload_got_ = 0;
    } else {
      payload_got_ += n;
    }
  }
}

std::vector<int> FrameReader::TakeFds() {
  std::vector<int> out;
  out.swap(fds_);
  return out;
}

void FrameReader::Reset() {
  hdr_got_ = 0;
  fds_at_ = 0;
  payload_size_ = 0;
  payload_.clear();
  // a large message's buffer is not kept for the small ones that follow
  if (payload_.capacity() > kInitialPayload) payload_.shrink_to_fit();
  payload_got_ = 0;
}

void FrameReader::CloseHeldFds() {
  for (int fd : fds_) CloseForeign(fd);
  fds_.clear();
}

}  // namespace vhs
