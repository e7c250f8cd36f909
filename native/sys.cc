// Plain syscalls: unix sockets, eventfd, memfd, close, peer credentials, the clock.
#include <fcntl.h>
#include <malloc.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "closer.h"
#include "common.h"

namespace vhs {
namespace {

bool FillAddr(const std::string& path, sockaddr_un* addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr->sun_path)) return false;
  memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

// listenUnix(path, backlog, mode) -> fd. The path must not exist (the caller removes
// stale sockets); the socket file gets `mode` right after bind.
Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  int backlog = info[1].As<Napi::Number>().Int32Value();
  mode_t mode = info[2].As<Napi::Number>().Uint32Value();
  sockaddr_un addr;
  if (!FillAddr(path, &addr)) throw ErrnoError(env, "bind", ENAMETOOLONG);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw ErrnoError(env, "socket", errno);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    int e = errno;
    close(fd);
    throw ErrnoError(env, "bind", e);
  }
  if (chmod(path.c_str(), mode) < 0 || listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    unlink(path.c_str());
    throw ErrnoError(env, "listen", e);
  }
  return Napi::Number::New(env, fd);
}

// connectUnix(path) -> fd, non-blocking. Throws ENOENT/ECONNREFUSED/EAGAIN: the caller retries.
Napi::Value ConnectUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  sockaddr_un addr;
  if (!FillAddr(path, &addr)) throw ErrnoError(env, "connect", ENAMETOOLONG);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw ErrnoError(env, "socket", errno);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    int e = errno;
    close(fd);
    throw ErrnoError(env, "connect", e);
  }
  return Napi::Number::New(env, fd);
}

// probeUnix(path) -> true if something accepts connections there (used before
// replacing an existing socket file).
Napi::Value ProbeUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  sockaddr_un addr;
  if (!FillAddr(path, &addr)) return Napi::Boolean::New(env, false);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw ErrnoError(env, "socket", errno);
  int r = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int e = errno;
  close(fd);
  return Napi::Boolean::New(env, r == 0 || e == EAGAIN);
}

Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    throw ErrnoError(env, "socketpair", errno);
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, sv[0]));
  a.Set(1u, Napi::Number::New(env, sv[1]));
  return a;
}

// pipe() -> [read end, write end], both blocking and close-on-exec: one end goes to a peer,
// which expects a blocking pipe; the caller makes the end it keeps non-blocking (each end is
// its own open file description, so that does not reach the peer's)
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) throw ErrnoError(env, "pipe2", errno);
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, p[0]));
  a.Set(1u, Napi::Number::New(env, p[1]));
  return a;
}

// nonblocking(fd) -> whether O_NONBLOCK is set on the open file description
Napi::Value GetNonblocking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fl = fcntl(info[0].As<Napi::Number>().Int32Value(), F_GETFL);
  if (fl < 0) throw ErrnoError(env, "fcntl(F_GETFL)", errno);
  return Napi::Boolean::New(env, (fl & O_NONBLOCK) != 0);
}

// setNonblocking(fd, on): sets or clears O_NONBLOCK (shared by every copy of the fd)
Napi::Value SetNonblocking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) throw ErrnoError(env, "fcntl(F_GETFL)", errno);
  int want = info[1].ToBoolean().Value() ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (want != fl && fcntl(fd, F_SETFL, want) < 0) throw ErrnoError(env, "fcntl(F_SETFL)", errno);
  return env.Undefined();
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

// closeForeign(fd): a peer's fd, closed now or on the closer thread (closer.h)
Napi::Value CloseForeignFd(const Napi::CallbackInfo& info) {
  CloseForeign(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value PendingCloses(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(PendingForeignCloses()));
}

// shutdownPeerSocket(pid, fd): shuts down (both directions) a socket another process holds, as
// its fd number `fd`: the socket is duplicated with pidfd_getfd (ptrace access to the process:
// root or its owner with ptrace allowed), shut down, and the duplicate closed. Both ends then
// see the connection end, as if the peer had closed it. Throws an errno error.
Napi::Value ShutdownPeerSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = info[0].As<Napi::Number>().Int32Value();
  int target = info[1].As<Napi::Number>().Int32Value();
  double inode = info[2].As<Napi::Number>().DoubleValue();
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) throw ErrnoError(env, "pidfd_open", errno);
  int fd = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, target, 0));
  int err = errno;
  close(pidfd);
  if (fd < 0) throw ErrnoError(env, "pidfd_getfd", err);
  // the pid or the fd number may have been reused since /proc was read: only that socket is cut
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) || static_cast<double>(st.st_ino) != inode) {
    close(fd);
    throw Napi::Error::New(env, "the fd is not that socket any more (the process or its fd changed); left alone");
  }
  int r = shutdown(fd, SHUT_RDWR);
  err = errno;
  close(fd);
  if (r < 0) throw ErrnoError(env, "shutdown", err);
  return env.Undefined();
}

