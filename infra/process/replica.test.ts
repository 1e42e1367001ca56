/**
 * The replica and client runtimes in one process over real loopback TCP, driven by the
 * simulator's toy protocol (infra/sim/toy-protocol.ts) so these tests depend on no protocol
 * core under development: wiring of frames, codecs, timers, window accounting and ledgers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ClientRuntime } from './client.js';
import { createKeyGenerator } from '../../client/generators.js';
import { toy, type ToyMessage } from '../../test/fakes/toy-protocol.js';
import type { FaultSpec } from '../../replica/byzantine.js';
import type { ProtocolModule } from '../../replica/protocol.js';
import type { ClientProcessConfig, PeerAddress, ReplicaProcessConfig } from './control.js';
import { ReplicaRuntime } from './replica.js';
import { clientPeer, type ProtocolName } from '../../replica/types.js';
import * as hdr from 'hdr-histogram-js';

const module = toy as ProtocolModule<ToyMessage>;
const common = {
  protocol: 'toy' as ProtocolName,
  clientMachines: 1,
  keySeed: 'runtime-test',
  records: 1000,
  valueBytes: 16,
};

const replicas: ReplicaRuntime<ToyMessage>[] = [];
const clients: ClientRuntime<ToyMessage>[] = [];
afterEach(async () => {
  await Promise.all([...replicas.splice(0), ...clients.splice(0)].map((r) => r.close()));
});

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function cluster(n: number, live: readonly number[], warmupMs: number, durationMs: number, faults: Readonly<Record<number, readonly FaultSpec[]>> = {}) {
  const addrs: PeerAddress[] = [];
  for (const id of live) {
    const config: ReplicaProcessConfig = {
      ...common,
      role: 'replica',
      n,
      id,
      listenHost: '127.0.0.1',
      listenPort: 0,
      checkpointIntervalK: 50,
      windowK: 100,
      viewChangeTimeoutMs: 1000,
      ...(faults[id] ? { faults: faults[id] } : {}),
    };
    const r = new ReplicaRuntime(module, config);
    replicas.push(r);
    addrs.push({ peer: id, host: '127.0.0.1', port: await r.listen() });
  }
  const clientConfig: ClientProcessConfig = {
    ...common,
    role: 'client',
    n,
    origin: 0,
    clients: 4,
    clientIdBase: 0,
    batchSize: 10,
    requestTimeoutMs: 2000,
    generator: 'ycsb',
    seed: 1,
  };
  const client = new ClientRuntime(module, clientConfig, createKeyGenerator('ycsb', common.records, 1));
  clients.push(client);
  await Promise.all([
    ...replicas.map((r) => r.connect(addrs, live.filter((p) => p !== r.config.id).concat(clientPeer(0)), 5000)),
    client.connect(addrs, live, 5000),
  ]);
  for (const r of replicas) r.start(warmupMs, durationMs);
  client.start(warmupMs, durationMs);
  return { client };
}

describe('runtime over loopback TCP (toy protocol)', () => {
  it('runs a closed loop, counts only the window, and leaves agreeing ledgers', async () => {
    const { client } = await cluster(4, [0, 1, 2, 3], 300, 700);
    await until(() => client.metrics().windowClosed, 'window end');
    client.stop();
    const m = client.metrics();
    expect(m.acceptedTxnsInWindow).toBeGreaterThan(0);
    expect(m.acceptedTxnsInWindow).toBeLessThan(m.acceptedBatchesTotal * 10 + 1);
    // The per-second series starts with the warm-up's whole seconds (none of a 300 ms one) and
    // stops at the window's end: its buckets from the window's start hold exactly the window's acceptances.
    expect(m.firstBucketSec).toBe(0);
    expect(m.txnsPerSecond.length).toBe(1);
    expect(m.txnsPerSecond.slice(-m.firstBucketSec).reduce((a, b) => a + b, 0)).toBe(m.acceptedTxnsInWindow);
    expect(m.txnsPerSecond.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(m.acceptedBatchesTotal * 10);
    const h = hdr.decodeFromCompressedBase64(m.latencyHistogram);
    expect(h.totalCount).toBe(m.acceptedTxnsInWindow);
    expect(m.latencyMsMin).not.toBeNull();
    expect(m.latencyMsMin!).toBeGreaterThanOrEqual(0);

    // Replicas converge once the client stops; their ledgers then agree block by block.
    await until(() => new Set(replicas.map((r) => r.progress().headHash)).size === 1, 'convergence');
    const ledgers = replicas.map((r) => r.ledger());
    expect(ledgers[0]!.height).toBeGreaterThan(0);
    for (const l of ledgers) expect(l.hashes).toBe(ledgers[0]!.hashes);

    // Every accepted batch sits in the ledger at the position the client was told.
    const acc = client.ledger();
    const digests = Buffer.from(ledgers[0]!.digests, 'base64');
    const accDigests = Buffer.from(acc.digests, 'base64');
    acc.k.forEach((k, i) => {
      expect(digests.subarray(k * 32, k * 32 + 32).equals(accDigests.subarray(i * 32, i * 32 + 32)), `k=${k}`).toBe(true);
    });

    // Each process closes its own window on its own timer: the client's closing first does not
    // mean a replica's timer has fired yet (a CI run under load read one still open).
    await until(() => replicas[1]!.metrics().window !== undefined, "replica 1's window end");
    const rm = replicas[1]!.metrics();
    expect(rm.window).toBeDefined();
    expect(rm.window!.messagesToClients).toBeGreaterThan(0);
    expect(rm.window!.elapsedMs).toBeGreaterThan(600);
    expect(rm.transport.badMac).toBe(0);
  });

  it('opens every window at the harness command, before the cap, and extends them together (issue 11 item 2)', async () => {
    const { client } = await cluster(4, [0, 1, 2, 3], 60_000, 400);
    await until(() => client.progress().txnsPerSecondSinceStart.length >= 1, 'one whole second');
    expect(client.progress().txnsPerSecondSinceStart[0]).toBeGreaterThan(0);
    expect(client.metrics().windowOpened).toBe(false);
    const opened = [...replicas, client].map((p) => p.openWindow());
    expect(opened.every((o) => o.byCommand)).toBe(true);
    // Opened within a few ms of each other (one process, one clock here).
    const starts = opened.map((o) => o.startEpochMs);
    expect(Math.max(...starts) - Math.min(...starts)).toBeLessThan(50);
    const extended = [...replicas, client].map((p) => p.extendWindow(800));
    expect(extended.every((e) => e.extended)).toBe(true);
    await until(() => client.metrics().windowClosed, 'window end');
    client.stop();
    const m = client.metrics();
    expect(m.windowOpenedBy).toBe('command');
    expect(m.warmupMs).toBeGreaterThanOrEqual(1000);
    expect(m.warmupMs).toBeLessThan(60_000);
    expect(m.windowMs).toBeCloseTo(800, 6);
    // The series is cut at the window's actual start: its window buckets hold exactly the window's acceptances.
    expect(m.firstBucketSec).toBe(-Math.floor(m.warmupMs / 1000 + 0.05));
    expect(m.txnsPerSecond.slice(-m.firstBucketSec).reduce((a, b) => a + b, 0)).toBe(m.acceptedTxnsInWindow);
    expect(m.acceptedTxnsInWindow).toBeGreaterThan(0);
    expect(client.progress().windowTxns).toBe(m.acceptedTxnsInWindow);
    await until(() => replicas.every((r) => r.metrics().window !== undefined), "the replicas' windows end");
    for (const r of replicas) expect(r.metrics().window!.elapsedMs).toBeGreaterThan(700);
    // A window that has closed refuses to be extended.
    expect(client.extendWindow(5000).extended).toBe(false);
  });

  it('keeps running with a backup that never starts: its frames are unroutable, not buffered', async () => {
    const { client } = await cluster(4, [0, 1, 2], 100, 400);
    await until(() => client.metrics().windowClosed, 'window end');
    client.stop();
    expect(client.metrics().acceptedTxnsInWindow).toBeGreaterThan(0);
    expect(replicas[0]!.metrics().transport.unroutable).toBeGreaterThan(0);
  });

  it('wraps a replica in its faults at start: stopAfter leaves a prefix, crashAt counts from start', async () => {
    // Backup 3 stops after 5 batches; backup 2 crashes 300 ms after its start. Counted from the
    // process's start instead (this test process is older than 300 ms) it would execute nothing.
    const { client } = await cluster(4, [0, 1, 2, 3], 100, 800, { 3: [{ kind: 'stopAfter', batches: 5 }], 2: [{ kind: 'crashAt', atMs: 300 }] });
    await until(() => client.metrics().windowClosed, 'window end');
    client.stop();
    expect(client.metrics().acceptedTxnsInWindow).toBeGreaterThan(0);
    await until(() => replicas[0]!.progress().executedK === replicas[1]!.progress().executedK, 'convergence of 0 and 1');
    const height = (id: number): number => replicas[id]!.ledger().height;
    expect(height(3)).toBe(5);
    expect(height(0)).toBeGreaterThan(5);
    expect(height(2)).toBeGreaterThan(0);
    expect(height(2)).toBeLessThan(height(0));
    expect(replicas[3]!.metrics().faults).toEqual(['stopAfter:5']);
    expect(replicas[2]!.metrics().faults).toEqual(['crashAt:300']);
    expect(replicas[0]!.metrics().faults).toEqual([]);
    // The stopped replica's ledger is a prefix of the others'.
    const prefix = Buffer.from(replicas[3]!.ledger().hashes, 'base64');
    expect(Buffer.from(replicas[0]!.ledger().hashes, 'base64').subarray(0, prefix.length).equals(prefix)).toBe(true);
  });
});
