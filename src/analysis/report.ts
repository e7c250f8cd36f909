/**
 * One self-contained HTML report of a recording (no network needed to view it): per session the
 * handshake as a table, the check findings, per-request latency (--rings), a kick→next-call histogram per vring and a
 * timeline of messages and notifications. Data is embedded as JSON; a small inline script draws
 * the plots as SVG and marks each one data-rendered="true".
 */
import { durationUs, printable, secs } from '../log/format';
import { flagsToString, formatPayload, type DeviceType } from '../protocol';
import { eventfdMode, type InflightEvent, type ProxyEvent } from '../events/events';
import { NotificationStats } from '../events/notification-stats';
import { findMigrations, migrationLines } from './migration';
import { relayTransit, TRANSIT_METHOD, type RelayTransit } from './relay-transit';
import { requestLatency, type SessionRequests } from './request-latency';
import { summarize } from './summary';
import { checkEvents, type CheckFinding } from './checker';
import { ringStateText, ringTransitions } from './ring-states';
import { inflightText } from '../rings/inflight';
import { deviceOf, recordingDevices } from '../recording/devices';
import type { RecordingRecord } from '../recording/records';
import { entryLine, indicesText } from '../rings/format';

// markup escaped, and control characters shown as \xHH (a terminal escape in a peer's string
// stays visible and inert, also for whoever cats the file)
const esc = (s: string): string => printable(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
/**
 * Any value from a recording, escaped: a recording is peer-controlled input (a crafted one may
 * hold markup where a number is expected), so nothing of it reaches the page unescaped.
 */
const escv = (v: unknown): string => esc(String(v));

interface SessionData {
  id: number;
  timeline: { t: number; lane: string; label: string; kind: 'req' | 'reply' | 'kick' | 'call' | 'err' }[];
  /** the handshake as a sequence: who sent what, what the proxy did with it (first MAX_SEQUENCE messages) */
  sequence: {
    t: number;
    from: 'F' | 'B';
    label: string;
    reply: boolean;
    channel: string;
    proxy?: 'injected' | 'absorbed' | 'dropped' | 'answered' | 'masked';
  }[];
  histograms: { vring: number; buckets: { fromUs: number; toUs: number; count: number }[]; p50?: number; p99?: number }[];
  /** per vring and operation (--rings): [completed ms, latency µs] points (evenly thinned to MAX_POINTS), percentiles */
  requests: { vring: number; op: string; count: number; p50: number; p99: number; max: number; points: [number, number][] }[];
  durationMs: number;
}

/** the sequence diagram shows the handshake: a session's first messages */
const MAX_SEQUENCE = 200;

/** a chart stays readable (and the report small) however many requests */
const MAX_POINTS = 2000;

function requestSeries(r: SessionRequests | undefined, t0: bigint): SessionData['requests'] {
  if (!r) return [];
  return r.operations.map((o) => {
    const all = r.requests.filter((x) => x.vring === o.vring && x.op === o.op);
    const step = Math.max(1, Math.ceil(all.length / MAX_POINTS));
    const points = all.filter((_x, i) => i % step === 0).map((x): [number, number] => [Number(x.completedNs - t0) / 1e6, x.latencyNs / 1000]);
    return { vring: o.vring, op: o.op, count: o.count, p50: o.latencyUs.p50, p99: o.latencyUs.p99, max: o.latencyUs.max, points };
  });
}

/** a report stays readable (and small) however long the recording */
const MAX_RING_ROWS = 2000;

const fmtUs = durationUs;

/** Per-request latency per vring and operation (recorded with --rings), or why there is none. */
function requestTable(r: SessionRequests | undefined): string {
  if (!r) return '<h3>Request latency</h3><p class="method">Not measured: record with <code>proxy --rings</code> for per-request latency.</p>';
  const rows = r.operations.map(
    (o) =>
      `<tr><td>${escv(o.vring)}</td><td>${esc(o.op)}</td><td>${escv(o.count)}${o.unbounded ? ` (${escv(o.unbounded.count)} polled for, left out)` : ''}</td><td>${fmtUs(o.latencyUs.p50)}</td><td>${fmtUs(o.latencyUs.p90)}</td><td>${fmtUs(o.latencyUs.p99)}</td><td>${fmtUs(o.latencyUs.max)}</td><td>± ${fmtUs(o.uncertaintyP50Us)}</td><td>${o.notifyP50Us !== undefined ? fmtUs(o.notifyP50Us) : '—'}</td></tr>`,
  );
  return `<h3>Request latency (from ring snapshots)</h3>
<p class="method">Each descriptor chain from the first snapshot that saw it submitted to the first that saw it used by the device, matched by head id; ± is how far the snapshots around both moments leave it open (p50); used → call is how long the driver then waited to be told. A request no call marked done, with no snapshot within 1 ms before the one that saw it done (a driver that polled for it), has no latency here: it is counted apart.${r.outstanding.length ? ` ${r.outstanding.length} outstanding at the end (oldest ${fmtUs(r.outstanding[0].ageUs)}).` : ''}</p>
<table class="requests"><thead><tr><th>vring</th><th>operation</th><th>n</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>uncertainty (p50)</th><th>used → call (p50)</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>`;
}

/** The relay's own time per vring, apart from the requests' latency it is part of. */
function transitTable(t: RelayTransit[] | undefined): string {
  if (!t) return '';
  const us = (ns: number): string => fmtUs(ns / 1000);
  return `<h3>vhostscope's own time</h3>
<p class="method">${esc(TRANSIT_METHOD)}: bounded by powers of two.</p>
<table class="transit"><thead><tr><th>vring</th><th>kind</th><th>n</th><th>mean</th><th>p50 ≤</th><th>p99 ≤</th><th>max ≤</th></tr></thead><tbody>
${t.map((x) => `<tr><td>${escv(x.vring)}</td><td>${escv(x.kind)}</td><td>${escv(x.count)}</td><td>${us(x.meanNs)}</td><td>${us(x.p50Ns)}</td><td>${us(x.p99Ns)}</td><td>${us(x.maxNs)}</td></tr>`).join('\n')}
</tbody></table>`;
}

export function renderReport(file: string, records: RecordingRecord[], events: ProxyEvent[], override?: DeviceType): string {
  const sum = summarize(records, override);
  const devices = recordingDevices(records, override);
  const findings = checkEvents(events);
  const transitions = ringTransitions(events);
  const requests = new Map(requestLatency(records, override).map((r) => [r.session, r]));
  const transit = relayTransit(records);
  const migrations = findMigrations(events);
  const h = sum.headers[0];
  const sessions: string[] = [];
  const data: SessionData[] = [];
  for (const s of sum.sessions) {
    const evs = events.filter((e) => e.session === s.session);
    const t0 = s.startNs;
    const ms = (ts: bigint): number => Number(ts - t0) / 1e6;
    const stats = new NotificationStats(t0, deviceOf(devices, s.session));
    const timeline: SessionData['timeline'] = [];
    const sequence: SessionData['sequence'] = [];
    const rows: string[] = [];
    const ringRows: string[] = [];
    const faultRows: string[] = [];
    for (const e of evs) {
      if (e.type === 'ring' && ringRows.length < MAX_RING_ROWS) {
        const sn = e.snapshot;
        const what = sn.kind === 'base' ? `GET_VRING_BASE answered ${e.base}` : `${sn.entries.length} new chain(s)${sn.truncated ? ' (truncated)' : ''}`;
        ringRows.push(
          `<tr class="ring-${escv(sn.kind)}"><td>${ms(e.ts).toFixed(3)}</td><td>${escv(e.vring)}</td><td>${escv(sn.kind)}</td><td>${esc(indicesText(sn))}</td><td>${esc(what)}${sn.error ? ` <b>${esc(sn.error)}</b>` : ''}${sn.entries.length ? `<br>${sn.entries.map((x) => esc(entryLine(x, sn, deviceOf(devices, e.session), e.vring))).join('<br>')}` : ''}</td></tr>`,
        );
      }
      if (e.type === 'fault') faultRows.push(`<tr><td>${ms(e.ts).toFixed(3)}</td><td>${esc(e.rule)}</td><td>${esc(e.text)}</td><td>${esc(e.detail)}</td></tr>`);
      if (e.type === 'message') {
        const d = e.decoded;
        rows.push(
          `<tr class="${d.reply ? 'reply' : 'req'}${e.findings.length ? ' warn' : ''}"><td>${ms(e.ts).toFixed(3)}</td><td>${escv(e.dir)}</td><td>${escv(e.channel)}</td><td>${esc(d.name)}</td><td>${esc(flagsToString(d.flags, d.channel))}</td><td>${escv(d.size)}</td><td>${esc(e.fds.map((f) => f.kind).join(' '))}</td><td>${esc(formatPayload(d, deviceOf(devices, e.session)))}</td></tr>`,
        );
        timeline.push({ t: ms(e.ts), lane: `${e.channel} ${e.dir}`, label: `${d.name}${d.reply ? ' reply' : ''}`, kind: d.reply ? 'reply' : 'req' });
        if (sequence.length < MAX_SEQUENCE) {
          const proxy = e.injected ? 'injected' : e.absorbed ? 'absorbed' : (e.undelivered ?? (e.masked?.length ? 'masked' : undefined));
          sequence.push({
            t: ms(e.ts),
            from: e.dir === 'F>B' ? 'F' : 'B',
            label: `${d.name}${d.reply ? ' reply' : ''} ${formatPayload(d, deviceOf(devices, e.session))}`.slice(0, 90),
            reply: d.reply,
            channel: e.channel,
            ...(proxy ? { proxy } : {}),
          });
        }
      } else if (e.type === 'notification') {
        stats.record(e.vring, e.kind, e.ts);
        timeline.push({ t: ms(e.ts), lane: `vring ${e.vring}`, label: `${e.kind} ${e.vring}`, kind: e.kind });
      }
    }
    const end = evs.find((e) => e.type === 'session-end')?.ts ?? evs.at(-1)?.ts ?? t0;
    const vr = stats.snapshot(end);
    data.push({
      id: s.session,
      timeline,
      sequence,
      requests: requestSeries(requests.get(s.session), t0),
      histograms: vr.filter((v) => v.histogram?.length).map((v) => ({ vring: v.vring, buckets: v.histogram!, p50: v.latencyUs?.p50, p99: v.latencyUs?.p99 })),
      durationMs: ms(end),
    });
    const sf = findings.filter((f) => f.session === s.session);
    const rt = transitions.filter((t) => t.session === s.session);
    const inflight = events.filter((e): e is InflightEvent => e.type === 'inflight' && e.session === s.session);
    sessions.push(`<section class="session">
<h2>Session ${escv(s.session)}</h2>
<p>${esc(s.listen)} (pid ${escv(s.peers.listen?.pid ?? '?')} ${esc(s.peers.listen?.exe ?? '')}) ⇄ ${esc(s.connect)} (pid ${escv(s.peers.connect?.pid ?? '?')} ${esc(s.peers.connect?.exe ?? '')})<br>
duration ${s.durationS?.toFixed(3) ?? '?'} s · messages F&gt;B ${escv(s.messages['F>B'])}, B&gt;F ${escv(s.messages['B>F'])} · eventfds ${eventfdMode(s)}${s.endReason ? ` · end: ${esc(s.endReason)}` : ''}</p>
<p>device: ${esc(s.device ? `${s.device} (${s.deviceReason})` : 'not known')}<br>protocol features in use: ${esc((s.features.protocolInUse ?? []).join(' | ') || '—')}<br>virtio features acked: ${esc((s.features.acked ?? []).join(' | ') || '—')}</p>
<h3>Check findings (${sf.length})</h3>
${sf.length ? `<ul class="findings">${sf.map((f) => `<li class="${escv(f.rule.severity)}"><b><a href="#rule-${escv(f.rule.id)}">${escv(f.rule.id)} ${escv(f.rule.name)}</a></b> at ${esc(f.at)}${f.message !== undefined ? ` (#${escv(f.message)})` : ''}: ${esc(f.detail)} <i>${esc(f.rule.section)}</i></li>`).join('')}</ul>` : '<p>none</p>'}
${
  rt.length
    ? `<h3>Ring states (${rt.length} changes)</h3>
<table class="ring-states"><thead><tr><th>ms</th><th>vring</th><th>state</th><th>by</th></tr></thead><tbody>
${rt.map((t) => `<tr><td>${ms(t.ts).toFixed(3)}</td><td>${escv(t.vring)}</td><td>${esc(ringStateText(t))}</td><td>${esc(t.why)}</td></tr>`).join('\n')}
</tbody></table>`
    : ''
}
${
  inflight.length
    ? `<h3>Inflight region (${inflight.length} readings)</h3>
<table class="inflight"><thead><tr><th>ms</th><th>when</th><th>queues</th></tr></thead><tbody>
${inflight.map((r) => `<tr><td>${ms(r.ts).toFixed(3)}</td><td>${esc(r.when)}${r.error ? ` (${esc(r.error)})` : ''}</td><td>${esc(inflightText(r.queues).join('; '))}</td></tr>`).join('\n')}
</tbody></table>`
    : ''
}
<h3>Handshake (sequence)</h3>
<div class="plot sequence" id="seq-${escv(s.session)}"></div>
<h3>Timeline</h3>
<p class="method">Scroll to zoom (around the pointer), drag to pan, double-click to reset.</p>
<div class="plot timeline" id="timeline-${escv(s.session)}"></div>
${requestTable(requests.get(s.session))}
${requests.get(s.session) ? `<div class="plot requests" id="req-${escv(s.session)}"></div>` : ''}
<h3>kick→next call per vring</h3>
<p class="method">From notifications: the first kick after a call to the next call on the vring. Not a request's latency (notifications are suppressed and batched); net receive queues and calls after an idle gap (&gt; 1 s) are not paired.</p>
<div class="plot histograms" id="hist-${escv(s.session)}"></div>
${transitTable(transit.get(s.session))}
${
  faultRows.length
    ? `<h3>Fault rules applied (${faultRows.length})</h3>
<table><thead><tr><th>ms</th><th>rule</th><th>rule text</th><th>what it did</th></tr></thead><tbody>
${faultRows.join('\n')}
</tbody></table>`
    : ''
}
${
  ringRows.length
    ? `<h3>Vring contents at each kick and call (${ringRows.length}${ringRows.length === MAX_RING_ROWS ? ', first ones' : ''})</h3>
<table class="rings"><thead><tr><th>ms</th><th>vring</th><th>at</th><th>indices</th><th>chains</th></tr></thead><tbody>
${ringRows.join('\n')}
</tbody></table>`
    : ''
}
<h3>Handshake and messages</h3>
<table><thead><tr><th>ms</th><th>dir</th><th>channel</th><th>request</th><th>flags</th><th>size</th><th>fds</th><th>payload</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>
</section>`);
  }
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vhostscope report: ${esc(file)}</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font:12px monospace}td,th{border-bottom:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
td:last-child{word-break:break-all;max-width:60em}tr.reply td{color:#555}tr.warn td{background:#fff3cd}
.findings li.error{color:#a00}.findings li.warning{color:#a60}
.plot{margin:.5em 0 1em}svg text{font:11px sans-serif}
</style></head><body>
<h1>vhostscope report</h1>
<p>${esc(file)}${h ? ` · captured by vhostscope ${esc(h.host.vhostscope)} on ${esc(h.host.hostname)} (${esc(h.host.kernel)}) at ${esc(new Date(h.host.wallClockMs).toISOString())} · clock ${esc(h.host.clock)} · first record at ${secs(h.host.monotonicNs)}` : ''}</p>
${migrations
  .map(
    (m) =>
      `<section class="migration"><h2>Migration: session ${m.source} → ${m.destination ?? '?'}</h2><pre>${esc(
        migrationLines(m, deviceOf(devices, m.source) === 'net')
          .slice(1)
          .join('\n'),
      )}</pre></section>`,
  )
  .join('\n')}
${sessions.join('\n')}
${rulesSection(findings)}
<script>
const DATA = ${json};
const NS = 'http://www.w3.org/2000/svg';
function el(name, attrs, parent, text) { const e = document.createElementNS(NS, name); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; if (parent) parent.appendChild(e); return e; }
const COLORS = { req: '#1f77b4', reply: '#7fb3d5', kick: '#2ca02c', call: '#d62728', err: '#ff7f0e' };
for (const s of DATA) {
  const lanes = [...new Set(s.timeline.map((x) => x.lane))].sort();
  const W = 1000, L = 150, H = 24 * lanes.length + 30;
  const box = document.getElementById('timeline-' + s.id);
  const svg = el('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H }, box);
  const span = Math.max(s.durationMs, 1e-3);
  lanes.forEach((lane, i) => { el('text', { x: 4, y: 24 * i + 16 }, svg, lane); el('line', { x1: L, x2: W - 10, y1: 24 * i + 12, y2: 24 * i + 12, stroke: '#eee' }, svg); });
  for (const x of s.timeline) {
    const cx = L + (x.t / span) * (W - L - 10), cy = 24 * lanes.indexOf(x.lane) + 12;
    const m = el('rect', { x: cx - 1, y: cy - 8, width: 2.5, height: 16, fill: COLORS[x.kind] }, svg);
    el('title', {}, m, x.label + ' @ ' + x.t.toFixed(3) + ' ms');
  }
  el('text', { x: L, y: H - 6 }, svg, '0 ms'); el('text', { x: W - 80, y: H - 6 }, svg, span.toFixed(1) + ' ms');
  box.dataset.rendered = 'true';
  const hb = document.getElementById('hist-' + s.id);
  if (!s.histograms.length) { hb.textContent = 'no kick→call pairs (eventfds passed through, or the peers poll)'; hb.dataset.rendered = 'true'; }
  for (const h of s.histograms) {
    const w = 420, bh = 18, hh = bh * h.buckets.length + 40;
    const g = el('svg', { width: w, height: hh }, hb);
    el('text', { x: 4, y: 14 }, g, 'vring ' + h.vring + (h.p50 !== undefined ? ' · p50 ' + h.p50 + ' µs · p99 ' + h.p99 + ' µs' : ''));
    const max = Math.max(...h.buckets.map((b) => b.count));
    h.buckets.forEach((b, i) => {
      const label = b.toUs >= 1000 ? (b.fromUs / 1000) + '-' + (b.toUs / 1000) + ' ms' : b.fromUs + '-' + b.toUs + ' µs';
      el('text', { x: 4, y: 36 + i * bh }, g, label);
      el('rect', { x: 130, y: 24 + i * bh, width: Math.max(2, (b.count / max) * (w - 190)), height: bh - 4, fill: '#d62728' }, g);
      el('text', { x: 136 + (b.count / max) * (w - 190), y: 36 + i * bh }, g, String(b.count));
    });
    hb.dataset.rendered = 'true';
  }
}
// the handshake as a sequence diagram: frontend, vhostscope, backend; each message crosses the
// proxy unless the proxy injected, absorbed, dropped or answered it
for (const s of DATA) {
  const box = document.getElementById('seq-' + s.id);
  const W = 1000, X = { F: 120, P: 500, B: 880 }, row = 18, H = 50 + row * s.sequence.length;
  const svg = el('svg', { width: W, height: H, class: 'seq-chart', 'data-messages': s.sequence.length }, box);
  for (const [k, name] of [['F', 'frontend'], ['P', 'vhostscope'], ['B', 'backend']]) {
    el('text', { x: X[k] - 30, y: 14 }, svg, name);
    el('line', { x1: X[k], x2: X[k], y1: 22, y2: H - 4, stroke: '#bbb' }, svg);
  }
  const defs = el('defs', {}, svg);
  const mk = el('marker', { id: 'arr' + s.id, markerWidth: 8, markerHeight: 8, refX: 7, refY: 3, orient: 'auto' }, defs);
  el('path', { d: 'M0,0 L7,3 L0,6 z', fill: '#555' }, mk);
  s.sequence.forEach((m, i) => {
    const y = 36 + i * row;
    const from = X[m.from], to = m.from === 'F' ? X.B : X.F;
    const color = m.reply ? '#7fb3d5' : m.channel === 'main' ? '#1f77b4' : '#9467bd';
    const arrow = (x1, x2, dash) => el('line', { x1, x2, y1: y, y2: y, stroke: color, 'marker-end': 'url(#arr' + s.id + ')', class: 'seq-arrow', ...(dash ? { 'stroke-dasharray': '3 2' } : {}) }, svg);
    if (m.proxy === 'injected') arrow(X.P, to, true);
    else if (m.proxy === 'absorbed' || m.proxy === 'dropped' || m.proxy === 'answered') arrow(from, X.P, true);
    else { arrow(from, X.P, false); arrow(X.P, to, false); }
    const t = el('text', { x: Math.min(from, to) + 8, y: y - 3, class: 'seq-label' }, svg, m.label + (m.proxy ? ' [' + m.proxy + ']' : ''));
    el('title', {}, t, m.t.toFixed(3) + ' ms · ' + m.channel);
  });
  box.dataset.rendered = 'true';
}
// the timeline zooms with the wheel and pans by dragging (its viewBox; the labels stay)
for (const box of document.querySelectorAll('.plot.timeline svg')) {
  const full = box.getAttribute('viewBox').split(' ').map(Number);
  let vb = [...full], drag;
  const set = () => box.setAttribute('viewBox', vb.join(' '));
  box.addEventListener('wheel', (ev) => { ev.preventDefault(); const r = box.getBoundingClientRect(); const fx = (ev.clientX - r.left) / r.width; const nw = Math.min(full[2], Math.max(20, vb[2] * (ev.deltaY < 0 ? 0.8 : 1.25))); vb[0] = Math.max(0, Math.min(full[2] - nw, vb[0] + (vb[2] - nw) * fx)); vb[2] = nw; set(); }, { passive: false });
  box.addEventListener('mousedown', (ev) => { drag = { x: ev.clientX, x0: vb[0] }; });
  window.addEventListener('mouseup', () => { drag = undefined; });
  box.addEventListener('mousemove', (ev) => { if (!drag) return; const r = box.getBoundingClientRect(); vb[0] = Math.max(0, Math.min(full[2] - vb[2], drag.x0 - ((ev.clientX - drag.x) / r.width) * vb[2])); set(); });
  box.addEventListener('dblclick', () => { vb = [...full]; set(); });
}
// per operation: latency over time (log scale, p50 and p99 marked), its histogram, and the request rate
for (const s of DATA) {
  const box = document.getElementById('req-' + s.id);
  if (!box) continue;
  const W = 1000, H = 170, L = 70, R = 300, T = 20, B = 24;
  const span = Math.max(s.durationMs, 1e-3);
  for (const o of s.requests) {
    const svg = el('svg', { width: W, height: H, class: 'req-chart', 'data-op': o.op, 'data-vring': o.vring, 'data-count': o.count, 'data-points': o.points.length, 'data-max-us': o.max, 'data-p99-us': o.p99 }, box);
    const lo = Math.max(0.1, Math.min(...o.points.map((p) => p[1]), o.p50) / 1.5), hi = Math.max(o.max, lo * 10) * 1.2;
    const y = (us) => T + (H - T - B) * (1 - (Math.log10(Math.max(us, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)));
    const x = (ms) => L + (ms / span) * (W - L - R);
    const fmt = (us) => us >= 1e6 ? (us / 1e6).toPrecision(3) + ' s' : us >= 1e3 ? (us / 1e3).toPrecision(3) + ' ms' : us.toPrecision(3) + ' µs';
    el('text', { x: 4, y: 14 }, svg, 'vring ' + o.vring + ' ' + o.op + ' · n ' + o.count + ' · p50 ' + fmt(o.p50) + ' · p99 ' + fmt(o.p99) + ' · max ' + fmt(o.max) + ' (latency over the session, log scale; histogram at the right; grey: completions per slice)');
    el('line', { x1: L, x2: L, y1: T, y2: H - B, stroke: '#999' }, svg);
    el('text', { x: 4, y: y(hi) + 10, class: 'y-max' }, svg, fmt(hi));
    el('text', { x: 4, y: y(lo), class: 'y-min' }, svg, fmt(lo));
    el('text', { x: L, y: H - 6 }, svg, '0 ms');
    el('text', { x: W - R - 70, y: H - 6, class: 'x-max' }, svg, span.toFixed(1) + ' ms');
    for (const [name, v, color] of [['p50', o.p50, '#2ca02c'], ['p99', o.p99, '#d62728']]) {
      el('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: color, 'stroke-dasharray': '4 3', class: 'pct-' + name }, svg);
      el('text', { x: W - R + 4, y: y(v) + 4, fill: color }, svg, name + ' ' + fmt(v));
    }
    for (const [t, us] of o.points) {
      const c = el('circle', { cx: x(t), cy: y(us), r: 2, fill: '#1f77b4', 'fill-opacity': 0.6, class: 'req' }, svg);
      el('title', {}, c, fmt(us) + ' done at ' + t.toFixed(3) + ' ms');
    }
    // histogram: log-spaced bins along the same y axis, bars to the right
    const bins = 24, counts = new Array(bins).fill(0);
    for (const [, us] of o.points) counts[Math.min(bins - 1, Math.max(0, Math.floor(((Math.log10(Math.max(us, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * bins)))]++;
    const cmax = Math.max(1, ...counts), bh = (H - T - B) / bins, hx = W - R + 90;
    counts.forEach((c, i) => { if (c) el('rect', { x: hx, y: H - B - (i + 1) * bh, width: Math.max(1, (c / cmax) * (R - 110)), height: Math.max(1, bh - 1), fill: '#7fb3d5', class: 'hist-bar', 'data-count': c }, svg); });
    // rate: completions per second in 50 slices of the session
    const slices = 50, per = new Array(slices).fill(0);
    for (const [t] of o.points) per[Math.min(slices - 1, Math.floor((t / span) * slices))]++;
    const pmax = Math.max(1, ...per);
    per.forEach((c, i) => { if (c) el('rect', { x: L + (i / slices) * (W - L - R), y: H - B - 2 - (c / pmax) * 14, width: (W - L - R) / slices - 1, height: (c / pmax) * 14, fill: '#ccc', class: 'rate-bar' }, svg); });
  }
  box.dataset.rendered = 'true';
}
document.body.dataset.plots = String(document.querySelectorAll('[data-rendered="true"]').length);
</script>
</body></html>
`;
}

/** What each rule that fired means, why it matters and how to fix it (`check --explain`); the findings link here. */
function rulesSection(findings: CheckFinding[]): string {
  const rules = [...new Map(findings.map((f) => [f.rule.id, f.rule])).values()].sort((a, b) => a.id.localeCompare(b.id));
  if (!rules.length) return '';
  return `<section class="rules"><h2>What the findings mean</h2><dl>${rules
    .map(
      (r) =>
        `<dt id="rule-${escv(r.id)}"><b>${escv(r.id)} ${escv(r.name)}</b> (${escv(r.severity)})</dt><dd>${esc(r.explain)}<br>fix: ${esc(r.fix)}<br><i>${esc(r.section)}</i></dd>`,
    )
    .join('')}</dl></section>`;
}
