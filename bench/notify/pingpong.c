/*
 * Eventfd notification benchmark peers, one process per role (the fds come in as 3 and 4):
 *   pingpong ping N WARMUP [DELAY_MS]
 *                            (after DELAY_MS) write fd 3, wait for fd 4; prints N round-trip
 *                            times in ns, one per line
 *   pingpong pong            wait for fd 3, write fd 4; until fd 3 stays quiet for 2 s
 *   pingpong flood N         write fd 3 N times as fast as possible; prints the elapsed ns
 *   pingpong sink SECONDS    count wake-ups (reads) of fd 3 until it stays quiet for SECONDS;
 *                            prints "wakeups total_count elapsed_ns" (first to last read)
 *   pingpong relay SECONDS   the ideal relay, for reference: never sleeps, relays fd 3 -> 4 and
 *                            fd 5 -> 6 with nothing but read and write, for SECONDS
 *   pingpong mflood N SECONDS   fds 3..3+N-1: write each in turn, as fast as possible, for SECONDS;
 *                            prints "writes elapsed_ns"
 *   pingpong msink N QUIET_S  fds 3..3+N-1 (epoll): read whichever is ready until all stay quiet
 *                            for QUIET_S; prints "reads total_count elapsed_ns" (first to last read)
 *   pingpong syscost         prints the ns of one eventfd read (EAGAIN), one eventfd write and
 *                            one epoll_wait(0) here: "read write epoll_wait"
 * The eventfds may be non-blocking (created so by the parent): waits use poll().
 */
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int wait_read(int fd, int timeout_ms, uint64_t *count) {
  struct pollfd p = {fd, POLLIN, 0};
  for (;;) {
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0) return 0;
    if (read(fd, count, 8) == 8) return 1;
  }
}

static void post_count(int fd, uint64_t n) {
  if (write(fd, &n, 8) != 8) { perror("write"); exit(1); }
}

static void post(int fd) { post_count(fd, 1); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  uint64_t c;
  if (!strcmp(argv[1], "ping")) {
    long n = atol(argv[2]), warm = atol(argv[3]);
    if (argc > 4) usleep(atol(argv[4]) * 1000);  /* time for the parent to place the relay */
    uint64_t *rtt = calloc(n, sizeof(uint64_t));
    for (long i = 0; i < n + warm; i++) {
      uint64_t t0 = now_ns();
      post(3);
      if (!wait_read(4, 5000, &c)) { fprintf(stderr, "ping: no answer\n"); return 1; }
      if (i >= warm) rtt[i - warm] = now_ns() - t0;
    }
    for (long i = 0; i < n; i++) printf("%llu\n", (unsigned long long)rtt[i]);
    return 0;
  }
  if (!strcmp(argv[1], "pong")) {
    while (wait_read(3, 2000, &c)) post(4);
    return 0;
  }
  if (!strcmp(argv[1], "flood")) {
    long n = atol(argv[2]);
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) post(3);
    printf("%llu\n", (unsigned long long)(now_ns() - t0));
    return 0;
  }
  if (!strcmp(argv[1], "sink")) {
    int quiet_ms = atoi(argv[2]) * 1000;
    uint64_t wakeups = 0, total = 0, first = 0, last = 0;
    while (wait_read(3, wakeups ? quiet_ms : 20000, &c)) {
      last = now_ns();
      if (!wakeups) first = last;
      wakeups++;
      total += c;
    }
    printf("%llu %llu %llu\n", (unsigned long long)wakeups, (unsigned long long)total, (unsigned long long)(last - first));
    return 0;
  }
  if (!strcmp(argv[1], "mflood")) {
    int n = atoi(argv[2]);
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)atoi(argv[3]) * 1000000000ull, writes = 0;
    while (now_ns() < end)
      for (int i = 0; i < n; i++, writes++) post(3 + i);
    printf("%llu %llu\n", (unsigned long long)writes, (unsigned long long)(now_ns() - t0));
    return 0;
  }
  if (!strcmp(argv[1], "msink")) {
    int n = atoi(argv[2]), quiet_ms = atoi(argv[3]) * 1000, ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
      struct epoll_event e = {EPOLLIN, {.u32 = (uint32_t)(3 + i)}};
      fcntl(3 + i, F_SETFL, O_NONBLOCK);
      if (epoll_ctl(ep, EPOLL_CTL_ADD, 3 + i, &e)) { perror("epoll_ctl"); return 1; }
    }
    uint64_t reads = 0, total = 0, first = 0, last = 0;
    struct epoll_event evs[256];
    for (;;) {
      int k = epoll_wait(ep, evs, 256, reads ? quiet_ms : 20000);
      if (k <= 0) break;
      for (int j = 0; j < k; j++)
        if (read((int)evs[j].data.u32, &c, 8) == 8) {
          last = now_ns();
          if (!reads) first = last;
          reads++;
          total += c;
        }
    }
    printf("%llu %llu %llu\n", (unsigned long long)reads, (unsigned long long)total, (unsigned long long)(last - first));
    return 0;
  }
  if (!strcmp(argv[1], "syscost")) {
    const int n = 200000;
    int e = eventfd(0, EFD_NONBLOCK), ep = epoll_create1(0), e2 = eventfd(0, EFD_NONBLOCK);
    struct epoll_event ev = {EPOLLIN, {0}}, out[64];
    epoll_ctl(ep, EPOLL_CTL_ADD, e2, &ev);
    uint64_t t0 = now_ns();
    for (int i = 0; i < n; i++) if (read(e, &c, 8) == 8) return 1;
    uint64_t t1 = now_ns();
    for (int i = 0; i < n; i++) post(e);
    uint64_t t2 = now_ns();
    for (int i = 0; i < n; i++) epoll_wait(ep, out, 64, 0);
    uint64_t t3 = now_ns();
    printf("%llu %llu %llu\n", (unsigned long long)((t1 - t0) / n), (unsigned long long)((t2 - t1) / n), (unsigned long long)((t3 - t2) / n));
    return 0;
  }
  if (!strcmp(argv[1], "relay")) {
    fcntl(3, F_SETFL, O_NONBLOCK);
    fcntl(5, F_SETFL, O_NONBLOCK);
    uint64_t end = now_ns() + (uint64_t)atoi(argv[2]) * 1000000000ull;
    for (unsigned long i = 0;; i++) {
      if (read(3, &c, 8) == 8) post_count(4, c);
      if (read(5, &c, 8) == 8) post_count(6, c);
      if ((i & 0xffff) == 0 && now_ns() > end) return 0;
    }
  }
  return 2;
}
