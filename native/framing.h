// Framing of vhost-user messages on a stream socket, without Node: read exactly the 12-byte
// header, then exactly `size` payload bytes (never into the next message, whose fds would come
// with it), collecting every fd that arrives while a message is read. Used by Channel and by the
// coverage-guided fuzzer (native/fuzz/), which is why it knows nothing of Node-API.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace vhs {

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxFdsPerRecv = 64;  // >= 32 as the protocol's largest users need
// fds held for one message until it is whole: a peer that sends fds with a message it never
// finishes must not fill the daemon's fd table (the validator's own bound, 8, is checked once
// the message is whole, with a clearer message)
constexpr size_t kMaxFdsPerMessage = 64;

class FrameReader {
 public:
  enum class Step { kMessage, kAgain, kEnd };

  explicit FrameReader(uint32_t max_payload) : max_payload_(max_payload) {}
  ~FrameReader() { CloseHeldFds(); }
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  // Reads from `fd` until a whole message is there (kMessage), the socket would block (kAgain),
  // or the stream ended (kEnd: see end_code(); nullptr means a clean EOF between messages).
  Step ReadOne(int fd);

  const uint8_t* header() const { return header_; }
  size_t header_got() const { return hdr_got_; }
  // After kMessage: exactly the announced payload.
  const std::vector<uint8_t>& payload() const { return payload_; }
  size_t payload_got() const { return payload_got_; }
  size_t payload_expected() const { return hdr_got_ == kHeaderSize ? payload_size_ : 0; }

  // After kMessage: the message's fds (the caller owns them now); then Reset() for the next one.
  std::vector<int> TakeFds();
  void Reset();

  const char* end_code() const { return end_code_; }
  int end_errno() const { return end_errno_; }
  const char* end_message() const { return end_message_; }

  // fds received with the message being read, not yet whole (0 between messages).
  size_t held_fds() const { return fds_.size(); }

  // After kMessage with fds: how many bytes of the message had arrived before the first of
  // them (0: with the header's first byte, where the spec puts them; a receiver that takes fds
  // with the header alone, as QEMU does, loses fds that come later).
  size_t fds_at() const { return fds_at_; }

  // Closes the fds of a message that will never be complete.
  void CloseHeldFds();

 private:
  Step Fail(const char* code, int err, const char* message);

  uint32_t max_payload_;
  uint8_t header_[kHeaderSize] = {};
  size_t hdr_got_ = 0;
  // Grows with the bytes that arrive (doubling from 64 KiB), not with what the header
  // announces: a peer that announces a GPU_UPDATE and stops costs what it sent.
  std::vector<uint8_t> payload_;
  size_t payload_size_ = 0;
  size_t payload_got_ = 0;
  std::vector<int> fds_;
  size_t fds_at_ = 0;
  const char* end_code_ = nullptr;
  int end_errno_ = 0;
  const char* end_message_ = nullptr;
};

}  // namespace vhs
