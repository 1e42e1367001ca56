/**
 * The replica process: `node dist/replica/main.js`, driven by the harness over its control
 * channel (JSON lines on stdin/stdout, replica/runtime-control.ts). It runs one protocol core
 * over TCP (replica/runtime.ts).
 *
 * Lifecycle: configure (listen; the bound port is the answer) -> connect -> start -> progress*
 * -> stop -> metrics, ledger -> shutdown. Closing stdin ends the process at any point.
 */
import { getProtocol } from './protocols.js';
import { type ControlRequest, reportFatalAndExit, serveControl } from './runtime-control.js';
import { ReplicaRuntime } from './runtime.js';
import type { WireMessage } from './types.js';

let runtime: ReplicaRuntime<WireMessage> | undefined;

function need(): ReplicaRuntime<WireMessage> {
  if (!runtime) throw new Error('not configured');
  return runtime;
}

async function handle(req: ControlRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'configure': {
      if (runtime) throw new Error('already configured');
      if (req.config.role !== 'replica') throw new Error(`a replica process cannot take role ${req.config.role}`);
      runtime = new ReplicaRuntime(getProtocol(req.config.protocol), req.config);
      try {
        const port = await runtime.listen();
        return { port, pid: process.pid };
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EADDRINUSE') throw new Error(`port ${req.config.listenPort} on ${req.config.listenHost} is in use`);
        throw err;
      }
    }
    case 'connect':
      return { connected: await need().connect(req.peers, req.expect, req.timeoutMs) };
    case 'start':
      need().start(req.warmupMs, req.durationMs);
      return null;
    case 'progress':
      return need().progress();
    case 'stop':
      need().stop();
      return need().progress();
    case 'metrics':
      return need().metrics();
    case 'ledger':
      return need().ledgerReport();
    case 'shutdown':
      await runtime?.close();
      // The harness closes stdin once it has the answer; exit anyway if it does not.
      setTimeout(() => process.exit(0), 2000).unref();
      return null;
  }
}

process.on('uncaughtException', (err) => reportFatalAndExit(`replica: ${err.stack ?? err.message}`, 70));
process.on('unhandledRejection', (err) => reportFatalAndExit(`replica: ${String(err)}`, 70));
// Ctrl-C in a terminal reaches the whole process group; the harness handles it and stops this
// process through its control channel, so the run ends in order rather than by a race.
process.on('SIGINT', () => undefined);
serveControl(handle, () => process.exit(0));
