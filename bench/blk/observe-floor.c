/*
 * The floor of observing notifications, for bench/blk.js: the least any observer can do. It
 * takes the vring eventfds two peers share (the fds of PID_A and PID_B with the same
 * eventfd-id: the kick and call fds that went through `vhostscope proxy --no-interpose`) from
 * PID_B with pidfd_getfd, and for each write to one of them wakes on an io_uring multishot poll
 * and reads the clock into a preallocated array: no lock, no ring to JS, no statistics.
 *   observe-floor PID_A PID_B   runs until either process ends; prints "fds wakeups"
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 64
#define MAX_WAKEUPS (1 << 22)

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* the eventfd-ids of a process's eventfds, by fd number */
static int eventfd_ids(int pid, int *fds, long *ids) {
  char path[64], line[256];
  int n = 0;
  snprintf(path, sizeof path, "/proc/%d/fdinfo", pid);
  DIR *d = opendir(path);
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d)) && n < MAX_FDS * 4;) {
    if (e->d_name[0] == '.') continue;
    char p[300];
    snprintf(p, sizeof p, "/proc/%d/fdinfo/%s", pid, e->d_name);
    FILE *f = fopen(p, "r");
    if (!f) continue;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "eventfd-id: %ld", &ids[n]) == 1) fds[n++] = atoi(e->d_name);
    fclose(f);
  }
  closedir(d);
  return n;
}

static int alive(int pid) { return kill(pid, 0) == 0; }

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int a = atoi(argv[1]), b = atoi(argv[2]);
  int fa[MAX_FDS * 4], fb[MAX_FDS * 4], shared[MAX_FDS], nshared = 0;
  long ia[MAX_FDS * 4], ib[MAX_FDS * 4];
  /* the peers set their vrings up within milliseconds; take them as soon as two are shared */
  for (int tries = 0; nshared < 2 && tries < 20000 && alive(a) && alive(b); tries++) {
    int na = eventfd_ids(a, fa, ia), nb = eventfd_ids(b, fb, ib);
    nshared = 0;
    for (int i = 0; i < nb; i++)
      for (int j = 0; j < na; j++)
        if (ib[i] == ia[j] && nshared < MAX_FDS) {
          shared[nshared++] = fb[i];
          break;
        }
    if (nshared < 2) usleep(200);
  }
  int pidfd = syscall(SYS_pidfd_open, b, 0);
  struct io_uring_params p = {0};
  int ring = syscall(__NR_io_uring_setup, 64, &p);
  if (pidfd < 0 || ring < 0) {
    perror("observe-floor");
    return 1;
  }
  char *sq = mmap(0, p.sq_off.array + p.sq_entries * 4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
  char *cq = mmap(0, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
  struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
  unsigned *sq_tail = (unsigned *)(sq + p.sq_off.tail), *sq_array = (unsigned *)(sq + p.sq_off.array);
  unsigned *cq_head = (unsigned *)(cq + p.cq_off.head), *cq_tail = (unsigned *)(cq + p.cq_off.tail);
  unsigned cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
  struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  int fds[MAX_FDS];
  for (int i = 0; i < nshared; i++) {
    fds[i] = syscall(SYS_pidfd_getfd, pidfd, shared[i], 0);
    struct io_uring_sqe *s = &sqes[i];
    memset(s, 0, sizeof *s);
    s->opcode = IORING_OP_POLL_ADD;
    s->fd = fds[i];
    s->poll32_events = POLLIN;
    s->len = IORING_POLL_ADD_MULTI;
    s->user_data = i;
    sq_array[i] = i;
  }
  __atomic_store_n(sq_tail, nshared, __ATOMIC_RELEASE);
  syscall(__NR_io_uring_enter, ring, nshared, 0, 0, NULL, 0);
  uint64_t *stamps = malloc(sizeof(uint64_t) * MAX_WAKEUPS);
  long n = 0;
  /* wake at least every 100 ms to see whether the peers are still there */
  struct __kernel_timespec tmo = {0, 100000000};
  struct io_uring_getevents_arg arg = {.ts = (uint64_t)(uintptr_t)&tmo};
  while (alive(a) && alive(b)) {
    syscall(__NR_io_uring_enter, ring, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
    uint64_t t = now_ns();
    unsigned h = *cq_head, tail = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE);
    for (; h != tail; h++)
      if (cqes[h & cq_mask].res > 0 && n < MAX_WAKEUPS) stamps[n++] = t;
    __atomic_store_n(cq_head, h, __ATOMIC_RELEASE);
  }
  printf("%d %ld\n", nshared, n);
  return 0;
}
