/**
 * The daemon's V8 heap policy. V8 lets its old generation grow to up to 4x the live data
 * before a full collection when it judges the program fast (its heap-growing factor, from GC
 * speed and mutator utilisation). The daemon's live data is small (38-49 MiB in heap snapshots
 * of the 64-session soak, flat over time) but it allocates briskly, so V8 kept raising its limit:
 * the heap's committed size climbed from 149 to 186 MiB over a 30-minute soak and the RSS with it.
 * A fixed factor of 2 bounds the heap at about twice the live data, at the cost of more frequent
 * (incremental, concurrent-marking) full collections; `node bench/soak.js` measured the RSS lower
 * and flat with it, and no slower.
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 100;

/**
 * Applies the policy to this process unless its node flags choose otherwise
 * (`node --heap-growing-percent=N .../main.js proxy ...`). Returns the percent in force, or
 * undefined when the user's own flag stands.
 */
export function boundHeapGrowth(execArgv: readonly string[] = process.execArgv): number | undefined {
  if (execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) return undefined;
  // V8 reads the flag each time it sets the next collection's limit, so setting it now applies
  // from the next collection on (Node leaves V8's flags writable after start for this call)
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return HEAP_GROWING_PERCENT;
}
