/**
 * `vhostscope proxy --config FILE`: many devices in one daemon, from a JSON file whose keys are
 * the command line's own option names (docs/proxy-config.md):
 *
 *   { "record": "/var/lib/vhostscope/rec/", "keep": "2GiB", "metrics": "127.0.0.1:9464",
 *     "devices": [ { "name": "vm1-net0", "listen": "/run/vhostscope/vm1-net0.sock",
 *                    "connect": "/run/openvswitch/vhu0", "device": "net" } ] }
 *
 * Top-level keys apply to every device; a device may set its own listen, connect, frontend,
 * device, control, mode, owner, group, connect-timeout and allow-uid. Options given on the command line win
 * over the file, and the file over the defaults.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The options a device entry may set for itself. */
export const DEVICE_KEYS = [
  'name',
  'listen',
  'connect',
  'frontend',
  'device',
  'control',
  'mode',
  'owner',
  'group',
  'connect-timeout',
  'allow-uid',
  'fault',
] as const;

/** Options that make no sense in a file (how this process logs is its command line's business). */
const COMMAND_LINE_ONLY = new Set(['config', 'json', 'pretty']);

export interface DeviceEntry {
  name: string;
  listen: string;
  connect: string;
  /** the device's own options, as camelCase option keys */
  options: Record<string, unknown>;
}

export interface ProxyConfig {
  /** top-level options, as camelCase option keys */
  options: Record<string, unknown>;
  devices: DeviceEntry[];
  /** where it was read from, and the option names it was checked against (SIGHUP reads it again) */
  file: string;
  known: ReadonlyMap<string, boolean>;
}

const camel = (k: string): string => k.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** A value as commander would have given it: strings for values, arrays of strings for repeatables. */
function optionValue(file: string, where: string, key: string, v: unknown, repeatable: boolean): unknown {
  if (repeatable) {
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === 'string' || typeof x === 'number')) throw new Error(`${file}: ${where}"${key}": want a list of strings`);
    return list.map(String);
  }
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  throw new Error(`${file}: ${where}"${key}": want a string, number or true/false, not ${JSON.stringify(v)}`);
}

/**
 * Reads and checks the file. `known` maps each option's long name (kebab-case) to whether it is
 * repeatable; anything else is an error naming the key.
 */
export function loadProxyConfig(file: string, known: ReadonlyMap<string, boolean>): ProxyConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`--config ${file}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: want a JSON object with "devices"`);
  const options: Record<string, unknown> = {};
  let devices: unknown = [];
  for (const [key, v] of Object.entries(raw)) {
    if (key === 'devices') {
      devices = v;
      continue;
    }
    if (key === '$schema' || key === 'comment') continue;
    if (COMMAND_LINE_ONLY.has(key) || !known.has(key) || key === 'listen' || key === 'connect')
      throw new Error(
        `${file}: "${key}" is not an option a config file sets (the command line's long option names are; "listen" and "connect" belong to each device)`,
      );
    options[camel(key)] = optionValue(file, '', key, v, known.get(key)!);
  }
  if (!Array.isArray(devices) || devices.length === 0) throw new Error(`${file}: "devices" must list at least one { "listen": ..., "connect": ... }`);
  const names = new Set<string>();
  const listens = new Set<string>();
  const entries = devices.map((d: unknown, i: number): DeviceEntry => {
    const where = `devices[${i}].`;
    if (typeof d !== 'object' || d === null || Array.isArray(d)) throw new Error(`${file}: devices[${i}]: want an object`);
    const own: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(d)) {
      if (!(DEVICE_KEYS as readonly string[]).includes(key))
        throw new Error(`${file}: ${where}"${key}": a device sets only ${DEVICE_KEYS.join(', ')} (the rest is top-level)`);
      own[camel(key)] = key === 'control' && v === false ? false : optionValue(file, where, key, v, key === 'allow-uid' || key === 'fault');
    }
    if (typeof own.listen !== 'string' || typeof own.connect !== 'string') throw new Error(`${file}: devices[${i}] needs "listen" and "connect"`);
    const listen = own.listen;
    const name = typeof own.name === 'string' ? own.name : path.basename(listen).replace(/\.sock$/, '');
    if (listens.has(listen)) throw new Error(`${file}: two devices listen on ${listen}`);
    if (names.has(name)) throw new Error(`${file}: two devices are named ${name} (give each a "name")`);
    names.add(name);
    listens.add(listen);
    delete own.name;
    return { name, listen, connect: own.connect as string, options: own };
  });
  return { options, devices: entries, file, known };
}
