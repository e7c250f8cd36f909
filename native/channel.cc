// Channel: one vhost-user stream socket on the libuv loop.
//
// Reading frames whole messages: exactly the 12-byte header, then exactly `size` payload
// bytes, never into the next message (the next message's fds would be taken with it).
// Every fd that arrives while a message is being read belongs to that message.
// Writing sends header+payload+fds in one sendmsg; a partial write is queued and the
// rest goes later without fds (fds travel with the first byte only).
//
// The channel decides nothing: it reports messages, EOF and errors to JS and stops
// reading after any end; JS decides whether to close. It reports when its write queue has
// drained (onDrain), and pause() stops reading until start(): JS builds back-pressure from
// the two (src/proxy/backpressure.ts).
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

#include "closer.h"
#include "common.h"
#include "framing.h"

namespace vhs {
namespace {

constexpr int kMaxMessagesPerWakeup = 256;  // fairness between channels on one loop

struct PendingWrite {
  std::vector<uint8_t> data;
  size_t offset = 0;
  std::vector<int> fds;  // sent with the first byte, closed once sent
};

void CloseAll(std::vector<int>& fds) {
  for (int fd : fds) CloseForeign(fd);  // a peer's fds: a file's close may wait for its server
  fds.clear();
}

class Channel : public Napi::ObjectWrap<Channel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Channel",
                       {
                           InstanceMethod("start", &Channel::Start),
                           InstanceMethod("pause", &Channel::Pause),
                           InstanceMethod("send", &Channel::Send),
                           InstanceMethod("close", &Channel::Close),
                           InstanceAccessor("fd", &Channel::GetFd, nullptr),
                           InstanceAccessor("queuedBytes", &Channel::GetQueued, nullptr),
                           InstanceAccessor("heldFds", &Channel::GetHeldFds, nullptr),
                       });
  }

  // new Channel(fd, maxPayload, onMessage(buf, fds, tsNs), onEnd(err|null), onDrain?())
  // The channel owns fd from now on.
  Channel(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Channel>(info),
        reader_(info[1].As<Napi::Number>().Uint32Value()),
        ctx_(info.Env(), "vhostscope:Channel") {
    fd_ = info[0].As<Napi::Number>().Int32Value();
    on_message_ = Napi::Persistent(info[2].As<Napi::Function>());
    on_end_ = Napi::Persistent(info[3].As<Napi::Function>());
    if (info.Length() > 4 && info[4].IsFunction()) on_drain_ = Napi::Persistent(info[4].As<Napi::Function>());
    poll_ = new uv_poll_t;
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(info.Env(), &loop);
    if (int err = uv_poll_init(loop, poll_, fd_); err != 0) {
      delete poll_;
      poll_ = nullptr;
      // the Channel owns fd from its constructor on, failed or not: nobody else will close it
      close(fd_);
      fd_ = -1;
      closed_ = true;
      throw ErrnoError(info.Env(), "uv_poll_init", -err);
    }
    poll_->data = this;
  }

  ~Channel() override { Shutdown(); }

 private:
  // --- JS methods
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (closed_ || ended_) return info.Env().Undefined();
    if (!reading_) {
      reading_ = true;
      if (!self_ref_) {
        Ref();
        self_ref_ = true;
      }
      UpdatePoll();
    }
    return info.Env().Undefined();
  }

  // pause(): stops reading (the peer's writes back up in the kernel) until start().
  Napi::Value Pause(const Napi::CallbackInfo& info) {
    if (reading_) {
      reading_ = false;
      UpdatePoll();
    }
    return info.Env().Undefined();
  }

  // send(buf, fds) -> bytes still queued. Takes ownership of fds (closed once sent, or on close).
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Buffer<uint8_t> buf = info[0].As<Napi::Buffer<uint8_t>>();
    std::vector<int> fds;
    if (info.Length() > 1 && info[1].IsArray()) {
      Napi::Array a = info[1].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) fds.push_back(a.Get(i).As<Napi::Number>().Int32Value());
    }
    if (closed_) {
      CloseAll(fds);
      throw ErrnoError(env, "sendmsg", EBADF);
    }
    PendingWrite w;
    w.data.assign(buf.Data(), buf.Data() + buf.Length());
    w.fds = std::move(fds);
    if (queue_.empty()) {
      int err = TrySend(w);
      if (err != 0) {
        CloseAll(w.fds);
        throw ErrnoError(env, "sendmsg", err);
      }
      if (w.offset == w.data.size()) return Napi::Number::New(env, 0);
    }
    queued_bytes_ += w.data.size() - w.offset;
    queue_.push_back(std::move(w));
    if (!self_ref_) {
      Ref();
      self_ref_ = true;
    }
    UpdatePoll();
    return Napi::Number::New(env, static_cast<double>(queued_bytes_));
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), closed_ ? -1 : fd_); }
  Napi::Value GetQueued(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(queued_bytes_));
  }
  Napi::Value GetHeldFds(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(reader_.held_fds()));
  }

  // --- internals
  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    reading_ = false;
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    reader_.CloseHeldFds();
    for (auto& w : queue_) CloseAll(w.fds);
    queue_.clear();
    queued_bytes_ = 0;
    close(fd_);
    if (self_ref_) {
      self_ref_ = false;
      Unref();
    }
    // The callbacks are strong references from the addon (GC roots): they hold the closures that
    // hold whatever owns this channel, which holds this channel. Kept after the close, every
    // closed session would stay in memory for the daemon's life.
    on_message_.Reset();
    on_end_.Reset();
    on_drain_.Reset();
  }

  void UpdatePoll() {
    if (closed_ || !poll_) return;
    int events = (reading_ && !ended_ ? UV_READABLE : 0) | (queue_.empty() ? 0 : UV_WRITABLE);
    if (events == 0) {
      uv_poll_stop(poll_);
    } else {
      uv_poll_start(poll_, events, &Channel::OnPoll);
    }
  }

  // 0 on success or EAGAIN (w.offset tells how far it got); errno otherwise.
  int TrySend(PendingWrite& w) {
    while (w.offset < w.data.size()) {
      iovec iov{w.data.data() + w.offset, w.data.size() - w.offset};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      std::vector<char> cbuf;
      if (!w.fds.empty()) {
        cbuf.assign(CMSG_SPACE(sizeof(int) * w.fds.size()), 0);
        msg.msg_control = cbuf.data();
        msg.msg_controllen = cbuf.size();
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * w.fds.size());
        memcpy(CMSG_DATA(c), w.fds.data(), sizeof(int) * w.fds.size());
      }
      ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return errno;
      }
      w.offset += n;
      CloseAll(w.fds);  // the kernel has them now (our copies are ours to close)
    }
    return 0;
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    Channel* self = static_cast<Channel*>(handle->data);
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      // libuv reports EPOLLERR as UV_EBADF. Deliver what arrived before the error, then say
      // what the socket's error really is: a reset by a peer that closed is a close.
      if (self->reading_ && !self->ended_ && !self->closed_) self->ReadSome();
      if (self->ended_ || self->closed_) return;
      int soerr = 0;
      socklen_t len = sizeof(soerr);
      if (getsockopt(self->fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
      if ((soerr == ECONNRESET || soerr == EPIPE) && self->reader_.header_got() == 0)
        self->End(nullptr, 0, nullptr);
      else
        self->End("EPOLL", soerr ? soerr : -status, "the connection failed");
      return;
    }
    if (events & UV_WRITABLE) self->Flush();
    if (!self->closed_ && (events & UV_READABLE)) self->ReadSome();
    if (!self->closed_) self->UpdatePoll();
  }

  void Flush() {
    if (queue_.empty()) return;
    while (!queue_.empty()) {
      PendingWrite& w = queue_.front();
      size_t before = w.offset;
      int err = TrySend(w);
      queued_bytes_ -= (w.offset - before);
      if (err != 0) {
        for (auto& q : queue_) CloseAll(q.fds);
        queue_.clear();
        queued_bytes_ = 0;
        End("EWRITE", err, "sendmsg failed");
        return;
      }
      if (w.offset < w.data.size()) return;  // EAGAIN: wait for the next writable
      queue_.pop_front();
    }
    if (!on_drain_.IsEmpty() && !closed_) CallJs(Env(), on_drain_, ctx_, {});
  }

  void ReadSome() {
    for (int count = 0; count < kMaxMessagesPerWakeup && reading_ && !ended_ && !closed_; count++) {
      FrameReader::Step step = reader_.ReadOne(fd_);
      if (step == FrameReader::Step::kAgain) return;
      if (step == FrameReader::Step::kEnd) {
        End(reader_.end_code(), reader_.end_errno(), reader_.end_message());
        return;
      }
      Deliver();
    }
  }

  void Deliver() {
    Napi::Env env = Env();
    uint64_t ts = MonotonicNs();
    const std::vector<uint8_t>& payload = reader_.payload();
    Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, kHeaderSize + payload.size());
    memcpy(buf.Data(), reader_.header(), kHeaderSize);
    if (!payload.empty()) memcpy(buf.Data() + kHeaderSize, payload.data(), payload.size());
    std::vector<int> rx = reader_.TakeFds();  // ownership passes to JS
    Napi::Array fds = Napi::Array::New(env, rx.size());
    for (size_t i = 0; i < rx.size(); i++) fds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, rx[i]));
    Napi::Number fds_at = Napi::Number::New(env, static_cast<double>(rx.empty() ? 0 : reader_.fds_at()));
    reader_.Reset();
    CallJs(env, on_message_, ctx_, {buf, fds, Napi::BigInt::New(env, ts), fds_at});
  }

  // Reports the end of the stream: code == nullptr means a clean EOF between messages.
  void End(const char* code, int err, const char* message) {
    if (ended_) return;
    ended_ = true;
    reading_ = false;
    Napi::Env env = Env();
    reader_.CloseHeldFds();  // fds of a message that will never be complete
    if (!closed_) UpdatePoll();
    if (code == nullptr) {
      CallJs(env, on_end_, ctx_, {env.Null()});
      return;
    }
    Napi::Object e = Napi::Object::New(env);
    e.Set("code", Napi::String::New(env, code));
    e.Set("errno", Napi::Number::New(env, err));
    std::string msg = message;
    if (err) msg += std::string(": ") + strerror(err);
    e.Set("message", Napi::String::New(env, msg));
    e.Set("header", Napi::Buffer<uint8_t>::Copy(env, reader_.header(), reader_.header_got()));
    e.Set("payloadReceived", Napi::Number::New(env, static_cast<double>(reader_.payload_got())));
    e.Set("payloadExpected", Napi::Number::New(env, static_cast<double>(reader_.payload_expected())));
    CallJs(env, on_end_, ctx_, {e});
  }

  FrameReader reader_;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  bool reading_ = false;
  bool ended_ = false;
  bool closed_ = false;
  bool self_ref_ = false;
  std::deque<PendingWrite> queue_;
  size_t queued_bytes_ = 0;
  Napi::FunctionReference on_message_;
  Napi::FunctionReference on_end_;
  Napi::FunctionReference on_drain_;
  Napi::AsyncContext ctx_;
};

}  // namespace

void InitChannel(Napi::Env env, Napi::Object exports) { exports.Set("Channel", Channel::Define(env)); }

}  // namespace vhs
