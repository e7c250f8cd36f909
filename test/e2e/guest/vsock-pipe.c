/* vsock-pipe CID PORT: connects an AF_VSOCK stream to CID:PORT, sends stdin and copies to
 * stdout as many bytes as it sent, reading and writing at once (poll). It does not half-close:
 * vhost-device-vsock 0.3 does not pass a shutdown on to the host's unix socket. Built static
 * on the host (gcc -static) for the test guest, whose busybox has no vsock client. */
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char out[1 << 22];

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: vsock-pipe CID PORT < data\n"); return 2; }
  size_t len = 0;
  ssize_t n;
  while (len < sizeof out && (n = read(0, out + len, sizeof out - len)) > 0) len += n;
  int s = socket(AF_VSOCK, SOCK_STREAM, 0);
  struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = atoi(argv[1]), .svm_port = atoi(argv[2]) };
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("vsock connect"); return 1; }
  size_t sent = 0, got = 0;
  char buf[65536];
  while (got < len) {
    struct pollfd p = { .fd = s, .events = POLLIN | (sent < len ? POLLOUT : 0) };
    if (poll(&p, 1, 10000) <= 0) { fprintf(stderr, "vsock: stalled after %zu sent, %zu received\n", sent, got); return 1; }
    if ((p.revents & POLLOUT) && sent < len) {
      n = send(s, out + sent, len - sent > 16384 ? 16384 : len - sent, MSG_DONTWAIT);
      if (n > 0) sent += n;
    }
    if (p.revents & (POLLIN | POLLHUP)) {
      n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) { fprintf(stderr, "vsock: closed after %zu received\n", got); return 1; }
      if (n > 0) { fwrite(buf, 1, n, stdout); got += n; }
    }
  }
  return 0;
}
