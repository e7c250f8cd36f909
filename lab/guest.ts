/**
 * A tiny Linux guest for QEMU under TCG: Debian's kernel from /boot and a busybox-static
 * initramfs that loads the virtio modules (all modules in Debian's 6.1 kernel) and runs a
 * scenario script, which must print "GUEST-RESULT: PASS". Guest RAM is a shared memfd:
 * vhost-user backends must map it.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromRelease, type Release, type Spawnable } from '../src/demo/release';

export interface Kernel {
  image: string;
  version: string;
}

export function findKernel(): Kernel {
  const images = fs
    .readdirSync('/boot')
    .filter((f) => f.startsWith('vmlinuz-'))
    .sort()
    .reverse();
  for (const f of images) {
    const version = f.slice('vmlinuz-'.length);
    if (fs.existsSync(`/lib/modules/${version}/kernel`)) return { image: path.join('/boot', f), version };
  }
  throw new Error('no /boot/vmlinuz-* with matching /lib/modules (apt-get install linux-image-amd64)');
}

/** Module files for `names`, dependencies first, from modules.dep. */
function moduleClosure(version: string, names: string[]): string[] {
  const base = `/lib/modules/${version}`;
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of fs.readFileSync(`${base}/modules.dep`, 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (!mod) continue;
    deps.set(mod, (rest ?? '').trim().split(/\s+/).filter(Boolean));
    byName.set(
      path
        .basename(mod)
        .replace(/\.ko.*$/, '')
        .replace(/-/g, '_'),
      mod,
    );
  }
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (m: string): void => {
    if (seen.has(m)) return;
    seen.add(m);
    for (const d of deps.get(m) ?? []) visit(d);
    order.push(m);
  };
  for (const n of names) {
    const m = byName.get(n.replace(/-/g, '_'));
    if (m) visit(m); // absent: built into the kernel
  }
  return order.map((m) => path.join(base, m));
}

