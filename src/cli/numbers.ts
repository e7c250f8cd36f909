/**
 * Numeric command-line options, checked: a value that is not a number, or is outside what the
 * option can mean, stops the command with a message naming the option, instead of becoming
 * NaN or a nonsense value deep inside the daemon.
 */
export interface NumberRule {
  min?: number;
  max?: number;
  integer?: boolean;
}

export function numberOption(name: string, value: string | number, rule: NumberRule = {}): number {
  const s = String(value).trim();
  const n = /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(s) ? Number(s) : NaN;
  const want = [rule.integer ? 'an integer' : 'a number', rule.min !== undefined ? `>= ${rule.min}` : '', rule.max !== undefined ? `<= ${rule.max}` : '']
    .filter(Boolean)
    .join(' ');
  if (!Number.isFinite(n) || (rule.integer && !Number.isInteger(n)) || (rule.min !== undefined && n < rule.min) || (rule.max !== undefined && n > rule.max))
    throw new Error(`${name} ${JSON.stringify(String(value))}: want ${want}`);
  return n;
}

/** A file mode in octal (0600, 660): the permission bits only. */
export function modeOption(name: string, value: string): number {
  if (!/^0?[0-7]{3}$/.test(value.trim())) throw new Error(`${name} ${JSON.stringify(value)}: want an octal file mode such as 0600`);
  return parseInt(value, 8);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
  t: 1e12,
  tb: 1e12,
  tib: 1024 ** 4,
};

/** A size: bytes, or with a unit (500MB, 2GiB, 1.5G; decimal k/M/G/T, binary KiB/MiB/GiB/TiB). */
export function sizeOption(name: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined || Number(m[1]) <= 0) throw new Error(`${name} ${JSON.stringify(value)}: want a size such as 2GiB, 500MB or 1048576`);
  return Math.round(Number(m[1]) * unit);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** A duration: 500ms, 60s, 10m, 12h, 7d, 2w (a bare number is seconds). Returns ms. */
export function durationOption(name: string, value: string, rule: { min?: number } = {}): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?$/.exec(value.trim());
  const ms = m ? Number(m[1]) * DURATION_UNITS[m[2] ?? 's']! : NaN;
  if (!Number.isFinite(ms) || ms < (rule.min ?? 0))
    throw new Error(`${name} ${JSON.stringify(value)}: want a duration such as 60s, 10m, 12h or 7d${rule.min ? ` (at least ${rule.min} ms)` : ''}`);
  return ms;
}
