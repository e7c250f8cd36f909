/** A recording directory's sessions, segment files and pins: `vhostscope ls`'s figures and text. */
import { bytesText } from '../log/format';
import { listSegments, pinKeeps, readPins, type Pin, type Segment } from '../recording/flight';

export interface ListedSession {
  session: string;
  segments: number;
  bytes: number;
  startMs: number;
  endMs: number;
  /** the first segment (the handshake) is still there */
  hasStart: boolean;
  /** ids of the pins that keep some of its segments */
  pins: number[];
  files: string[];
}

export function listDirectory(dir: string): { sessions: ListedSession[]; pins: Pin[] } {
  const pins = readPins(dir).sort((a, b) => a.atMs - b.atMs);
  const by = new Map<string, Segment[]>();
  for (const s of listSegments(dir)) by.set(s.session, [...(by.get(s.session) ?? []), s]);
  const sessions = [...by.entries()].map(
    ([session, segs]): ListedSession => ({
      session,
      segments: segs.length,
      bytes: segs.reduce((n, s) => n + s.bytes, 0),
      startMs: Math.min(...segs.map((s) => s.startMs)),
      endMs: Math.max(...segs.map((s) => s.endMs)),
      hasStart: segs.some((s) => s.index === 0),
      pins: pins.filter((p) => segs.some((s) => pinKeeps(p, s))).map((p) => p.id),
      files: segs.sort((a, b) => a.index - b.index).map((s) => s.file),
    }),
  );
  return { sessions: sessions.sort((a, b) => a.startMs - b.startMs), pins };
}

const iso = (ms: number): string =>
  new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');

export function lsText(dir: string): string[] {
  const { sessions, pins } = listDirectory(dir);
  const lines = [
    `${dir}: ${sessions.length} session(s), ${bytesText(sessions.reduce((n, s) => n + s.bytes, 0))} in ${sessions.reduce((n, s) => n + s.segments, 0)} segment file(s); ${pins.length} pin(s)`,
  ];
  for (const s of sessions) {
    const notes = [s.hasStart ? '' : 'first segment deleted (no handshake)', s.pins.length ? `pinned by ${s.pins.join(', ')}` : ''].filter(Boolean);
    lines.push(
      `  ${s.session}  ${iso(s.startMs)} .. ${iso(s.endMs)}  ${s.segments} segment(s) ${bytesText(s.bytes)}${notes.length ? `  (${notes.join('; ')})` : ''}`,
    );
  }
  for (const p of pins) lines.push(`  pin ${p.id}: ${iso(p.fromMs)} .. ${iso(p.toMs)}${p.session ? ` of ${p.session}` : ', every session'}: ${p.reason}`);
  return lines;
}
