/**
 * The metric families and their labels, fed with events (the Prometheus end-to-end test,
 * test/e2e/metrics.test.ts, runs them against real peers and a real server).
 */
import { describe, expect, it } from 'vitest';
import { DaemonMetrics, createRegistry } from '../../src/control/metrics';
import type { ProxyEvent } from '../../src/events/events';
import type { RelayStats } from '../../src/native';
import { sessionEnd, sessionStart } from '../sessions';

const start = (session: number): ProxyEvent => sessionStart(session);
const end = (session: number, reason?: string, by?: 'frontend' | 'proxy'): ProxyEvent => sessionEnd(session, reason, by);
const note = (session: number, vring: number, kind: 'kick' | 'call', tsNs: number): ProxyEvent => ({
  type: 'notification',
  ts: BigInt(tsNs),
  session,
  vring,
  kind,
  count: 1,
});

/** `name{labels} value` lines of one family, labels in Prometheus's text order */
async function lines(text: Promise<string>, name: string): Promise<string[]> {
  return (await text).split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe('daemon metrics', () => {
  it('names sessions by recycled slots and removes their series when they end', async () => {
    const registry = createRegistry();
    const m = new DaemonMetrics(registry, '/run/vm1.sock');
    for (let id = 1; id <= 100; id++) {
      m.onEvent(start(id));
      m.onEvent(note(id, 0, 'kick', 0));
      m.onEvent(note(id, 0, 'call', 30_000));
      m.onEvent(end(id));
    }
    m.onEvent(start(101));
    m.onEvent(start(102));
    m.onEvent(note(102, 1, 'kick', 0));
    m.onEvent(note(102, 1, 'kick', 10));
    m.onEvent(note(102, 1, 'call', 2_000_000));
    m.onEvent(note(102, 500, 'kick', 0)); // an index a peer chose: one shared label
    const text = registry.metrics();
    expect(await lines(text, 'vhostscope_notifications_total')).toEqual([
      'vhostscope_notifications_total{listen="/run/vm1.sock",slot="2",vring="1",kind="kick"} 2',
      'vhostscope_notifications_total{listen="/run/vm1.sock",slot="2",vring="1",kind="call"} 1',
      'vhostscope_notifications_total{listen="/run/vm1.sock",slot="2",vring="other",kind="kick"} 1',
    ]);
    // kick→call from the first kick after the last call: 2 ms, in the 2.5 ms bucket, not the 1 ms one
    const latency = await lines(text, 'vhostscope_kick_to_call_seconds_bucket');
    expect(latency).toContain('vhostscope_kick_to_call_seconds_bucket{le="0.001",listen="/run/vm1.sock",slot="2",vring="1"} 0');
    expect(latency).toContain('vhostscope_kick_to_call_seconds_bucket{le="0.0025",listen="/run/vm1.sock",slot="2",vring="1"} 1');
    expect(await lines(text, 'vhostscope_sessions_started_total')).toEqual(['vhostscope_sessions_started_total{listen="/run/vm1.sock"} 102']);
    expect(await lines(text, 'vhostscope_sessions_active')).toEqual(['vhostscope_sessions_active{listen="/run/vm1.sock"} 2']);
  });

  it('counts messages by request (unknown codes as one value), findings and faults', async () => {
    const registry = createRegistry();
    const m = new DaemonMetrics(registry, '/l');
    m.onEvent(start(1));
    const msg = (name: string, known: boolean): ProxyEvent =>
      ({
        type: 'message',
        ts: 0n,
        session: 1,
        channel: 'main',
        sender: 'frontend',
        dir: 'F>B',
        raw: Buffer.alloc(12),
        decoded: { name, known } as never,
        fds: [],
        findings: known ? [] : [{ severity: 'warning', rule: 'unknown-request', message: 'x' }],
      }) as ProxyEvent;
    m.onEvent(msg('SET_OWNER', true));
    m.onEvent(msg('REQUEST_77', false));
    m.onEvent(msg('REQUEST_78', false));
    m.onEvent({ type: 'fault', ts: 0n, session: 1, rule: 'r1', text: 'drop SET_VRING_KICK', action: 'drop', detail: '' });
    m.onFinding('VU011', 'error');
    m.onEvent(end(1, 'bad input from the backend: x', 'proxy'));
    const text = registry.metrics();
    expect(await lines(text, 'vhostscope_messages_total')).toEqual([
      'vhostscope_messages_total{listen="/l",channel="main",direction="F>B",request="SET_OWNER"} 1',
      'vhostscope_messages_total{listen="/l",channel="main",direction="F>B",request="unknown"} 2',
    ]);
    expect(await lines(text, 'vhostscope_findings_total')).toEqual([
      'vhostscope_findings_total{listen="/l",rule="unknown-request",severity="warning"} 2',
      'vhostscope_findings_total{listen="/l",rule="VU011",severity="error"} 1',
    ]);
    expect(await lines(text, 'vhostscope_fault_applications_total')).toEqual(['vhostscope_fault_applications_total{listen="/l",rule="r1",action="drop"} 1']);
    expect(await lines(text, 'vhostscope_sessions_ended_total')).toEqual(['vhostscope_sessions_ended_total{listen="/l",by="proxy",error="true"} 1']);
  });

  it('reads the relay, recording and back-pressure figures of every daemon when scraped', async () => {
    const registry = createRegistry(() => 7);
    const buckets = new Array(32).fill(0);
    buckets[9] = 5; // [512, 1024) ns
    buckets[12] = 1; // [4096, 8192) ns
    const relay: RelayStats = {
      threadCpuNs: 2e9,
      notifications: 6,
      droppedEvents: 0,
      pairs: 2,
      niceApplied: false,
      droppedSnapshots: 0,
      observerRealtime: false,
      transitBuckets: buckets,
      transitSumNs: 8000,
    };
    new DaemonMetrics(registry, '/a', {
      relay: () => relay,
      recording: () => ({ bytes: 4096, droppedNotifications: 3, droppedRings: 0, queuedBytes: 512 }),
      pausedChannels: () => 1,
    });
    new DaemonMetrics(registry, '/b', { relay: () => undefined, pausedChannels: () => 0 });
    const text = registry.metrics();
    expect(await lines(text, 'vhostscope_relay_notifications_total')).toEqual(['vhostscope_relay_notifications_total{listen="/a"} 6']);
    expect(await lines(text, 'vhostscope_relay_cpu_seconds_total')).toEqual(['vhostscope_relay_cpu_seconds_total{listen="/a"} 2']);
    const transit = await lines(text, 'vhostscope_relay_transit_seconds_bucket');
    expect(transit).toContain('vhostscope_relay_transit_seconds_bucket{listen="/a",le="5.12e-7"} 0');
    expect(transit).toContain('vhostscope_relay_transit_seconds_bucket{listen="/a",le="0.000001024"} 5');
    expect(transit).toContain('vhostscope_relay_transit_seconds_bucket{listen="/a",le="0.000008192"} 6');
    expect(transit.at(-1)).toBe('vhostscope_relay_transit_seconds_bucket{listen="/a",le="+Inf"} 6');
    expect(await lines(text, 'vhostscope_relay_transit_seconds_count')).toEqual(['vhostscope_relay_transit_seconds_count{listen="/a"} 6']);
    expect(await lines(text, 'vhostscope_recording_dropped_notifications_total')).toEqual(['vhostscope_recording_dropped_notifications_total{listen="/a"} 3']);
    expect(await lines(text, 'vhostscope_recording_queued_bytes')).toEqual(['vhostscope_recording_queued_bytes{listen="/a"} 512']);
    expect(await lines(text, 'vhostscope_backpressure_paused_channels')).toEqual([
      'vhostscope_backpressure_paused_channels{listen="/a"} 1',
      'vhostscope_backpressure_paused_channels{listen="/b"} 0',
    ]);
    expect(await lines(text, 'process_open_fds')).toHaveLength(1);
    expect(await lines(text, 'vhostscope_log_dropped_lines_total')).toEqual(['vhostscope_log_dropped_lines_total 7']);
    // glibc's heap, read at scrape time: something is in use in any process that got this far
    const heap = await lines(text, 'vhostscope_malloc_bytes');
    expect(heap.map((l) => l.split(' ')[0])).toEqual([
      'vhostscope_malloc_bytes{state="in_use"}',
      'vhostscope_malloc_bytes{state="free"}',
      'vhostscope_malloc_bytes{state="mmapped"}',
    ]);
    expect(Number(heap[0].split(' ')[1])).toBeGreaterThan(0);
  });
});
