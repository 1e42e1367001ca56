/**
 * The client machine process: `node dist/client/main.js`, driven by the harness over its
 * control channel (JSON lines on stdin/stdout, replica/runtime-control.ts). It multiplexes
 * many logical clients (client/core.ts) over one connection to every replica.
 *
 * Lifecycle: configure -> connect -> start -> progress* -> stop -> metrics, ledger (for a
 * client: the batches it accepted, for the safety check) -> shutdown. Closing stdin ends the
 * process at any point.
 */
import { getProtocol } from '../replica/protocols.js';
import { type ControlRequest, reportFatalAndExit, serveControl } from '../replica/runtime-control.js';
import type { WireMessage } from '../replica/types.js';
import { createKeyGenerator, KEY_GENERATOR_KINDS, type KeyGeneratorKind } from './generators.js';
import { ClientRuntime } from './runtime.js';

let runtime: ClientRuntime<WireMessage> | undefined;

function need(): ClientRuntime<WireMessage> {
  if (!runtime) throw new Error('not configured');
  return runtime;
}

async function handle(req: ControlRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'configure': {
      if (runtime) throw new Error('already configured');
      const c = req.config;
      if (c.role !== 'client') throw new Error(`a client process cannot take role ${c.role}`);
      if (!KEY_GENERATOR_KINDS.includes(c.generator as KeyGeneratorKind)) throw new Error(`unknown generator ${c.generator}`);
      const keys = createKeyGenerator(c.generator as KeyGeneratorKind, c.records, c.seed);
      runtime = new ClientRuntime(getProtocol(c.protocol), c, keys);
      return { pid: process.pid };
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
      return need().acceptedReport();
    case 'shutdown':
      await runtime?.close();
      setTimeout(() => process.exit(0), 2000).unref();
      return null;
  }
}

process.on('uncaughtException', (err) => reportFatalAndExit(`client: ${err.stack ?? err.message}`, 70));
process.on('unhandledRejection', (err) => reportFatalAndExit(`client: ${String(err)}`, 70));
// Ctrl-C in a terminal reaches the whole process group; the harness handles it and stops this
// process through its control channel, so the run ends in order rather than by a race.
process.on('SIGINT', () => undefined);
serveControl(handle, () => process.exit(0));
