/** qemu-storage-daemon exporting a raw image as a writable vhost-user-blk device with one queue, as the lab's block runs start it. */
import * as path from 'node:path';
import { Peer } from '../src/demo/process';
import { fromRelease, type Release, type Spawnable } from '../src/demo/release';

/** `release`'s qemu-storage-daemon exporting `img` on `sock` (`work`: the directory it must see). */
export function storageDaemonCommand(release: Release, work: string, img: string, sock: string): Spawnable {
  return fromRelease(release, [work], 'qemu-storage-daemon', [
    '--blockdev',
    `driver=file,node-name=file0,filename=${img},cache.direct=off`,
    '--blockdev',
    'driver=raw,node-name=disk0,file=file0',
    '--export',
    `type=vhost-user-blk,id=e0,node-name=disk0,addr.type=unix,addr.path=${sock},writable=on,num-queues=1`,
  ]);
}

/** Starts Debian 12's on `sock`; its log goes to `work`/qsd.log. */
export function storageDaemon(work: string, img: string, sock: string): Peer {
  const run = storageDaemonCommand('debian12', work, img, sock);
  return new Peer(run.cmd, run.args, { name: 'qsd', logFile: path.join(work, 'qsd.log') });
}
