/**
 * The block and file-system guests the storage tests share: what the host prepares (an image
 * with a per-run pattern, a share with a per-run file) and the guest that reads it and writes
 * its own, whichever QEMU and backend run it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildInitramfs } from '../../../lab/guest';

export const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
export const pattern = (text: string, n: number): Buffer => Buffer.from(text.repeat(Math.ceil(n / text.length)).slice(0, n));

export interface BlkGuest {
  img: string;
  token: string;
  /** the 1 MiB the host wrote at offset 0, and the 1 MiB the guest writes at 2 MiB */
  host: Buffer;
  guestWrite: Buffer;
  initrd: string;
}

/** A 64 MiB image with a host pattern; the guest reads it, writes its own at 2 MiB and reads that back. */
export function blkGuest(work: string): BlkGuest {
  const token = `tok${Date.now()}`;
  const img = path.join(work, 'disk.raw');
  fs.writeFileSync(img, Buffer.alloc(0));
  fs.truncateSync(img, 64 << 20);
  const host = pattern(`host-wrote-this ${token}\n`, 1 << 20);
  const fd = fs.openSync(img, 'r+');
  fs.writeSync(fd, host, 0, host.length, 0);
  fs.closeSync(fd);
  const initrd = buildInitramfs(
    work,
    `
tok=$(sed -n 's/.*lab.token=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
i=0; until [ -b /dev/vda ] || [ $i -ge 50 ]; do sleep 0.1; i=$((i+1)); done
[ -b /dev/vda ] || { echo "GUEST-RESULT: FAIL no /dev/vda"; exit 0; }
echo "GUEST-READ-SHA: $(dd if=/dev/vda bs=65536 count=16 2>/dev/null | sha256sum | cut -d' ' -f1)"
yes "guest-wrote-this $tok" | head -c 1048576 > /tmp/w
dd if=/tmp/w of=/dev/vda bs=65536 seek=32 conv=fsync 2>/dev/null || { echo "GUEST-RESULT: FAIL write"; exit 0; }
sync; echo 3 > /proc/sys/vm/drop_caches
W=$(sha256sum < /tmp/w | cut -d' ' -f1); R=$(dd if=/dev/vda bs=65536 skip=32 count=16 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$W" = "$R" ]; then echo "GUEST-RESULT: PASS"; else echo "GUEST-RESULT: FAIL readback"; fi
`,
    ['virtio_pci', 'virtio_blk'],
  );
  return { img, token, host, guestWrite: pattern(`guest-wrote-this ${token}\n`, 1 << 20), initrd };
}

/** The 1 MiB at 2 MiB of the image, where the guest wrote. */
export function guestWritten(img: string): Buffer {
  const written = Buffer.alloc(1 << 20);
  const fd = fs.openSync(img, 'r');
  fs.readSync(fd, written, 0, written.length, 2 << 20);
  fs.closeSync(fd);
  return written;
}

export interface FsGuest {
  share: string;
  token: string;
  hello: Buffer;
  initrd: string;
}

/** A share with a 200 kB host file and a token; the guest mounts tag t0, reads both and writes from-guest.txt. */
export function fsGuest(work: string): FsGuest {
  const token = `tok${Date.now()}`;
  const share = path.join(work, 'share');
  fs.mkdirSync(path.join(share, 'sub'), { recursive: true });
  const hello = pattern(`virtiofs host file ${token}\n`, 200_000);
  fs.writeFileSync(path.join(share, 'hello.txt'), hello);
  fs.writeFileSync(path.join(share, 'sub', 'token'), `${token}\n`);
  const initrd = buildInitramfs(
    work,
    `
tok=$(sed -n 's/.*lab.token=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
mkdir -p /mnt/v
mount -t virtiofs t0 /mnt/v || { echo "GUEST-RESULT: FAIL mount"; exit 0; }
echo "GUEST-READ-SHA: $(sha256sum < /mnt/v/hello.txt | cut -d' ' -f1)"
echo "GUEST-TOKEN: $(cat /mnt/v/sub/token)"
echo "guest wrote this $tok" > /mnt/v/from-guest.txt && sync
umount /mnt/v && echo "GUEST-RESULT: PASS"
`,
    ['virtio_pci', 'virtiofs'],
  );
  return { share, token, hello, initrd };
}
