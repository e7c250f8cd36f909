/** A replay's outcome as text: what was sent, what came back, each divergence. */
import type { ReplayResult } from '../replay/frontend';

export function reportLines(r: ReplayResult): string[] {
  const out: string[] = [];
  for (const d of r.divergences) {
    out.push(`DIVERGES #${d.index} ${d.request} (${d.kind})`);
    if (d.recorded !== undefined || d.live !== undefined) out.push(`    recorded: ${d.recorded ?? '-'}`, `    live:     ${d.live ?? '-'}`);
    for (const f of d.fields) out.push(`    ${f}`);
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  out.push(`${r.divergences.length} divergence(s), ${r.sent} message(s) sent`);
  return out;
}
