/**
 * What a bug report holds besides the recording itself (`vhostscope bugreport`): the findings
 * with what each rule means and how to fix it, the summary `info` prints, and who the peers
 * were (executables and command lines, the capture host), as text a maintainer reads first.
 */
import { explainRule } from '../analysis/rules';
import { findingLine } from '../analysis/finding-line';
import { summarize } from '../analysis/summary';
import { readRecording } from '../recording/reader';
import { checkFile } from './check';
import { infoText } from './recording';

export interface BugReportTexts {
  'check.txt': string;
  'info.txt': string;
  'peers.txt': string;
  'README.txt': string;
}

/** `chaos seed=7 profile=enable` as the proxy's flag: `--chaos 7:enable`. */
function chaosFlag(text: string): string {
  const seed = /seed=(\d+)/.exec(text)?.[1] ?? '?';
  const profile = /profile=([a-z]+)/.exec(text)?.[1];
  return `--chaos ${seed}${profile ? `:${profile}` : ''}`;
}

export function bugReportTexts(file: string): BugReportTexts {
  const { findings, torn } = checkFile(file);
  const rules = [...new Map(findings.map((f) => [f.rule.id, f.rule])).values()].sort((a, b) => a.id.localeCompare(b.id));
  const check = [
    `${findings.length} finding(s)${torn ? `; the recording ends in a torn frame (${torn})` : ''}`,
    ...findings.map((f) => findingLine(f).trimEnd()),
    ...(rules.length ? ['', 'What the rules mean, and how to fix what they found:', '', ...rules.map(explainRule)] : []),
  ].join('\n');
  const sum = summarize(readRecording(file).records);
  const peers: string[] = [];
  for (const h of sum.headers)
    peers.push(`captured by vhostscope ${h.host.vhostscope} on ${h.host.hostname} (${h.host.kernel}, ${h.host.arch}, node ${h.host.node})`);
  for (const s of sum.sessions)
    for (const [side, p] of Object.entries(s.peers))
      if (p)
        peers.push(`session ${s.session} ${side} side: pid ${p.pid} uid ${p.uid} ${p.exe ?? '(executable unknown)'}${p.cmdline ? `\n  ${p.cmdline}` : ''}`);
  const chaos = [...new Set(readRecording(file).records.flatMap((r) => (r.type === 'fault' && r.action === 'chaos' ? [r.text] : [])))];
  const readme = [
    'A vhostscope bug report: one recording of a vhost-user session, and what vhostscope made of it.',
    '',
    ...chaos.map((text) => `The session ran in chaos mode: ${text} (${chaosFlag(text)} on the proxy makes the same perturbations again).`),
    ...(chaos.length ? [''] : []),
    '  vhostscope report THIS.tar.gz -o report.html   the whole session as one HTML page',
    '  vhostscope show THIS.tar.gz                    every message, decoded',
    '  vhostscope replay THIS.tar.gz --as frontend --connect BACKEND.sock   against your back-end',
    '',
    'check.txt: the findings, and each rule explained; info.txt: the summary; peers.txt: who the',
    'peers were; recording.vhsrec: the recording (docs/recording-format.md).',
  ].join('\n');
  return { 'check.txt': `${check}\n`, 'info.txt': `${infoText(file).join('\n')}\n`, 'peers.txt': `${peers.join('\n')}\n`, 'README.txt': `${readme}\n` };
}
