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
  const want = [rule.integer ? 'an integer' : 'a number', rule.min !== undefined ? `>= ${rule.min}` : '', rule.max !== undefined ? `<= ${rule.max}` : ''].filter(Boolean).join(' ');
  if (!Number.isFinite(n) || (rule.integer && !Number.isInteger(n)) || (rule.min !== undefined && n < rule.min) || (rule.max !== undefined && n > rule.max))
    throw new Error(`${name} ${JSON.stringify(String(value))}: want ${want}`);
  return n;
}

/** A file mode in octal (0600, 660): the permission bits only. */
export function modeOption(name: string, value: string): number {
  if (!/^0?[0-7]{3}$/.test(value.trim())) throw new Error(`${name} ${JSON.stringify(value)}: want an octal file mode such as 0600`);
  return parseInt(value, 8);
}
