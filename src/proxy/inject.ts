/**
 * `--inject CHANNEL:REQUEST@MS`: the proxy sends a request of its own to the frontend over an
 * interposed channel, MS milliseconds after that channel appeared in a session (e.g.
 * `backend:CONFIG_CHANGE_MSG@2000`). The frontend's reply is absorbed by the proxy.
 */
import { requestByName, Request } from '../protocol';
import type { ProxyEvent } from '../events/events';
import type { ProxySession } from './session';
import type { SubChannelKind } from './sub-channels';

export interface InjectSpec {
  channel: SubChannelKind;
  request: number;
  name: string;
  delayMs: number;
}

export function parseInjectSpec(spec: string): InjectSpec {
  const m = spec.match(/^(backend|gpu):([A-Za-z_0-9]+)(?:@(\d+))?$/);
  if (!m) throw new Error(`--inject ${spec}: expected CHANNEL:REQUEST[@MS], e.g. backend:CONFIG_CHANGE_MSG@2000`);
  const channel = m[1] as SubChannelKind;
  const r = requestByName(channel, m[2]);
  if (!r) throw new Error(`--inject ${spec}: ${m[2]} is not a request of the ${channel} channel`);
  if (r.request !== 'none' || r.requestFds[0] > 0)
    throw new Error(`--inject ${spec}: only requests without payload or fds can be injected (${r.name} has them)`);
  return { channel, request: r.code, name: r.name, delayMs: Number(m[3] ?? 0) };
}

const CHANNEL_REQUEST: Record<SubChannelKind, number> = { backend: Request.SET_BACKEND_REQ_FD, gpu: Request.GPU_SET_SOCKET };

/** Watches the events for interposed channels and schedules the injections per session. */
export class Injector {
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly specs: InjectSpec[],
    private readonly sessionById: (id: number) => ProxySession | undefined,
    private readonly onResult: (spec: InjectSpec, session: number, sent: boolean) => void,
  ) {}

  onEvent(e: ProxyEvent): void {
    if (e.type !== 'message' || e.channel !== 'main' || !e.interposed || e.decoded.reply) return;
    for (const spec of this.specs) {
      if (e.decoded.request !== CHANNEL_REQUEST[spec.channel]) continue;
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.onResult(spec, e.session, this.sessionById(e.session)?.inject(spec.channel, spec.request) ?? false);
      }, spec.delayMs);
      t.unref();
      this.timers.add(t);
    }
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
