/**
 * Options more than one command takes, declared once: each builder returns a commander Option
 * whose value arrives checked (a device type, a dialect, a number within its range).
 */
import { InvalidArgumentError, Option } from 'commander';
import { DEVICE_TYPES, DIALECTS, type DeviceType, type Dialect } from '../protocol';
import { numberOption, type NumberRule } from './numbers';

/** Commander prints an InvalidArgumentError as "option '--x' argument 'v' is invalid. <why>". */
function checked<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

export function jsonOption(help = 'as JSON'): Option {
  return new Option('--json', help);
}

export function parseDevice(v: string): DeviceType {
  if (!(DEVICE_TYPES as readonly string[]).includes(v)) throw new Error(`--device ${v}: one of ${DEVICE_TYPES.join(', ')}`);
  return v as DeviceType;
}

/**
 * --device. 'infer': absent means each session's device is inferred (proxy, show, info, report);
 * 'generic': absent means generic names (commands that have nothing to infer from).
 */
export function deviceOption(absent: 'infer' | 'generic'): Option {
  const help =
    absent === 'infer'
      ? `name device feature bits as this device's: ${DEVICE_TYPES.join(', ')} (default: inferred per session from the peers' command lines, GPU_SET_SOCKET, the config size)`
      : `name device feature bits as this device's: ${DEVICE_TYPES.join(', ')}`;
  const o = new Option('--device <type>', help).argParser(checked(parseDevice));
  return absent === 'generic' ? o.default('generic') : o;
}

export function parseDialect(v: string): Dialect {
  if (!(DIALECTS as readonly string[]).includes(v)) throw new Error(`--dialect ${v}: one of ${DIALECTS.join(', ')}`);
  return v as Dialect;
}

export function dialectOption(): Option {
  return new Option(
    '--dialect <family>',
    `decode request codes that differ between implementations as this family's: ${DIALECTS.join(', ')} (default: decided by the negotiated features, else shown as ambiguous)`,
  ).argParser(checked(parseDialect));
}

/** A numeric option, checked by numberOption; its default (a number) is shown in the help. */
export function numberOpt(flags: string, help: string, rule: NumberRule, fallback?: number): Option {
  const name = flags.split(/[ ,]/)[0]!;
  const o = new Option(flags, help).argParser(checked((v) => numberOption(name, v, rule)));
  return fallback === undefined ? o : o.default(fallback);
}

export const CONTROL_HELP = "the daemon's control socket (or its listen path); default $VHOSTSCOPE_CONTROL";

export function controlOption(): Option {
  return new Option('--control <path>', CONTROL_HELP);
}
