// A FUSE file system whose server stops answering: finding 6 of the security review, for real.
// The root holds one file, "f". LOOKUP, OPEN and RELEASE are answered; FLUSH (every close() of
// an fd of the file), GETATTR (fstat) and STATFS (fstatfs) never are, as with a server that
// hangs or means harm. A process that closes or stats such an fd blocks until this server dies.
//   fuse_hang MOUNTPOINT   (root; prints "ready" once mounted; serves until killed)
// Built and run by test/proxy/fuse-fd.test.ts.
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static int dev;

static void reply(uint64_t unique, int error, const void* body, size_t len) {
  char buf[sizeof(struct fuse_out_header) + 512];
  struct fuse_out_header* h = (struct fuse_out_header*)buf;
  h->len = sizeof(*h) + (error ? 0 : len);
  h->error = error;
  h->unique = unique;
  if (!error && len) memcpy(buf + sizeof(*h), body, len);
  if (write(dev, buf, h->len) < 0 && errno != ENOENT) perror("fuse_hang: write");
}

static void attr(struct fuse_attr* a, uint64_t ino) {
  memset(a, 0, sizeof(*a));
  a->ino = ino;
  a->mode = ino == FUSE_ROOT_ID ? (S_IFDIR | 0755) : (S_IFREG | 0644);
  a->nlink = ino == FUSE_ROOT_ID ? 2 : 1;
  a->size = ino == FUSE_ROOT_ID ? 0 : 4096;
  a->blksize = 4096;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (dev < 0) return perror("fuse_hang: /dev/fuse"), 1;
  char opts[128];
  snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", dev);
  if (mount("fuse_hang", argv[1], "fuse", MS_NOSUID | MS_NODEV, opts) != 0) return perror("fuse_hang: mount"), 1;
  printf("ready\n");
  fflush(stdout);
  static char in[1 << 20];  // at least max_write plus headers, as the kernel requires
  for (;;) {
    ssize_t n = read(dev, in, sizeof(in));
    if (n < 0) {
      if (errno == EINTR || errno == ENOENT) continue;
      if (errno == ENODEV) return 0;  // unmounted
      return perror("fuse_hang: read"), 1;
    }
    struct fuse_in_header* h = (struct fuse_in_header*)in;
    const char* body = in + sizeof(*h);
    switch (h->opcode) {
      case FUSE_INIT: {
        const struct fuse_init_in* i = (const struct fuse_init_in*)body;
        struct fuse_init_out o;
        memset(&o, 0, sizeof(o));
        o.major = FUSE_KERNEL_VERSION;
        o.minor = i->minor < FUSE_KERNEL_MINOR_VERSION ? i->minor : FUSE_KERNEL_MINOR_VERSION;
        o.max_readahead = i->max_readahead;
        o.max_write = 4096;
        o.time_gran = 1;
        reply(h->unique, 0, &o, sizeof(o));
        break;
      }
      case FUSE_LOOKUP: {
        if (h->nodeid != FUSE_ROOT_ID || strcmp(body, "f") != 0) {
          reply(h->unique, -ENOENT, NULL, 0);
          break;
        }
        struct fuse_entry_out e;
        memset(&e, 0, sizeof(e));
        e.nodeid = 2;
        attr(&e.attr, 2);  // entry_valid = attr_valid = 0: every fstat asks (and waits)
        reply(h->unique, 0, &e, sizeof(e));
        break;
      }
      case FUSE_GETATTR:
        if (h->nodeid == FUSE_ROOT_ID) {  // the mount itself must look like a directory
          struct fuse_attr_out a;
          memset(&a, 0, sizeof(a));
          attr(&a.attr, FUSE_ROOT_ID);
          reply(h->unique, 0, &a, sizeof(a));
        }
        break;  // the file's: never answered
      case FUSE_OPEN: {
        struct fuse_open_out o;
        memset(&o, 0, sizeof(o));
        o.fh = 1;
        reply(h->unique, 0, &o, sizeof(o));
        break;
      }
      case FUSE_RELEASE:
        reply(h->unique, 0, NULL, 0);
        break;
      case FUSE_FLUSH:
      case FUSE_STATFS:
      case FUSE_INTERRUPT:
      case FUSE_FORGET:
      case FUSE_BATCH_FORGET:
        break;  // never answered (FORGET and INTERRUPT take no answer anyway)
      default:
        reply(h->unique, -ENOSYS, NULL, 0);
    }
  }
}
