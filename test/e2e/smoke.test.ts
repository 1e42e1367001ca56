/**
 * CI smoke (issue 3, item 7): every protocol on 4 local replicas as real processes over TCP,
 * short warm-up and measurement, asserting non-zero throughput, a valid safety check of the
 * real ledgers, and a clean shutdown (no child PID left). Plus one run with a crashed backup,
 * during which a raw socket sends a replica garbage, a frame with a wrong MAC and an
 * authenticated frame that does not decode: each is dropped and counted, and the run stays
 * valid.
 */
import * as net from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { executeRun, type RunResult } from '../../infra/run/execute.js';
import { makeRunSpec } from '../../infra/run/spec.js';
import { encodeFrame, encodeHello } from '../../infra/process/transport.js';
import { replicaMacKey } from '../../replica/keys.js';
import { registeredProtocols } from '../../replica/protocols.js';
import { PROTOCOLS, type ProtocolName } from '../../replica/types.js';
import { alivePids, ensureBuilt } from './helpers.js';

beforeAll(() => ensureBuilt(), 180_000);

const SHORT = { warmupS: 2, durationS: 3, clients: 16, records: 100_000 } as const;

function expectValidRun(r: RunResult): void {
  const detail = `${r.spec.protocol}: ${r.reason ?? ''}\n${r.violations.join('\n')}\n${r.implausible.join('\n')}`;
  expect(r.failed, detail).toBe(false);
  expect(r.violations, detail).toEqual([]);
  expect(r.valid, detail).toBe(true);
  expect(r.throughputTxnPerSec, detail).toBeGreaterThan(0);
  expect(r.latencyMs.p50, detail).toBeGreaterThan(0);
  expect(r.messagesPerSec, detail).toBeGreaterThan(0);
  expect(r.pids.length).toBe(r.spec.replicas - r.spec.crashed + r.spec.clientProcs);
  expect(alivePids(r.pids), 'processes left behind').toEqual([]);
}

describe('end-to-end runs on 4 local replicas', () => {
  it('has all four protocols registered', () => {
    expect(registeredProtocols()).toEqual([...PROTOCOLS]);
  });

  for (const protocol of PROTOCOLS) {
    it.runIf(registeredProtocols().includes(protocol))(`${protocol}: non-zero throughput, safe ledgers, clean shutdown`, async () => {
      const r = await executeRun(makeRunSpec({ protocol: protocol as ProtocolName, ...SHORT }));
      expectValidRun(r);
      // All four replicas took part and agree on one height after convergence.
      expect(Object.keys(r.ledgerHeights!)).toEqual(['0', '1', '2', '3']);
      expect(new Set(Object.values(r.ledgerHeights!)).size).toBe(1);
    });
  }

  it('poe with a crashed backup: the backup never starts, hostile frames are dropped and counted', async () => {
    const spec = makeRunSpec({ protocol: 'poe', crashed: 1, ...SHORT });
    expect(spec.crashedReplicas).toEqual([3]);
    const injected: Promise<void>[] = [];
    const r = await executeRun(spec, {
      onConnected: async (addresses) => {
        const target = addresses.find((a) => a.peer === 1)!;
        const connect = async (): Promise<net.Socket> => {
          const s = net.connect({ host: target.host, port: target.port });
          s.on('error', () => {});
          s.on('data', () => {}); // a peer that reads what it is sent
          await new Promise<void>((res) => s.once('connect', () => res()));
          return s;
        };
        // Garbage instead of a HELLO: counted, connection closed.
        const g = await connect();
        g.write(Buffer.from('\x00\x00\x00\x40this is not a frame of any protocol, only noise on the wire....'));
        injected.push(new Promise((res) => g.once('close', () => res())));
        // Posing as the crashed replica 3 with its real key (this is a MAC test, not an auth test):
        // a frame with a flipped MAC bit, then an authenticated frame that does not decode.
        const key = replicaMacKey(spec.keySeed, 1, 3);
        const s = await connect();
        s.write(encodeFrame(key, encodeHello(3, 1)));
        const forged = encodeFrame(key, Buffer.from([11, 1, 2, 3]));
        forged[4] = forged[4]! ^ 0x80;
        s.write(forged);
        s.write(encodeFrame(key, Buffer.from([0xee, 1, 2, 3, 4, 5])));
        await new Promise((res) => setTimeout(res, 200));
        s.destroy();
        await injected[0];
      },
    });
    expectValidRun(r);
    expect(Object.keys(r.ledgerHeights!)).toEqual(['0', '1', '2']);
    const d = r.metrics!.dropped;
    expect(d.badHello).toBeGreaterThanOrEqual(1);
    expect(d.badMac).toBeGreaterThanOrEqual(1);
    expect(d.decodeErrors).toBeGreaterThanOrEqual(1);
  });
});
