/**
 * Root records only where no other user can reach in (finding 19): a recording directory, or a
 * recording file's directory, owned by another user or writable by others is refused before
 * anything is written; a directory it makes is 0700 whatever the umask; it never appends to
 * another user's file, and a segment file is always a new one.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Recorder } from '../../src/recording/recorder';
import { RecordingWriter } from '../../src/recording/writer';
import { untrustedDir } from '../../src/util/trusted-path';
import { tmpDir } from '../helpers';

const NOBODY = 65534;

describe('where root records', () => {
  it('refuses a directory another user owns, or one others may write; accepts a private one under sticky /tmp', () => {
    const base = tmpDir('trusted');
    const theirs = path.join(base, 'theirs');
    fs.mkdirSync(theirs);
    fs.chownSync(theirs, NOBODY, NOBODY);
    expect(() => new Recorder(theirs + '/')).toThrow(new RegExp(`refusing to write recordings in .*theirs/: .*theirs is owned by uid ${NOBODY}`));
    expect(fs.readdirSync(theirs)).toEqual([]);
    // a file recording in their directory: refused too, and their planted file is left alone
    fs.writeFileSync(path.join(theirs, 'r.vhsrec'), 'theirs');
    expect(() => new Recorder(path.join(theirs, 'r.vhsrec'))).toThrow(/is owned by uid 65534/);
    expect(fs.readFileSync(path.join(theirs, 'r.vhsrec'), 'utf8')).toBe('theirs');

    const open = path.join(base, 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    expect(() => new Recorder(open + '/')).toThrow(/is writable by every user \(mode 777\)/);
    fs.chmodSync(open, 0o775);
    expect(() => new Recorder(open + '/')).toThrow(/is writable by group 0 \(mode 775\)/);
    // a private directory inside one others may write (not sticky): they could rename it away
    fs.chmodSync(open, 0o777);
    const inner = path.join(open, 'inner');
    fs.mkdirSync(inner, { mode: 0o700 });
    expect(untrustedDir(inner)).toMatch(/open is writable by every user/);

    // /tmp is sticky: a private directory in it is ours
    expect((fs.statSync('/tmp').mode & 0o1000) !== 0).toBe(true);
    expect(untrustedDir(base)).toBeUndefined();
    // a new directory is 0700 whatever the umask (set in a process of its own: a test worker may not)
    const made = path.join(base, 'a', 'b');
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `process.umask(0); const { Recorder } = require(${JSON.stringify(path.resolve(__dirname, '../../dist/recording/recorder'))}); new Recorder(${JSON.stringify(made + '/')}).close().then(() => process.exit(0));`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(fs.statSync(made).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(base, 'a')).mode & 0o777).toBe(0o700);
  });

  it("never appends to another user's file, and a segment is never an existing file", () => {
    const dir = tmpDir('trusted-file');
    const f = path.join(dir, 'r.vhsrec');
    fs.writeFileSync(f, '');
    fs.chownSync(f, NOBODY, NOBODY);
    expect(() => new RecordingWriter(f)).toThrow(`${f} belongs to uid ${NOBODY}, not to this daemon (uid 0); refusing to append to it`);
    const seg = path.join(dir, 'seg.vhsrec');
    fs.writeFileSync(seg, '');
    expect(() => new RecordingWriter(seg, { exclusive: true })).toThrow(/EEXIST/);
  });
});
