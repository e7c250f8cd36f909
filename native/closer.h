// Closing fds a peer sent, without ever blocking the thread that closes them. close() of a file
// on a FUSE mount asks the file system's server (FLUSH) and waits for its answer, which a
// hostile or hung server never gives; the same holds for other network file systems. Such fds
// are closed on a thread of their own; everything else (eventfds, sockets, pipes, memfds,
// /dev/shm and hugetlbfs files) is closed at once.
#pragma once

namespace vhs {

// Closes `fd`, now or (a file that may wait in close) on the closer thread.
void CloseForeign(int fd);

// fds handed to the closer thread and not closed yet (a close that never returns stays here).
long PendingForeignCloses();

}  // namespace vhs
