/**
 * The daemon's active fault rules: added from flags and files at start and over the control
 * socket at run time, numbered, counted, spent when they reach their limit. Sessions consult it
 * for every message, so a rule added while a session runs applies from its next message on.
 */
import { compileRule, type CompiledRule } from './compile';
import { describeRule, type ActiveRule, type FaultRule } from './rules';

export interface RuleEntry extends ActiveRule {
  compiled: CompiledRule;
}

export class FaultRuleSet {
  private readonly entries: RuleEntry[] = [];
  private nextId = 1;
  private readonly listeners = new Set<(change: 'added' | 'removed', e: RuleEntry) => void>();

  constructor(rules: FaultRule[] = []) {
    for (const r of rules) this.add(r);
  }

  /** Validates and activates a rule; throws (and changes nothing) when it is not valid. */
  add(rule: FaultRule): RuleEntry {
    const compiled = compileRule(rule);
    const id = rule.id ?? String(this.nextId++);
    if (this.entries.some((e) => e.id === id)) throw new Error(`a rule with id ${id} exists already`);
    const entry: RuleEntry = { id, rule, text: describeRule(rule), applied: 0, compiled };
    this.entries.push(entry);
    for (const l of this.listeners) l('added', entry);
    return entry;
  }

  /**
   * Replaces the rules `oldIds` by `rules` (SIGHUP re-reading a rules file): every new rule is
   * validated first, and on any error nothing changes. Returns the entries removed and added.
   */
  replace(oldIds: readonly string[], rules: FaultRule[]): { removed: RuleEntry[]; added: RuleEntry[] } {
    for (const r of rules) compileRule(r); // throws before anything changes
    const staying = new Set(this.entries.filter((e) => !oldIds.includes(e.id)).map((e) => e.id));
    const ids = rules.map((r) => r.id).filter((id): id is string => id !== undefined);
    const clash = ids.find((id, i) => staying.has(id) || ids.indexOf(id) !== i);
    if (clash) throw new Error(`a rule with id ${clash} exists already`);
    const removed = oldIds.map((id) => this.remove(id)).filter((e): e is RuleEntry => e !== undefined);
    return { removed, added: rules.map((r) => this.add(r)) };
  }

  remove(id: string): RuleEntry | undefined {
    const i = this.entries.findIndex((e) => e.id === id);
    if (i < 0) return undefined;
    const [entry] = this.entries.splice(i, 1);
    for (const l of this.listeners) l('removed', entry);
    return entry;
  }

  /** Rules that may still apply (not removed, under their limit), in the order they were added. */
  live(): RuleEntry[] {
    return this.entries.filter((e) => e.rule.limit === undefined || e.applied < e.rule.limit);
  }

  list(): ActiveRule[] {
    return this.entries.map(({ id, rule, text, applied }) => ({ id, rule, text, applied }));
  }

  /** Counts one application; false when the rule is spent (or gone) and must not apply. */
  use(entry: RuleEntry): boolean {
    if (!this.entries.includes(entry)) return false;
    if (entry.rule.limit !== undefined && entry.applied >= entry.rule.limit) return false;
    entry.applied++;
    return true;
  }

  onChange(l: (change: 'added' | 'removed', e: RuleEntry) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get size(): number {
    return this.entries.length;
  }
}