const INIT = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo 1 > /proc/sys/kernel/printk 2>/dev/null
for m in $(cat /etc/modules.order); do insmod /lib/mods/$m || echo "GUEST: insmod $m failed"; done
/bin/sh /body.sh 2>&1
sync
echo "GUEST: powering off"
poweroff -f
`;

/**
 * Builds <workDir>/initramfs.gz running `body` (busybox sh) after loading `modules`; `binaries`
 * are static host programs copied into the guest's /bin.
 */
export function buildInitramfs(workDir: string, body: string, modules: string[], binaries: string[] = []): string {
  const k = findKernel();
  const d = path.join(workDir, 'initramfs.d');
  fs.rmSync(d, { recursive: true, force: true });
  for (const sub of ['bin', 'dev', 'proc', 'sys', 'tmp', 'mnt', 'etc', 'lib/mods']) fs.mkdirSync(path.join(d, sub), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(d, 'bin/busybox'));
  fs.chmodSync(path.join(d, 'bin/busybox'), 0o755);
  for (const applet of execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
    if (applet !== 'busybox') fs.symlinkSync('busybox', path.join(d, 'bin', applet));
  }
  const order: string[] = [];
  for (const m of moduleClosure(k.version, modules)) {
    const name = path.basename(m).replace(/\.ko.*$/, '.ko');
    const dest = path.join(d, 'lib/mods', name);
    if (m.endsWith('.ko')) fs.copyFileSync(m, dest);
    else if (m.endsWith('.ko.xz')) fs.writeFileSync(dest, execFileSync('xz', ['-dc', m]));
    else if (m.endsWith('.ko.zst')) fs.writeFileSync(dest, execFileSync('zstd', ['-qdc', m]));
    else throw new Error(`cannot unpack module ${m}`);
    order.push(name);
  }
  fs.writeFileSync(path.join(d, 'etc/modules.order'), order.join('\n') + '\n');
  for (const b of binaries) fs.copyFileSync(b, path.join(d, 'bin', path.basename(b)));
  fs.writeFileSync(path.join(d, 'init'), INIT, { mode: 0o755 });
  fs.writeFileSync(path.join(d, 'body.sh'), body);
  const out = path.join(workDir, 'initramfs.gz');
  execFileSync('bash', ['-c', `cd "${d}" && find . | cpio -o -H newc --quiet | gzip -1 > "${out}"`]);
  return out;
}

export const GUEST_MAC = '52:54:00:12:34:56';

/**
 * QEMU options for a virtio-net-pci device on a vhost-user netdev (chardev id c0). `msix`
 * false (vectors=0): QEMU 7.2 under TCG segfaults in vhost_net_start with MSI-X when the guest
 * sets DRIVER_OK (the non-irqfd path only TCG takes); INTx avoids it. QEMU 10 has no such bug.
 */
export function vhostUserNetArgs(chardev: string, msix = false): string[] {
  return [
    '-chardev',
    chardev,
    '-netdev',
    'vhost-user,id=n0,chardev=c0,queues=1',
    '-device',
    `virtio-net-pci,netdev=n0,mac=${GUEST_MAC},romfile=${msix ? '' : ',vectors=0'}`,
  ];
}

/**
 * What to spawn for QEMU from `release` (Debian 12: 7.2, Debian 13: 10.0), pinned to CPU 1 like
 * qemuArgs; `dirs`: the directories QEMU must see (sockets, initramfs, images).
 */
export function qemuCommand(release: Release, dirs: string[], initrd: string, append = '', extra: string[] = []): Spawnable {
  const [, , , ...qemu] = qemuArgs(initrd, append, extra);
  const run = fromRelease(release, dirs, 'qemu-system-x86_64', qemu);
  return { cmd: 'taskset', args: ['-c', '1', run.cmd, ...run.args], env: run.env };
}

/** qemu-system-x86_64 under TCG, pinned to CPU 1, with shared memfd guest RAM. */
export function qemuArgs(initrd: string, append = '', extra: string[] = []): string[] {
  const k = findKernel();
  return [
    '-c',
    '1',
    'qemu-system-x86_64',
    '-machine',
    'q35,accel=tcg',
    '-cpu',
    'max',
    '-smp',
    '1',
    '-m',
    '256M',
    '-object',
    'memory-backend-memfd,id=mem,size=256M,share=on',
    '-numa',
    'node,memdev=mem',
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    k.image,
    '-initrd',
    initrd,
    '-append',
    `console=ttyS0 panic=-1 quiet loglevel=3 ${append}`.trim(),
    ...extra,
  ];
}

/**
 * A guest script for /dev/vda: writes block `first + n` with "block n TOKEN" (the token from the
 * kernel command line, lab.token=), reads it back with O_DIRECT and prints "GUEST-IO n: what it
 * read" (or "write failed"), `count` times, `pause` seconds apart, then "GUEST-RESULT: DONE": I/O in
 * flight whenever the back-end dies.
 */
export function blockWriteReadLoop(count: number, first: number, pause: number): string {
  return `
tok=$(sed -n 's/.*lab.token=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
i=0; until [ -b /dev/vda ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
[ -b /dev/vda ] || { echo "GUEST-RESULT: FAIL no /dev/vda"; exit 0; }
n=0; while [ $n -lt ${count} ]; do
  echo "block $n $tok" > /tmp/b
  dd if=/tmp/b of=/dev/vda bs=4096 seek=$((${first}+n)) oflag=direct conv=sync 2>/dev/null || echo "GUEST-IO $n: write failed"
  echo "GUEST-IO $n: $(dd if=/dev/vda bs=4096 skip=$((${first}+n)) count=1 iflag=direct 2>/dev/null | head -c 64 | tr -d '\\000')"
  n=$((n+1)); sleep ${pause}
done
echo "GUEST-RESULT: DONE"
`;
}
