/** The --dialect option shared by proxy, show and check. */
import { DIALECTS, type Dialect } from '../protocol';

export const DIALECT_HELP = `decode request codes that differ between implementations as this family's: ${DIALECTS.join(', ')} (default: decided by the negotiated features, else shown as ambiguous)`;

export function parseDialect(v: string): Dialect {
  if (!(DIALECTS as readonly string[]).includes(v)) throw new Error(`--dialect ${v}: one of ${DIALECTS.join(', ')}`);
  return v as Dialect;
}
