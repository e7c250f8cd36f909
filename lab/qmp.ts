/**
 * A minimal QMP client (QEMU's JSON monitor on a unix socket): the greeting, qmp_capabilities,
 * then one command; asynchronous events in between are skipped.
 */
import * as net from 'node:net';

export async function qmpCommand(socketPath: string, command: string, args: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<unknown> {
  const sock = net.createConnection(socketPath);
  const lines: string[] = [];
  let buffered = '';
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buffered += d;
    let i: number;
    while ((i = buffered.indexOf('\n')) >= 0) {
      lines.push(buffered.slice(0, i));
      buffered = buffered.slice(i + 1);
    }
    wake?.();
  });
  sock.on('error', (e) => {
    failure = e;
    wake?.();
  });
  const deadline = Date.now() + timeoutMs;
  const next = async (): Promise<Record<string, unknown>> => {
    for (;;) {
      if (failure) throw failure;
      const line = lines.shift();
      if (line !== undefined) {
        const msg = JSON.parse(line) as Record<string, unknown>;
        if (!('event' in msg)) return msg;
        continue;
      }
      if (Date.now() > deadline) throw new Error(`QMP ${command}: no answer within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
  };
  try {
    await next(); // greeting
    for (const [c, a] of [
      ['qmp_capabilities', {}],
      [command, args],
    ] as const) {
      sock.write(JSON.stringify({ execute: c, arguments: a }) + '\n');
      const r = await next();
      if (r.error) throw new Error(`QMP ${c}: ${JSON.stringify(r.error)}`);
      if (c === command) return r.return;
    }
    return undefined;
  } finally {
    sock.destroy();
  }
}

/** Reads a binary PPM (P6, what QEMU's screendump writes): width, height and RGB pixels. */
export function readPpm(buf: Buffer): { width: number; height: number; rgb: Buffer } {
  const fields: string[] = [];
  let i = 0;
  while (fields.length < 4) {
    while (i < buf.length && /\s/.test(String.fromCharCode(buf[i]))) i++;
    const start = i;
    while (i < buf.length && !/\s/.test(String.fromCharCode(buf[i]))) i++;
    if (i === start) throw new Error('not a PPM file');
    fields.push(buf.toString('latin1', start, i));
  }
  if (fields[0] !== 'P6') throw new Error(`not a binary PPM (${fields[0]})`);
  const width = Number(fields[1]);
  const height = Number(fields[2]);
  return { width, height, rgb: buf.subarray(i + 1, i + 1 + width * height * 3) };
}

/** How many pixels of an RGB image are exactly (r, g, b). */
export function countColour(rgb: Buffer, [r, g, b]: readonly [number, number, number]): number {
  let n = 0;
  for (let k = 0; k + 2 < rgb.length; k += 3) if (rgb[k] === r && rgb[k + 1] === g && rgb[k + 2] === b) n++;
  return n;
}
