/**
 * A rules file: JSON, either a bare array of rules or `{ "presets": [...], "rules": [...] }`
 * (schema: docs/fault-rules.schema.json). Every problem is reported with the file's name and the
 * path of the field, all at once, before the daemon starts.
 */
import * as fs from 'node:fs';
import { compileRule } from './compile';
import { PRESETS } from './presets';
import type { FaultRule } from './rules';
import { RULES_FILE_SCHEMA, validateAgainst } from './schema';

export function parseRulesDocument(doc: unknown, name: string): FaultRule[] {
  const obj = Array.isArray(doc) ? { rules: doc } : doc;
  const errors = validateAgainst(RULES_FILE_SCHEMA, obj, Array.isArray(doc) ? '' : '$').map((e) => e.replace(/^\.?/, ''));
  if (errors.length) throw new Error(`${name}: ${errors.length} problem(s):\n  ${errors.join('\n  ')}`);
  const o = obj as { presets?: string[]; rules?: FaultRule[] };
  const rules = [...(o.presets ?? []).flatMap((p) => PRESETS[p].rules), ...(o.rules ?? [])];
  const problems: string[] = [];
  (o.rules ?? []).forEach((r, i) => {
    try {
      compileRule(r, `rules[${i}]`);
    } catch (err) {
      problems.push((err as Error).message);
    }
  });
  if (problems.length) throw new Error(`${name}: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  return rules;
}

export function loadRulesFile(file: string): FaultRule[] {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
  return parseRulesDocument(doc, file);
}