Napi::Value DupFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) throw ErrnoError(env, "dup", errno);
  return Napi::Number::New(env, fd);
}

// eventfd(initial) -> fd (non-blocking, close-on-exec)
Napi::Value EventFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = eventfd(info[0].As<Napi::Number>().Uint32Value(), EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw ErrnoError(env, "eventfd", errno);
  return Napi::Number::New(env, fd);
}

// eventfdWrite(fd, count); eventfdRead(fd) -> bigint count, or null when zero (EAGAIN)
Napi::Value EventFdWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t v = info[1].As<Napi::Number>().Int64Value();
  if (write(info[0].As<Napi::Number>().Int32Value(), &v, 8) != 8) throw ErrnoError(env, "write", errno);
  return env.Undefined();
}

Napi::Value EventFdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t v = 0;
  if (read(info[0].As<Napi::Number>().Int32Value(), &v, 8) != 8) {
    if (errno == EAGAIN) return env.Null();
    throw ErrnoError(env, "read", errno);
  }
  return Napi::BigInt::New(env, v);
}

// memfdCreate(name, size, sealShrink?) -> fd (sealable, close-on-exec); sealShrink seals it
// against shrinking and growing, as QEMU's memory-backend-memfd does
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>();
  int64_t size = info[1].As<Napi::Number>().Int64Value();
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw ErrnoError(env, "memfd_create", errno);
  if (ftruncate(fd, size) < 0) {
    int e = errno;
    close(fd);
    throw ErrnoError(env, "ftruncate", e);
  }
  if (info.Length() > 2 && info[2].ToBoolean() && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
    int e = errno;
    close(fd);
    throw ErrnoError(env, "fcntl(F_ADD_SEALS)", e);
  }
  return Napi::Number::New(env, fd);
}

// peerCred(fd) -> {pid, uid, gid} of the process at the other end of a unix socket
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(info[0].As<Napi::Number>().Int32Value(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    throw ErrnoError(env, "getsockopt", errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
  return o;
}

Napi::Value Monotonic(const Napi::CallbackInfo& info) { return Napi::BigInt::New(info.Env(), MonotonicNs()); }

// mallocStats() -> glibc's mallinfo2 over every arena: bytes the heaps hold from the kernel
// (arena, mmapped) and how much of that is in use and free.
Napi::Value MallocStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct mallinfo2 m = mallinfo2();
  Napi::Object o = Napi::Object::New(env);
  o.Set("arenaBytes", Napi::Number::New(env, static_cast<double>(m.arena)));
  o.Set("mmappedBytes", Napi::Number::New(env, static_cast<double>(m.hblkhd)));
  o.Set("inUseBytes", Napi::Number::New(env, static_cast<double>(m.uordblks)));
  o.Set("freeBytes", Napi::Number::New(env, static_cast<double>(m.fordblks)));
  o.Set("releasableBytes", Napi::Number::New(env, static_cast<double>(m.keepcost)));
  return o;
}

}  // namespace

void InitSys(Napi::Env env, Napi::Object exports) {
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix));
  exports.Set("connectUnix", Napi::Function::New(env, ConnectUnix));
  exports.Set("probeUnix", Napi::Function::New(env, ProbeUnix));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("close", Napi::Function::New(env, CloseFd));
  exports.Set("closeForeign", Napi::Function::New(env, CloseForeignFd));
  exports.Set("pendingForeignCloses", Napi::Function::New(env, PendingCloses));
  exports.Set("nonblocking", Napi::Function::New(env, GetNonblocking));
  exports.Set("setNonblocking", Napi::Function::New(env, SetNonblocking));
  exports.Set("dup", Napi::Function::New(env, DupFd));
  exports.Set("eventfd", Napi::Function::New(env, EventFd));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead));
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred));
  exports.Set("shutdownPeerSocket", Napi::Function::New(env, ShutdownPeerSocket));
  exports.Set("monotonicNs", Napi::Function::New(env, Monotonic));
  exports.Set("mallocStats", Napi::Function::New(env, MallocStats));
}

}  // namespace vhs
