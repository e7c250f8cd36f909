/** `vhostscope replay FILE --as frontend|backend`: reproduce a recorded session without the other peer. */
import type { Command } from 'commander';
import { recordingArg } from './recording-arg';
import * as readline from 'node:readline';
import { deviceOption, numberOpt } from './options';
import { Recorder } from '../recording/recorder';
import { replayAsBackend } from '../replay/backend';
import { replayAsFrontend } from '../replay/frontend';
import { buildScript, loadRecording, RecordingError } from '../replay/script';
import { recordedSplit } from '../replay/chaos';
import type { DeviceType } from '../protocol';
import { reportLines } from '../views/replay';

interface ReplayCli {
  as: 'frontend' | 'backend';
  connect?: string;
  listen?: string;
  session?: number;
  until?: number;
  pace: 'original' | 'fast';
  step?: boolean;
  strict?: boolean;
  timeout: number;
  idleTimeout: number;
  record?: string;
  device: DeviceType;
  /** false with --no-chaos */
  chaos: boolean;
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description('replay a recording: the frontend side against a live backend, or the backend side to a live frontend')
    .argument('<file>', 'a recording made with proxy --record')
    .requiredOption('--as <side>', 'frontend (talk to a live backend) or backend (serve a live frontend)')
    .option('--connect <path>', 'connect to the live peer here')
    .option('--listen <path>', 'listen here for the live peer')
    .addOption(numberOpt('--session <n>', 'which recorded session (default: the first)', { min: 0, integer: true }))
    .addOption(numberOpt('--until <n>', 'as frontend: stop after N requests', { min: 0, integer: true }))
    .option('--pace <pace>', 'as frontend: original (recorded gaps) or fast', 'fast')
    .option('--step', 'as frontend: wait for Enter before each request')
    .option('--strict', 'as backend: stop at the first divergence')
    .addOption(numberOpt('--timeout <ms>', 'wait this long for a peer or a reply', { min: 0 }, 5000))
    .addOption(numberOpt('--idle-timeout <ms>', 'as backend: end when the frontend is silent this long', { min: 0 }, 30000))
    .option('--record <path>', 'record the new run (default: FILE with .replay.vhsrec)')
    .option('--no-chaos', "send messages whole where the recording's chaos rule split them (a split is repeated by default)")
    .addOption(deviceOption('generic'))
    .action(async (file: string, o: ReplayCli) => {
      try {
        const { records, torn } = loadRecording(recordingArg(file));
        if (torn) process.stderr.write(`warning: ${torn}\n`);
        const script = buildScript(records, o.session);
        const split = o.chaos ? recordedSplit(records, script.session) : undefined;
        if (split) process.stderr.write(`replay: repeating the recording's ${split.text}: messages are cut where the proxy cut them (--no-chaos: whole)\n`);
        const recorder = new Recorder(o.record ?? file.replace(/(\.vhsrec)?$/, '.replay.vhsrec'));
        const emit = recorder.onEvent.bind(recorder);
        const rl = o.step ? readline.createInterface({ input: process.stdin, output: process.stderr }) : undefined;
        const common = {
          ...(o.connect ? { connect: o.connect } : {}),
          ...(o.listen ? { listen: o.listen } : {}),
          timeoutMs: o.timeout,
          device: o.device,
          emit,
          log: (l: string) => process.stderr.write(l + '\n'),
          ...(split ? { split } : {}),
        };
        const r =
          o.as === 'frontend'
            ? await replayAsFrontend(script, {
                ...common,
                pace: o.pace,
                ...(o.until !== undefined ? { until: o.until } : {}),
                ...(rl ? { beforeStep: (s) => new Promise<void>((res) => rl.question(`#${s.index} ${s.request.decoded.name}? [Enter] `, () => res())) } : {}),
              })
            : o.as === 'backend'
              ? await replayAsBackend(script, { ...common, strict: Boolean(o.strict), idleTimeoutMs: o.idleTimeout })
              : (() => {
                  throw new RecordingError(`--as must be frontend or backend, not ${o.as}`);
                })();
        rl?.close();
        await recorder.close();
        process.stdout.write(reportLines(r).join('\n') + '\n');
        process.exitCode = r.divergences.length ? 1 : 0;
      } catch (err) {
        process.stderr.write(`vhostscope replay: ${(err as Error).message}\n`);
        process.exitCode = 2;
      }
    });
}
