// libFuzzer target for the native framing (native/framing.cc) on a real socketpair.
// The input is a script of writes: [u8 len][u8 nfds][len bytes] ..., each sent with sendmsg and
// `nfds % 4` fresh eventfds attached; the first byte picks the payload limit. The reader side
// must deliver only whole, well-sized messages, end cleanly, and leak no fd.
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../framing.h"

using vhs::FrameReader;

static int LowestFreeFd() {
  int fd = eventfd(0, EFD_CLOEXEC);
  close(fd);
  return fd;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // compared within one input: libFuzzer itself may open files between inputs
  const int baseline = LowestFreeFd();
  if (size < 1) return 0;
  const uint32_t limits[4] = {0, 16, 1024, 65536};
  FrameReader* reader = new FrameReader(limits[data[0] & 3]);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) abort();
  size_t off = 1;
  bool ended = false;
  auto drain = [&]() {
    for (;;) {
      FrameReader::Step s = reader->ReadOne(sv[0]);
      if (s == FrameReader::Step::kAgain) return;
      if (s == FrameReader::Step::kEnd) {
        ended = true;
        return;
      }
      uint32_t announced;
      memcpy(&announced, reader->header() + 8, 4);
      if (reader->header_got() != vhs::kHeaderSize || reader->payload().size() != announced) abort();
      for (int fd : reader->TakeFds()) close(fd);
      reader->Reset();
    }
  };
  while (off + 2 <= size && !ended) {
    size_t len = data[off];
    int nfds = data[off + 1] % 4;
    off += 2;
    if (len > size - off) len = size - off;
    int fds[4];
    for (int i = 0; i < nfds; i++) fds[i] = eventfd(0, EFD_CLOEXEC);
    iovec iov{const_cast<uint8_t*>(data + off), len};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds && len) {
      msg.msg_control = cbuf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    if (len) sendmsg(sv[1], &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    for (int i = 0; i < nfds; i++) close(fds[i]);
    off += len;
    drain();
  }
  close(sv[1]);
  if (!ended) drain();
  delete reader;  // closes the fds of a half-read message
  close(sv[0]);
  if (LowestFreeFd() != baseline) {
    fprintf(stderr, "fd leak: lowest free fd %d, expected %d\n", LowestFreeFd(), baseline);
    abort();
  }
  return 0;
}
