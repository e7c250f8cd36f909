/** Running `vhostscope proxy` as its own process, as a user does (demo-free labs, benches, tests). */
import * as path from 'node:path';
import { Peer, waitForSocket } from '../src/demo/process';

/** the built CLI (the lab runs from source, in tests and benchmarks alike) */
export const CLI = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');

export interface ProxyProcessOptions {
  listen: string;
  connect: string;
  /** arguments after --listen/--connect/--json */
  args?: string[];
  logFile: string;
  timeoutMs?: number;
  /** options for node itself, before the CLI (e.g. --cpu-prof) */
  nodeArgs?: string[];
}

/** Starts the daemon with JSON logs to `logFile` and resolves once it listens. */
export async function startProxy(o: ProxyProcessOptions): Promise<Peer> {
  const p = new Peer(process.execPath, [...(o.nodeArgs ?? []), CLI, 'proxy', '--listen', o.listen, '--connect', o.connect, '--json', ...(o.args ?? [])], {
    name: 'proxy',
    logFile: o.logFile,
    timeoutMs: o.timeoutMs ?? 600_000,
  });
  await waitForSocket(o.listen, 20_000, p);
  return p;
}
