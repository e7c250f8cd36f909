/** One check finding as a line: `check`'s output and the live log's message (`proxy --check`). */
import type { CheckFinding } from './checker';
import { secs } from '../log/format';

export function findingLine(f: CheckFinding): string {
  return `${secs(f.ts).padStart(14)} s${f.session}${f.message !== undefined ? ` #${f.message}` : ''} ${f.rule.id} ${f.rule.name} (${f.rule.severity}) at ${f.at}: ${f.detail} [${f.rule.section}]`;
}
