#include "guest_memory.h"

#include <cerrno>

namespace vhs {
namespace {

// Marks our objects, so that a relay given something else refuses it instead of crashing.
const napi_type_tag kTag = {0x7668736d656d6f72ull, 0x7967756573746d65ull};

class GuestMemoryObject : public Napi::ObjectWrap<GuestMemoryObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "GuestMemory",
                       {
                           InstanceMethod("add", &GuestMemoryObject::Add),
                           InstanceMethod("remove", &GuestMemoryObject::Remove),
                           InstanceMethod("clear", &GuestMemoryObject::Clear),
                           InstanceAccessor("regions", &GuestMemoryObject::Regions, nullptr),
                           InstanceAccessor("mapped", &GuestMemoryObject::MappedRegions, nullptr),
                       });
  }

  GuestMemoryObject(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<GuestMemoryObject>(info), mem(std::make_shared<GuestMemory>()) {
    napi_type_tag_object(info.Env(), info.This(), &kTag);
  }

  std::shared_ptr<GuestMemory> mem;

 private:
  static uint64_t U64(const Napi::Value& v) {
    bool lossless;
    return v.IsBigInt() ? v.As<Napi::BigInt>().Uint64Value(&lossless)
                        : static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
  }

  // add(fd, gpa, size, uaddr, mmapOffset): takes ownership of fd; maps it read-only if it is sealed.
  Napi::Value Add(const Napi::CallbackInfo& info) {
    int e = mem->Add(info[0].As<Napi::Number>().Int32Value(), U64(info[1]), U64(info[2]), U64(info[3]), U64(info[4]));
    if (e) throw ErrnoError(info.Env(), "mmap", e);
    return info.Env().Undefined();
  }

  // remove(gpa, size) -> whether a region was unmapped
  Napi::Value Remove(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), mem->Remove(U64(info[0]), U64(info[1])));
  }

  Napi::Value Clear(const Napi::CallbackInfo& info) {
    mem->Clear();
    return info.Env().Undefined();
  }

  Napi::Value Regions(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(mem->Count()));
  }

  Napi::Value MappedRegions(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(mem->Mapped()));
  }
};

}  // namespace

std::shared_ptr<GuestMemory> UnwrapGuestMemory(Napi::Value v) {
  if (!v.IsObject()) return nullptr;
  bool ok = false;
  if (napi_check_object_type_tag(v.Env(), v, &kTag, &ok) != napi_ok || !ok) return nullptr;
  return GuestMemoryObject::Unwrap(v.As<Napi::Object>())->mem;
}

void InitGuestMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("GuestMemory", GuestMemoryObject::Define(env));
}

}  // namespace vhs
