// fdInfo(fd): what kind of object a received fd is, without touching its contents.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common.h"

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif
#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif

namespace vhs {
namespace {

std::string ReadLink(const std::string& p) {
  char buf[512];
  ssize_t n = readlink(p.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return "";
  return std::string(buf, n);
}

// Reads "key:\tvalue" lines of /proc/self/fdinfo/N (eventfd-id, eventfd-count, flags).
bool FdInfoField(int fd, const char* key, std::string* out) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
  FILE* f = fopen(path, "re");
  if (!f) return false;
  char line[256];
  size_t klen = strlen(key);
  bool found = false;
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      const char* v = line + klen + 1;
      while (*v == ' ' || *v == '\t') v++;
      *out = std::string(v, strcspn(v, "\n"));
      found = true;
      break;
    }
  }
  fclose(f);
  return found;
}

// The file system type of the mount an fd's file is on, from its fdinfo mnt_id and
// /proc/self/mountinfo: both read from /proc, nothing reaches the file itself.
std::string MountFsType(int fd) {
  std::string id;
  if (!FdInfoField(fd, "mnt_id", &id)) return "";
  FILE* f = fopen("/proc/self/mountinfo", "re");
  if (!f) return "";
  std::string type;
  char line[4096];
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, id.c_str(), id.size()) != 0 || line[id.size()] != ' ') continue;
    const char* sep = strstr(line, " - ");
    if (sep) type = std::string(sep + 3, strcspn(sep + 3, " \n"));
    break;
  }
  fclose(f);
  return type;
}

// File systems whose operations wait for a server (a process, or a host across a network).
static bool ServedRemotely(const std::string& fstype) {
  static const char* const kRemote[] = {"nfs",  "nfs4",      "cifs", "smb3",   "smbfs",   "9p",
                                        "ceph", "glusterfs", "afs",  "lustre", "virtiofs"};
  if (fstype.rfind("fuse", 0) == 0) return true;  // fuse, fuseblk, fuse.sshfs, ...
  for (const char* t : kRemote)
    if (fstype == t) return true;
  return false;
}

Napi::Value FdInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string target = ReadLink("/proc/self/fd/" + std::to_string(fd));
  // A file on a FUSE or network file system: fstat or fstatfs would ask its server, which may
  // never answer, and this runs on the daemon's loop for every fd a peer sends. Described from
  // /proc alone.
  if (!target.empty() && target[0] == '/' && target.rfind("/memfd:", 0) != 0) {
    std::string fstype = MountFsType(fd);
    if (ServedRemotely(fstype)) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("kind", Napi::String::New(env, "file"));
      o.Set("target", Napi::String::New(env, target));
      o.Set("remote", Napi::String::New(env, fstype));
      o.Set("size", Napi::Number::New(env, 0));
      o.Set("inode", Napi::Number::New(env, 0));
      o.Set("blockSize", Napi::Number::New(env, 0));
      o.Set("hugetlb", Napi::Boolean::New(env, false));
      return o;
    }
  }
  struct stat st;
  if (fstat(fd, &st) < 0) throw ErrnoError(env, "fstat", errno);
  struct statfs sfs;
  bool hugetlb = fstatfs(fd, &sfs) == 0 && static_cast<uint32_t>(sfs.f_type) == HUGETLBFS_MAGIC;

  Napi::Object o = Napi::Object::New(env);
  std::string kind = "other";
  if (target.rfind("anon_inode:[eventfd]", 0) == 0) {
    kind = "eventfd";
    std::string v;
    if (FdInfoField(fd, "eventfd-id", &v)) o.Set("eventfdId", Napi::Number::New(env, strtod(v.c_str(), nullptr)));
  } else if (S_ISSOCK(st.st_mode)) {
    kind = "socket";
  } else if (hugetlb) {
    kind = "hugetlbfs";
  } else if (target.rfind("/memfd:", 0) == 0) {
    kind = "memfd";
  } else if (S_ISREG(st.st_mode)) {
    kind = "file";
  } else if (S_ISFIFO(st.st_mode)) {
    kind = "pipe";
  }
  if (target.rfind("/memfd:", 0) == 0) {
    std::string name = target.substr(7);
    const std::string del = " (deleted)";
    if (name.size() >= del.size() && name.compare(name.size() - del.size(), del.size(), del) == 0)
      name.resize(name.size() - del.size());
    o.Set("memfdName", Napi::String::New(env, name));
  }
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals >= 0) o.Set("seals", Napi::Number::New(env, seals));
  o.Set("kind", Napi::String::New(env, kind));
  o.Set("target", Napi::String::New(env, target));
  o.Set("size", Napi::Number::New(env, static_cast<double>(st.st_size)));
  o.Set("inode", Napi::Number::New(env, static_cast<double>(st.st_ino)));
  o.Set("blockSize", Napi::Number::New(env, static_cast<double>(st.st_blksize)));
  o.Set("hugetlb", Napi::Boolean::New(env, hugetlb));
  return o;
}

}  // namespace

void InitFdInfo(Napi::Env env, Napi::Object exports) { exports.Set("fdInfo", Napi::Function::New(env, FdInfo)); }

}  // namespace vhs
