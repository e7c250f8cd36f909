/*
 * A vhost-user-blk front-end that times each request itself, for bench/blk.js: libblkio's
 * virtio-blk-vhost-user driver (the one QEMU 10's qemu-img uses), queue depth 1, waiting for
 * each completion on its completion fd (the call eventfd) as an interrupt-driven driver does.
 *   blkio-lat SOCKET read|write N   prints "n p50_ns p99_ns mean_ns elapsed_ns"
 * 4 KiB at consecutive offsets (wrapping at the capacity); 100 requests first, not timed.
 */
#include <blkio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(x)                                                            \
  do {                                                                      \
    if ((x) < 0) {                                                          \
      fprintf(stderr, "blkio-lat: %s: %s\n", #x, blkio_get_error_msg());   \
      return 1;                                                             \
    }                                                                       \
  } while (0)

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: blkio-lat SOCKET read|write N\n");
    return 2;
  }
  int write = strcmp(argv[2], "write") == 0;
  long n = atol(argv[3]);
  struct blkio *b;
  CHECK(blkio_create("virtio-blk-vhost-user", &b));
  CHECK(blkio_set_str(b, "path", argv[1]));
  CHECK(blkio_connect(b));
  CHECK(blkio_start(b));
  uint64_t capacity = 0, align = 4096;
  CHECK(blkio_get_uint64(b, "capacity", &capacity));
  blkio_get_uint64(b, "mem-region-alignment", &align);
  struct blkio_mem_region mr;
  CHECK(blkio_alloc_mem_region(b, &mr, align > 4096 ? align : 4096));
  CHECK(blkio_map_mem_region(b, &mr));
  memset(mr.addr, 0x5a, 4096);
  struct blkioq *q = blkio_get_queue(b, 0);
  uint64_t *lat = malloc(sizeof(uint64_t) * (size_t)n);
  uint64_t blocks = capacity / 4096, start = 0;
  for (long i = -100; i < n; i++) {
    if (i == 0) start = now_ns();
    uint64_t off = ((uint64_t)(i + 100) % blocks) * 4096, t0 = now_ns();
    if (write)
      blkioq_write(q, off, mr.addr, 4096, NULL, 0);
    else
      blkioq_read(q, off, mr.addr, 4096, NULL, 0);
    struct blkio_completion c;
    if (blkioq_do_io(q, &c, 1, 1, NULL) != 1 || c.ret != 0) {
      fprintf(stderr, "blkio-lat: request %ld failed: %s\n", i, c.error_msg ? c.error_msg : "?");
      return 1;
    }
    if (i >= 0) lat[i] = now_ns() - t0;
  }
  uint64_t elapsed = now_ns() - start, sum = 0;
  for (long i = 0; i < n; i++) sum += lat[i];
  qsort(lat, (size_t)n, sizeof(uint64_t), cmp);
  printf("%ld %llu %llu %llu %llu\n", n, (unsigned long long)lat[n / 2], (unsigned long long)lat[(n * 99) / 100],
         (unsigned long long)(sum / (uint64_t)n), (unsigned long long)elapsed);
  blkio_destroy(&b);
  return 0;
}
