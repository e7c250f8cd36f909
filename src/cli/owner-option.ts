/**
 * --owner USER and --group GROUP for the listening socket: a name (from /etc/passwd and
 * /etc/group, as the system's own tools read them) or a number. With them a root daemon can let a
 * non-root QEMU (libvirt's libvirt-qemu, say) connect through a 0660 socket instead of a
 * world-writable one.
 */
import * as fs from 'node:fs';

function lookup(file: string, name: string, what: string, option: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    /* no such file: the name is unknown */
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && /^\d+$/.test(f[2] ?? '')) return Number(f[2]);
  }
  throw new Error(`${option} ${name}: no such ${what} in ${file}`);
}

/** The socket's owner and group from --owner/--group, or undefined when neither is given. */
export function socketOwner(owner: string | undefined, group: string | undefined): { uid: number; gid: number } | undefined {
  if (owner === undefined && group === undefined) return undefined;
  return {
    uid: owner === undefined ? process.getuid!() : lookup('/etc/passwd', owner, 'user', '--owner'),
    gid: group === undefined ? process.getgid!() : lookup('/etc/group', group, 'group', '--group'),
  };
}
