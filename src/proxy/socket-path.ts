/**
 * Creating the listening socket safely: an existing path is replaced only if it is a socket
 * nobody listens on; symlinks are never followed; other files are never touched.
 */
import * as fs from 'node:fs';
import { native } from '../native';

export function listenOn(path: string, mode: number): number {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(path);
  } catch {
    /* does not exist: fine */
  }
  if (st) {
    if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
    if (native.probeUnix(path)) throw new Error(`${path} is in use: something is listening on it`);
    fs.unlinkSync(path);
  }
  return native.listenUnix(path, 64, mode);
}
