/**
 * Creating a listening socket safely, also in a directory other users can write (OVS's run
 * directory, libvirt's per-VM directories, where `attach` works):
 * - an existing path is replaced only if it is a socket nobody listens on; other files are never
 *   touched;
 * - the socket is bound, given its mode and owner, and starts listening inside a private
 *   directory of ours (0700, created beside the path and pinned by an fd), then renamed into
 *   place in one step. Nothing is ever done to the path itself but that rename: a peer that
 *   swaps a symlink in at the path can make it point nowhere useful, never make root chmod or
 *   chown what the link points to.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from './index';

export interface SocketOwner {
  uid: number;
  gid: number;
}

/** Refuses a path that holds anything but a socket nobody listens on. */
function checkReplaceable(p: string): void {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(p);
  } catch {
    return; // does not exist: fine
  }
  if (!st.isSocket()) throw new Error(`${p} exists and is not a socket; refusing to replace it`);
  if (native.probeUnix(p)) throw new Error(`${p} is in use: something is listening on it`);
}

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;

export function listenOn(p: string, mode: number, owner?: SocketOwner): number {
  checkReplaceable(p);
  const parentFd = fs.openSync(path.dirname(p), O_RDONLY | O_DIRECTORY);
  const inParent = (name: string): string => `/proc/self/fd/${parentFd}/${name}`;
  let privateName: string | undefined;
  let privateFd: number | undefined;
  try {
    privateName = path.basename(fs.mkdtempSync(inParent('.vhostscope-bind-')));
    // the directory as created, pinned: another user of the parent may rename it away and put
    // something else there between mkdtemp and this open; what we open must be ours and private
    privateFd = fs.openSync(inParent(privateName), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    const st = fs.fstatSync(privateFd);
    if (st.uid !== process.getuid!() || (st.mode & 0o777) !== 0o700)
      throw new Error(
        `${path.dirname(p)}: the directory vhostscope made to create its socket in was replaced (owner ${st.uid}, mode ${(st.mode & 0o777).toString(8)}); refusing to go on there`,
      );
    const inPrivate = `/proc/self/fd/${privateFd}/socket`;
    const fd = native.listenUnix(inPrivate, 64, mode);
    try {
      if (owner) {
        try {
          fs.chownSync(inPrivate, owner.uid, owner.gid);
        } catch (err) {
          // not root: the socket would keep our owner, which may lock its peer out; say so
          throw new Error(
            `${p}: cannot give the socket the owner ${owner.uid}:${owner.gid} (${(err as NodeJS.ErrnoException).code}); run as root or as that user`,
          );
        }
      }
      fs.renameSync(inPrivate, inParent(path.basename(p)));
    } catch (err) {
      native.close(fd);
      throw err;
    }
    return fd;
  } finally {
    if (privateFd !== undefined) fs.closeSync(privateFd);
    if (privateName !== undefined) {
      try {
        fs.rmdirSync(inParent(privateName));
      } catch {
        /* renamed away by another user of the directory: theirs to clean */
      }
    }
    fs.closeSync(parentFd);
  }
}
