#include <cerrno>
#include <cstring>
#include <ctime>

#include "common.h"

namespace vhs {

Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err) {
  const char* code = uv_err_name(uv_translate_sys_error(err));
  std::string msg = std::string(syscall) + " failed: " + strerror(err) + " (" + code + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

uint64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

void CallJs(Napi::Env env, Napi::FunctionReference& fn, Napi::AsyncContext& ctx,
            const std::initializer_list<napi_value>& args) {
  if (fn.IsEmpty()) return;  // the object was closed: its callbacks are gone
  try {
    fn.MakeCallback(env.Global(), args, ctx);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

}  // namespace vhs

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  vhs::InitSys(env, exports);
  vhs::InitFdInfo(env, exports);
  vhs::InitChannel(env, exports);
  vhs::InitListener(env, exports);
  vhs::InitRelay(env, exports);
  vhs::InitGuestMemory(env, exports);
  return exports;
}

NODE_API_MODULE(vhostscope_native, Init)
