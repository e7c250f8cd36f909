/**
 * The layering of src/ as a rule: each folder sits on a floor and imports only folders on lower
 * floors; no file imports itself around a cycle; only the wiring (the commands that build a
 * daemon, src/service) imports the engine in src/proxy. docs/architecture.md draws the same floors.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(__dirname, '..', '..', 'src');

/** Each folder of src/ and its floor: a folder imports only folders on lower floors. */
const FLOORS: Record<string, number> = {
  util: 0,
  protocol: 0,
  native: 1,
  faults: 1,
  rings: 1,
  events: 2,
  log: 3,
  proxy: 3,
  control: 4,
  recording: 5,
  analysis: 6,
  replay: 7,
  demo: 1,
  service: 8,
  views: 8,
  cli: 9,
};

/** The service layer builds daemons from the engine's parts: the only importer of src/proxy. */
const WIRING = 'service';

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The src/ files a file imports (relative specifiers only; `import type` counts: it is still a dependency of the design). */
function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import|require\()\s*'(\.{1,2}\/[^']*)'/g)) {
    const base = path.resolve(path.dirname(file), m[1]!);
    const hit = [`${base}.ts`, path.join(base, 'index.ts')].find((f) => fs.existsSync(f));
    if (hit) out.push(hit);
  }
  return out;
}

const folder = (file: string): string => path.relative(SRC, file).split(path.sep)[0]!;
const graph = new Map(sources(SRC).map((f) => [f, imports(f)]));

describe('layers of src/', () => {
  it('every folder has a floor, and none imports a folder on its own floor or above', () => {
    const upward: string[] = [];
    for (const [file, deps] of graph) {
      const from = folder(file);
      expect(FLOORS[from], `${from}/ has no floor in this test`).toBeDefined();
      for (const dep of deps) {
        const to = folder(dep);
        if (to !== from && !(FLOORS[to]! < FLOORS[from]!)) upward.push(`${path.relative(SRC, file)} -> ${path.relative(SRC, dep)}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('the product imports nothing from the lab or the tests above it', () => {
    const outside = [...graph].flatMap(([file, deps]) =>
      deps.filter((d) => path.relative(SRC, d).startsWith('..')).map((d) => `${path.relative(SRC, file)} -> ${path.relative(SRC, d)}`),
    );
    expect(outside).toEqual([]);
  });

  it('only the service layer imports the engine (src/proxy)', () => {
    const reaching = [...graph]
      .filter(([file, deps]) => folder(file) !== 'proxy' && deps.some((d) => folder(d) === 'proxy'))
      .map(([f]) => path.relative(SRC, f));
    expect(reaching.filter((f) => folder(path.join(SRC, f)) !== WIRING)).toEqual([]);
    expect(reaching.length).toBeGreaterThan(0); // the rule reads the imports it should (a parse that finds none passes vacuously)
  });

  it('no file imports itself around a cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const d of graph.get(f) ?? []) {
        if (state.get(d) === 'open')
          cycles.push(
            stack
              .slice(stack.indexOf(d))
              .concat(d)
              .map((x) => path.relative(SRC, x))
              .join(' -> '),
          );
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of graph.keys()) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });
});
