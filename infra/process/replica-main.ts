/**
 * The replica process: `node dist/infra/process/replica-main.js`, driven by the harness over its control
 * channel (JSON lines on stdin/stdout, infra/process/control.ts). It runs one protocol core
 * over TCP (infra/process/replica.ts).
 *
 * Lifecycle: configure (listen; the bound port is the answer) -> connect -> start -> progress*
 * -> stop -> metrics, ledger -> shutdown. Closing stdin ends the process at any point.
 */
import { getProtocol } from '../../replica/protocols.js';
import { serveProcess } from './control.js';
import { ReplicaRuntime } from './replica.js';

serveProcess('replica', async (config) => {
  if (config.role !== 'replica') throw new Error(`a replica process cannot take role ${config.role}`);
  const runtime = new ReplicaRuntime(getProtocol(config.protocol), config);
  try {
    const port = await runtime.listen();
    return { runtime, answer: { port, pid: process.pid } };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new Error(`port ${config.listenPort} on ${config.listenHost} is in use`);
    throw err;
  }
});
