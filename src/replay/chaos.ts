/**
 * Replaying a chaos recording repeats its chaos. Delays and holds are in the recording already
 * (messages are kept in the order and at the times the far side got them: `--pace original`);
 * a split is not, since a recording holds whole messages. So the replay finds the session's
 * chaos rule in its fault events and, when it splits, cuts the messages it sends exactly as the
 * proxy cut them: the same seed, the same stream, the same place in it, the same draw.
 */
import { chaosPerturbation, CHAOS_DEFAULT_MAX_MS, parseFaultSpec } from '../faults';
import { parseHeader, type Side } from '../protocol';
import type { FaultEvent, ProxyEvent } from '../events/events';
import { native, type Channel } from '../native';
import { recordingEvents } from '../recording/reader';
import type { RecordingRecord } from '../recording/records';

/** A split chaos rule as the recording names it. */
export interface RecordedSplit {
  seed: number;
  maxMs: number;
  /** the rule as written (chaos seed=N profile=split ...) */
  text: string;
}

/** The split rule that perturbed `session`, if one did. */
export function recordedSplit(records: RecordingRecord[], session: number): RecordedSplit | undefined {
  const faults = recordingEvents(records).filter((e): e is FaultEvent => e.type === 'fault' && e.session === session && e.action === 'chaos');
  for (const f of faults) {
    let rule: ReturnType<typeof parseFaultSpec>[number] | undefined;
    try {
      rule = parseFaultSpec(f.text)[0];
    } catch {
      continue; // a text this build does not read: nothing to repeat
    }
    if (rule?.action === 'chaos' && rule.profile === 'split') return { seed: rule.seed, maxMs: rule.maxMs ?? CHAOS_DEFAULT_MAX_MS, text: f.text };
  }
  return undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sends one side's main-channel messages, cutting those the recorded rule cut. */
export class SplitSender {
  private index = 0;

  constructor(
    private readonly rule: RecordedSplit,
    private readonly sender: Side,
    private readonly session: number,
    private readonly emit: (e: ProxyEvent) => void,
  ) {}

  /** Sends `raw` with `fds` on `channel`; a cut message's rest goes after its delay. */
  async send(channel: Channel, raw: Buffer, fds: number[] = []): Promise<void> {
    const h = parseHeader(raw);
    const p = chaosPerturbation(this.rule.seed, 'split', this.rule.maxMs, {
      channel: 'main',
      sender: this.sender,
      request: h.request,
      reply: this.sender === 'backend',
      index: this.index++,
      size: raw.length,
    });
    if (!p || !('splitAt' in p)) {
      channel.send(raw, fds);
      return;
    }
    channel.send(raw.subarray(0, p.splitAt), fds);
    this.emit({
      type: 'fault',
      ts: native.monotonicNs(),
      session: this.session,
      rule: 'replay',
      text: this.rule.text,
      action: 'chaos',
      detail: `${this.sender === 'frontend' ? 'F>B' : 'B>F'} message ${this.index - 1} split in two writes: ${p.splitAt} of ${raw.length} bytes, the rest ${p.restMs} ms later (repeated from the recording)`,
    });
    await sleep(p.restMs);
    try {
      channel.send(raw.subarray(p.splitAt));
    } catch {
      // the peer left between the two parts (what the cut tests for): the replay sees it close
    }
  }
}
