/**
 * Where a root daemon may write: a directory only it (or root) can change, under parents the
 * same holds for, as ssh's StrictModes requires of a user's files. In a directory another user
 * can write, that user can put a link or a file of their own where the daemon is about to
 * create one, and have root truncate, overwrite or append to any file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const euid = (): number => process.geteuid?.() ?? 0;

/** Why `dir` (an existing directory) is not safe to write in, or undefined. */
export function untrustedDir(dir: string): string | undefined {
  let real: string;
  try {
    real = fs.realpathSync(dir);
  } catch (err) {
    return `it cannot be resolved (${(err as NodeJS.ErrnoException).code})`;
  }
  const me = euid();
  for (let p = real, last = true; ; last = false) {
    const st = fs.statSync(p);
    if (!st.isDirectory()) return `${p} is not a directory`;
    if (st.uid !== 0 && st.uid !== me) return `${p} is owned by uid ${st.uid}`;
    // a sticky directory (/tmp) lets others add names but not move or remove ours: fine above us, not as the place itself
    const othersWrite = (st.mode & 0o022) !== 0;
    if (othersWrite && (last || (st.mode & 0o1000) === 0))
      return `${p} is writable by ${st.mode & 0o002 ? 'every user' : `group ${st.gid}`} (mode ${(st.mode & 0o7777).toString(8)})`;
    const up = path.dirname(p);
    if (up === p) return undefined;
    p = up;
  }
}

/**
 * Makes `dir` (and missing parents) 0700, or checks an existing one: as root, throws saying why
 * a directory is refused (another user's files are no escalation for a daemon of that user).
 */
export function ensureTrustedDir(dir: string, what: string): void {
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700); // whatever the umask
  }
  if (euid() !== 0) return;
  const why = untrustedDir(dir);
  if (why)
    throw new Error(
      `refusing to write ${what} in ${dir}: ${why}; another user could have root overwrite any file through it (give a directory only root can write, e.g. /var/lib/vhostscope)`,
    );
}
