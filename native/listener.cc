// Listener: accepts connections on a listening unix socket from the libuv loop.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"

namespace vhs {
namespace {

class Listener : public Napi::ObjectWrap<Listener> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Listener",
                       {
                           InstanceMethod("close", &Listener::Close),
                           InstanceMethod("pause", &Listener::Pause),
                           InstanceMethod("resume", &Listener::Resume),
                       });
  }

  // new Listener(fd, onConnection(err|null, fd)); owns fd and starts accepting at once.
  Listener(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Listener>(info), ctx_(info.Env(), "vhostscope:Listener") {
    fd_ = info[0].As<Napi::Number>().Int32Value();
    on_conn_ = Napi::Persistent(info[1].As<Napi::Function>());
    poll_ = new uv_poll_t;
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(info.Env(), &loop);
    if (int err = uv_poll_init(loop, poll_, fd_); err != 0) {
      delete poll_;
      poll_ = nullptr;
      close(fd_);  // owned from the constructor on, failed or not
      fd_ = -1;
      closed_ = true;
      throw ErrnoError(info.Env(), "uv_poll_init", -err);
    }
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE, &Listener::OnPoll);
    Ref();
  }

  ~Listener() override { Shutdown(); }

 private:
  // pause(): stop accepting (connections wait in the backlog); resume(): accept again.
  // Used by JS when accept fails for want of fds: the listening fd stays readable, and polling
  // it would spin.
  Napi::Value Pause(const Napi::CallbackInfo& info) {
    if (!closed_ && poll_) uv_poll_stop(poll_);
    return info.Env().Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    if (!closed_ && poll_) uv_poll_start(poll_, UV_READABLE, &Listener::OnPoll);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    close(fd_);
    Unref();
    on_conn_.Reset();  // a strong reference: it would keep what the callback holds alive
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    Listener* self = static_cast<Listener*>(handle->data);
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    for (int i = 0; i < 64 && !self->closed_; i++) {
      int fd = accept4(self->fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        CallJs(env, self->on_conn_, self->ctx_, {ErrnoError(env, "accept4", errno).Value(), env.Null()});
        return;
      }
      CallJs(env, self->on_conn_, self->ctx_, {env.Null(), Napi::Number::New(env, fd)});
    }
  }

  int fd_ = -1;
  bool closed_ = false;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference on_conn_;
  Napi::AsyncContext ctx_;
};

}  // namespace

void InitListener(Napi::Env env, Napi::Object exports) { exports.Set("Listener", Listener::Define(env)); }

}  // namespace vhs
