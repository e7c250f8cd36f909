/** `vhostscope check FILE`: protocol and interop checks over a recording. */
import type { Command } from 'commander';
import { recordingArg } from './recording-arg';
import { ALL_RULES, explainRule, findRule } from '../analysis/rules';
import { catalogueOf, catalogueText, findCatalogueEntry } from '../analysis/catalogue';
import { findingLine } from '../analysis/finding-line';
import { secs } from '../log/format';
import type { Dialect } from '../protocol';
import { dialectOption, jsonOption, numberOpt } from './options';
import { checkFile } from '../views/check';

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check a recording against the spec and against interop bugs seen in the field')
    .argument('[file]', 'a recording made with proxy --record')
    .addOption(jsonOption('findings as JSON lines'))
    .addOption(numberOpt('--reply-timeout <ms>', 'a reply later than this counts as missing', { min: 0 }, 5000))
    .option('--rules', 'list the rules and exit')
    .option('--catalogue', 'list the field catalogue (R01-R71) and the rules that check each entry, and exit')
    .option('--explain <rule>', 'what a rule (id, name or catalogue entry R..) finds, why it matters and how to fix it')
    .addOption(dialectOption())
    .action(
      (file: string | undefined, o: { json?: boolean; replyTimeout: number; rules?: boolean; catalogue?: boolean; explain?: string; dialect?: Dialect }) => {
        if (o.explain !== undefined) {
          process.stdout.write(explain(o.explain));
          return;
        }
        if (o.rules) {
          for (const r of ALL_RULES) {
            const field = catalogueOf(r.id);
            process.stdout.write(`${r.id} ${r.name} (${r.severity})${field.length ? ` ${field.join(',')}` : ''}: ${r.explain} [${r.section}]\n`);
          }
          return;
        }
        if (o.catalogue) {
          process.stdout.write(catalogueText());
          return;
        }
        if (!file) throw new Error('check: a recording file is needed (or --rules, --explain RULE)');
        const { findings, torn } = checkFile(recordingArg(file), o.replyTimeout, o.dialect);
        for (const f of findings) {
          process.stdout.write(
            o.json
              ? JSON.stringify({
                  id: f.rule.id,
                  rule: f.rule.name,
                  severity: f.rule.severity,
                  section: f.rule.section,
                  explain: f.rule.explain,
                  session: f.session,
                  message: f.message,
                  t: secs(f.ts),
                  at: f.at,
                  detail: f.detail,
                }) + '\n'
              : findingLine(f) + '\n',
          );
        }
        if (torn) process.stdout.write(`note: the recording ends in a torn frame (${torn}); checked up to it\n`);
        if (!o.json) process.stdout.write(`${findings.length} finding(s)\n`);
        process.exitCode = findings.some((f) => f.rule.severity === 'error') ? 1 : 0;
      },
    );
}

/** A rule's explanation; for a catalogue entry, the entry and each of its rules'. */
function explain(what: string): string {
  const r = findRule(what);
  if (r) return explainRule(r);
  const c = findCatalogueEntry(what);
  if (!c) throw new Error(`check --explain: no rule ${JSON.stringify(what)} (vhostscope check --rules and --catalogue list them)`);
  const head = `${c.id} ${c.what}\n  source: ${c.source}\n${c.gap ? `  not yet: ${c.gap}\n` : ''}`;
  return head + c.rules.map((id) => explainRule(findRule(id)!)).join('');
}
