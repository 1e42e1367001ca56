/**
 * The client machine process: `node dist/infra/process/client-main.js`, driven by the harness over its
 * control channel (JSON lines on stdin/stdout, infra/process/control.ts). It multiplexes
 * many logical clients (client/core.ts) over one connection to every replica.
 *
 * Lifecycle: configure -> connect -> start -> progress* -> stop -> metrics, ledger (for a
 * client: the batches it accepted, for the safety check) -> shutdown. Closing stdin ends the
 * process at any point.
 */
import { getProtocol } from '../../replica/protocols.js';
import { serveProcess } from './control.js';
import { createKeyGenerator, KEY_GENERATOR_KINDS, type KeyGeneratorKind } from '../../client/generators.js';
import { ClientRuntime } from './client.js';

serveProcess('client', async (config) => {
  if (config.role !== 'client') throw new Error(`a client process cannot take role ${config.role}`);
  if (!KEY_GENERATOR_KINDS.includes(config.generator as KeyGeneratorKind)) throw new Error(`unknown generator ${config.generator}`);
  const keys = createKeyGenerator(config.generator as KeyGeneratorKind, config.records, config.seed);
  return { runtime: new ClientRuntime(getProtocol(config.protocol), config, keys), answer: { pid: process.pid } };
});
