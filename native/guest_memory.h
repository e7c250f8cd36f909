// The JS face of GuestMemory (rings.h): one per session, holding the read-only mappings of the
// guest-memory fds the session received. The relay reads through it on its own thread.
#pragma once
#include "common.h"
#include "rings.h"

namespace vhs {

// The GuestMemory behind a JS GuestMemory object, or null when `v` is not one.
std::shared_ptr<GuestMemory> UnwrapGuestMemory(Napi::Value v);

void InitGuestMemory(Napi::Env env, Napi::Object exports);

}  // namespace vhs
