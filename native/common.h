// Shared helpers for the vhostscope native addon.
// The addon does syscalls and polling only; every decision (what is valid, when to
// retry, what to log, when to close) is made in TypeScript (src/native/contract.ts).
#pragma once
#include <napi.h>
#include <uv.h>

#include <cstdint>

namespace vhs {

// An Error carrying .code ("ENOENT", ...) and .errno, the way Node's own fs errors look.
Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err);

// CLOCK_MONOTONIC in nanoseconds: the same clock as process.hrtime.bigint().
uint64_t MonotonicNs();

// Run a JS callback from a libuv callback; an exception it throws becomes an
// uncaught exception in Node instead of vanishing.
void CallJs(Napi::Env env, Napi::FunctionReference& fn, Napi::AsyncContext& ctx,
            const std::initializer_list<napi_value>& args);

void InitSys(Napi::Env env, Napi::Object exports);
void InitFdInfo(Napi::Env env, Napi::Object exports);
void InitChannel(Napi::Env env, Napi::Object exports);
void InitListener(Napi::Env env, Napi::Object exports);
void InitRelay(Napi::Env env, Napi::Object exports);
void InitGuestMemory(Napi::Env env, Napi::Object exports);

}  // namespace vhs
