/** --relay-cpu auto: reading /proc for a pinned, busy thread, and for peers confined to one CPU. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { allowedCpus, chooseRelayCpu, findPollingThread, parseCpuList, statTicks } from '../../src/proxy/relay-placement';

const children: ChildProcess[] = [];
/** `sleep` under taskset -c CPUS, once taskset has set the affinity and exec'ed (its threads read as pinned) */
async function sleeper(cpus: string): Promise<number> {
  const c = spawn('taskset', ['-c', cpus, 'sleep', '30'], { stdio: 'ignore' });
  children.push(c);
  const pid = c.pid!;
  for (let i = 0; i < 100 && allowedCpus(pid).join(',') !== parseCpuList(cpus).join(','); i++) await new Promise((r) => setTimeout(r, 10));
  return pid;
}

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

describe('relay placement', () => {
  it('reads CPU lists and thread stat lines', () => {
    expect(parseCpuList('0-2,5\n')).toEqual([0, 1, 2, 5]);
    expect(parseCpuList('1')).toEqual([1]);
    // a name with spaces and parentheses, as thread names may have
    const stat = '1234 (rte (worker) 0) R 1 1234 1234 0 -1 4194368 100 0 0 0 250 17 0 0 20 0 3 0 9999 0 0';
    expect(statTicks(stat)).toEqual({ name: 'rte (worker) 0', ticks: 267 });
  });

  it('finds no polling thread in an idle process, and tolerates a vanished one', async () => {
    expect(await findPollingThread(process.pid, 100)).toBeUndefined();
    expect(await findPollingThread(0x7ffffff0, 50)).toBeUndefined();
    expect(allowedCpus(0x7ffffff0)).toEqual([]);
  });

  it('keeps the relay off the one CPU both peers are confined to when the daemon may run elsewhere', async () => {
    const last = String(os.cpus().length - 1);
    const [fe, be] = [await sleeper(last), await sleeper(last)];
    expect(allowedCpus(fe)).toEqual([Number(last)]);
    const p = await chooseRelayCpu({ frontendPid: fe, backendPid: be }, 50);
    // this process may use every CPU: on a one-CPU machine there is nowhere else to go
    if (os.cpus().length > 1) expect(p).toMatchObject({ cpu: -1, yieldWhileSpinning: false });
    else expect(p).toMatchObject({ cpu: 0, yieldWhileSpinning: true });
    expect(p?.reason).toContain(`only on CPU ${last}`);
  });

  it('leaves the relay to the scheduler for idle peers on different CPUs, or a peer that is gone', async () => {
    const fe = await sleeper('0');
    // on a one-CPU machine both peers share CPU 0, and the rule above applies
    const be = await sleeper(os.cpus().length > 1 ? '1' : '0');
    const p = await chooseRelayCpu({ frontendPid: fe, backendPid: be }, 50);
    if (os.cpus().length > 1) expect(p).toBeUndefined();
    else expect(p?.cpu).toBe(0); // the daemon (this process) may run only there too
    expect(await chooseRelayCpu({ frontendPid: fe, backendPid: 0x7ffffff0 }, 50)).toBeUndefined();
    expect(await chooseRelayCpu({ backendPid: be }, 50)).toBeUndefined();
  });
});
