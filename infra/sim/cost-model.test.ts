import { describe, expect, it } from 'vitest';
import { zeroCryptoCounts } from '../../replica/crypto-counter.js';
import { clientPeer } from '../../replica/types.js';
import type { StepWork } from './cost-hook.js';
import { CostModel, type CostModelConfig, CpuPool, frameCpuUs, type OpCosts, stepCpuUs, turnCpuUs } from './cost-model.js';
import { Simulation } from './simulator.js';
import { WorkCounter } from './work-counter.js';
import { fixtureCosts, MACHINE_COSTS_2026_12_04 } from '../../test/model-fixtures.js';

// Distinct powers of two, so any mis-charged term shows in the sum.
const COSTS: OpCosts = fixtureCosts({
  ed25519Sign: { fixedUs: 1, perByteUs: 0.5 },
  ed25519Verify: { fixedUs: 2, perByteUs: 0.25 },
  hmac: { fixedUs: 4, perByteUs: 0.125 },
  sha256: { fixedUs: 8, perByteUs: 0.0625 },
  encode: { fixedUs: 16, perByteUs: 1 / 32 },
  decode: { fixedUs: 32, perByteUs: 1 / 64 },
  executeTxnUs: 64,
  perMessageInUs: 128,
  perFrameOutUs: 256,
  perStepUs: 512,
  perReadUs: 1024,
  perWriteUs: 2048,
});

const ZERO: OpCosts = fixtureCosts();

function work(partial: Partial<StepWork> & { crypto?: Partial<StepWork['crypto']> }): StepWork {
  return {
    decodes: 0,
    decodeBytes: 0,
    frameMacVerifies: 0,
    frameMacVerifyBytes: 0,
    txnsExecuted: 0,
    messagesIn: 0,
    ...partial,
    crypto: { ...zeroCryptoCounts(), ...partial.crypto },
  };
}

const config = (over: Partial<CostModelConfig> = {}): CostModelConfig => ({
  costs: COSTS,
  replica: { cores: 1, speed: 1 },
  client: { cores: 1, speed: 1 },
  replicaNicBitsPerSec: Infinity,
  clientNicBitsPerSec: Infinity,
  wireOverheadBytes: 0,
  ...over,
});

describe('cost model', () => {
  const w = work({
    decodes: 1,
    decodeBytes: 640,
    frameMacVerifies: 1,
    frameMacVerifyBytes: 640,
    messagesIn: 1,
    txnsExecuted: 10,
    crypto: { signs: 2, signBytes: 100, verifies: 3, verifyBytes: 400, macs: 1, macBytes: 80, digests: 2, digestBytes: 160 },
  });
  // By hand: decode 32 + 10; frame MAC check 4 + 80; verifies 3*2 + 100; per message 128 |
  // signs 2*1 + 50; core MAC 4 + 10; digests 2*8 + 10; execution 640. Its turn (a step
  // without turnBegin is its own turn): a wake-up 512 and one read 1024.
  const inputUs = 32 + 10 + 4 + 80 + 6 + 100 + 128;
  const protocolUs = 2 + 50 + 4 + 10 + 16 + 10 + 640;
  const turnUs = 512 + 1024;

  it('charges a step with known counts exactly what its operations cost', () => {
    expect(stepCpuUs(COSTS, w)).toEqual({ inputUs, protocolUs });
    expect(turnCpuUs(COSTS, 3)).toBe(512 + 3 * 1024);
    // A frame: encoding (once), transport MAC, fixed send cost; a broadcast's other copies skip the encoding.
    expect(frameCpuUs(COSTS, { from: 0, to: 1, bytes: 320, encoded: true })).toBe(16 + 10 + 4 + 40 + 256);
    expect(frameCpuUs(COSTS, { from: 0, to: 2, bytes: 320, encoded: false })).toBe(4 + 40 + 256);
  });

  it('charges the transport\u2019s frame MACs at the frame MAC\u2019s cost where a calibration measured it, the cores\u2019 MACs at hmac', () => {
    const costs = { ...COSTS, frameMac: { fixedUs: 0.5, perByteUs: 1 / 128 } };
    // Sending: encoding 16 + 10, frame MAC 0.5 + 2.5, fixed 256.
    expect(frameCpuUs(costs, { from: 0, to: 1, bytes: 320, encoded: true })).toBe(16 + 10 + 0.5 + 2.5 + 256);
    // Receiving: the frame MAC check 0.5 + 5 instead of 4 + 80; the core's own MAC (4 + 10) stays at hmac.
    expect(stepCpuUs(costs, w)).toEqual({ inputUs: inputUs - (4 + 80) + (0.5 + 5), protocolUs });
  });

  it('lets a step\u2019s frames leave when its CPU time has passed, one after another', () => {
    const m = new CostModel(config());
    m.stepDone(0, 10, w);
    const stepMs = (inputUs + protocolUs + turnUs) / 1000;
    // Each frame to a new peer in the turn also pays its socket write (2048).
    const f1 = m.frameSent({ from: 0, to: 1, bytes: 320, encoded: true }, 10);
    expect(f1).toBeCloseTo(10 + stepMs + (16 + 10 + 4 + 40 + 256 + 2048) / 1000, 9);
    const f2 = m.frameSent({ from: 0, to: 2, bytes: 320, encoded: false }, 10);
    expect(f2).toBeCloseTo(f1 + (4 + 40 + 256 + 2048) / 1000, 9);
  });

  it('charges a turn one wake-up, one read per sending connection and one write per peer written to, as the runtime coalesces', () => {
    const one = work({ messagesIn: 1 });
    const costs = { ...ZERO, perStepUs: 1000, perReadUs: 100, perWriteUs: 10, perFrameOutUs: 1 };
    const frames = (m: CostModel): void => {
      for (const to of [1, 1, 2]) m.frameSent({ from: 0, to, bytes: 0, encoded: false }, 0);
    };
    // Three inputs from two connections handled in one turn; each step sends to 1, 1 and 2.
    const turn = new CostModel(config({ costs }));
    turn.turnBegin(0, 0, 2);
    for (let i = 0; i < 3; i++) {
      turn.stepDone(0, 0, one);
      frames(turn);
    }
    expect(turn.ioByNode().get(0)).toEqual({ turns: 1, reads: 2, writes: 2, messagesIn: 3, framesOut: 9 });
    expect(turn.cpuMsByNode().get(0)).toBeCloseTo((1000 + 2 * 100 + 2 * 10 + 9 * 1) / 1000, 9);
    // The same steps as three turns (an idle node woken three times): three wake-ups, reads, and writes per turn.
    const apart = new CostModel(config({ costs }));
    for (let i = 0; i < 3; i++) {
      apart.turnBegin(0, 0, 1);
      apart.stepDone(0, 0, one);
      frames(apart);
    }
    expect(apart.ioByNode().get(0)).toEqual({ turns: 3, reads: 3, writes: 6, messagesIn: 3, framesOut: 9 });
    expect(apart.cpuMsByNode().get(0)).toBeCloseTo((3 * 1000 + 3 * 100 + 6 * 10 + 9 * 1) / 1000, 9);
  });

  it('holds a single-threaded node\u2019s frames until its turn ends, then lets them leave together', () => {
    // infra/process/transport.ts: a turn's frames are queued and written by one flush (a
    // setImmediate) after the turn's last input, not as each step makes them.
    const costs = { ...ZERO, perMessageInUs: 1000, perFrameOutUs: 100 };
    const m = new CostModel(config({ costs }));
    m.turnBegin(0, 10, 2);
    m.stepDone(0, 10, work({ messagesIn: 1 }));
    expect(m.frameSent({ from: 0, to: 1, bytes: 0, encoded: true }, 10)).toBeUndefined();
    m.stepDone(0, 10, work({ messagesIn: 1 }));
    expect(m.frameSent({ from: 0, to: 2, bytes: 0, encoded: true }, 10)).toBeUndefined();
    expect(m.frameSent({ from: 0, to: 1, bytes: 0, encoded: true }, 10)).toBeUndefined();
    // The first step's frame waits for the second step: all three leave when the turn's CPU
    // (2 x 1 ms of input + 3 x 0.1 ms of frames) is done.
    expect(m.turnEnd(0, 10)).toEqual([12.3, 12.3, 12.3].map((x) => expect.closeTo(x, 9)));
    // Nothing is left held: the next turn starts empty.
    expect(m.turnEnd(0, 13)).toEqual([]);
  });

  it('puts a flushed turn\u2019s frames on the NIC one after another from the flush', () => {
    // 8 Mbit/s: 1000 bytes take 1 ms on the wire.
    const m = new CostModel(config({ costs: { ...ZERO, perMessageInUs: 1000 }, replicaNicBitsPerSec: 8e6 }));
    m.turnBegin(0, 0, 1);
    m.stepDone(0, 0, work({ messagesIn: 1 }));
    for (const to of [1, 2]) m.frameSent({ from: 0, to, bytes: 1000, encoded: true }, 0);
    expect(m.turnEnd(0, 0)).toEqual([2, 3].map((x) => expect.closeTo(x, 9)));
  });

  it('lets a pipelined node\u2019s frames leave as its output lanes finish them (the paper\u2019s output threads), turn or not', () => {
    const m = new CostModel(config({ costs: { ...ZERO, perFrameOutUs: 1000 }, replica: { cores: 8, speed: 1, pipeline: { inputLanes: 1, outputLanes: 1 } } }));
    m.turnBegin(0, 0, 1);
    m.stepDone(0, 0, work({ messagesIn: 1 }));
    expect(m.frameSent({ from: 0, to: 1, bytes: 0, encoded: true }, 0)).toBeCloseTo(1, 9);
    expect(m.turnEnd(0, 0)).toEqual([]);
  });

  it('holds a busy node\u2019s next input until it is free, and leaves other nodes alone', () => {
    const m = new CostModel(config());
    expect(m.readyAtMs(0, 5)).toBe(5);
    m.stepDone(0, 5, w);
    const busyUntil = 5 + (inputUs + protocolUs + turnUs) / 1000;
    expect(m.readyAtMs(0, 5.1)).toBeCloseTo(busyUntil, 9);
    expect(m.readyAtMs(1, 5.1)).toBe(5.1);
    expect(m.readyAtMs(0, busyUntil + 1)).toBe(busyUntil + 1);
  });

  it('serialises frames on the NIC: a FIFO at the egress bandwidth', () => {
    // 8 Mbit/s: 1000 bytes take 1 ms on the wire; CPU is free.
    const m = new CostModel(config({ costs: ZERO, replicaNicBitsPerSec: 8e6, wireOverheadBytes: 0 }));
    m.stepDone(0, 0, work({}));
    expect(m.frameSent({ from: 0, to: 1, bytes: 1000, encoded: true }, 0)).toBeCloseTo(1, 9);
    expect(m.frameSent({ from: 0, to: 2, bytes: 1000, encoded: false }, 0)).toBeCloseTo(2, 9);
    // A later frame after the queue drained starts at once; another node has its own NIC.
    expect(m.frameSent({ from: 0, to: 1, bytes: 500, encoded: true }, 10)).toBeCloseTo(10.5, 9);
    expect(m.frameSent({ from: 1, to: 0, bytes: 1000, encoded: true }, 0)).toBeCloseTo(1, 9);
  });

  it('shares a host\u2019s cores among its nodes, and gives a faster core less time', () => {
    const shared = new CostModel(config({ sharedHostCores: 1, costs: { ...ZERO, perStepUs: 1000 } }));
    shared.stepDone(0, 0, work({}));
    // Node 1 is idle, but the one core of the host is busy for 1 ms.
    expect(shared.readyAtMs(1, 0)).toBeCloseTo(1, 9);
    expect(shared.readyAtMs(clientPeer(0), 0.5)).toBeCloseTo(1, 9);
    const fast = new CostModel(config({ replica: { cores: 1, speed: 2 }, costs: { ...ZERO, perStepUs: 1000 } }));
    fast.stepDone(0, 0, work({}));
    expect(fast.readyAtMs(0, 0)).toBeCloseTo(0.5, 9);
  });

  it('runs a pipelined node\u2019s input side on input lanes beside its protocol lane', () => {
    const costs = { ...ZERO, perMessageInUs: 1000, perStepUs: 1000 };
    const m = new CostModel(config({ costs, replica: { cores: 8, speed: 1, pipeline: { inputLanes: 2, outputLanes: 1 } } }));
    m.stepDone(0, 0, work({ messagesIn: 1 }));
    // Input lane 1 took [0, 1), the protocol lane [1, 2); the second input lane is free at once.
    expect(m.readyAtMs(0, 0)).toBe(0);
    m.stepDone(0, 0, work({ messagesIn: 1 }));
    // Its protocol work waits for the protocol lane: [2, 3); frames leave after it.
    expect(m.frameSent({ from: 0, to: 1, bytes: 0, encoded: false }, 0)).toBeCloseTo(3, 9);
  });

  it('a CPU pool runs work on the earliest free core', () => {
    const p = new CpuPool(2);
    expect(p.run(0, 3)).toBe(3);
    expect(p.run(0, 1)).toBe(1);
    expect(p.run(0, 1)).toBe(2);
    expect(p.busyMs).toBe(5);
  });

  it('a CPU pool fills a gap left before work booked ahead of the clock, and splits work across gaps', () => {
    const p = new CpuPool(1);
    // Work booked for later (a step's frames leave after its CPU time) leaves [0, 5) free.
    expect(p.run(5, 2)).toBe(7);
    // Work ready at 1 runs in the gap instead of waiting for 7.
    expect(p.earliestFreeMs(1)).toBe(1);
    expect(p.run(1, 3)).toBe(4);
    // 2 ms from 3: [4, 5) is free, [5, 7) is taken, the rest runs from 7: done at 8.
    expect(p.run(3, 2)).toBe(8);
    expect(p.earliestFreeMs(0)).toBe(0);
    expect(p.earliestFreeMs(4.5)).toBe(8);
    // Forgetting the past keeps the future bookings.
    p.forget(6);
    expect(p.earliestFreeMs(6)).toBe(8);
    expect(p.busyMs).toBe(7);
  });

  it('in the simulator, CPU costs stretch a run, and the counts the model charges are the ones the counter sees', () => {
    const seed = 7;
    console.log(`cost-model simulation seed ${seed}`);
    const input = { protocol: 'pbft', n: 4, seed, batches: 200, clients: 8, batchSize: 10 } as const;
    const free = new Simulation(input).run();
    const counter = new WorkCounter();
    const counted = new Simulation(input, counter).run();
    // Counting alone changes nothing the run decides.
    expect(counted.virtualTimeMs).toBe(free.virtualTimeMs);
    expect(counted.replicaMessages).toBe(free.replicaMessages);
    expect(counter.replicas.framesOut).toBe(counted.replicaMessages);
    expect(counter.replicas.frameBytesOut).toBe(counted.bytesSent);
    const model = new CostModel(config({ costs: { ...ZERO, perMessageInUs: 200 } }));
    const slow = new Simulation(input, model).run();
    expect(slow.valid).toBe(true);
    expect(slow.acceptedBatches).toBe(200);
    expect(slow.virtualTimeMs).toBeGreaterThan(free.virtualTimeMs * 1.5);
  });

  it('in the simulator, a node busy when inputs arrive handles them in one turn and writes once per peer, and the counter agrees when no one waits', () => {
    const seed = 11;
    console.log(`cost-model coalescing seed ${seed}`);
    const input = { protocol: 'pbft', n: 4, seed, batches: 200, clients: 8, batchSize: 10 } as const;
    const counter = new WorkCounter();
    new Simulation(input, counter).run();
    // Free CPU: no input ever waits, so every step is a turn of its own.
    expect(counter.replicas.turns).toBe(counter.replicas.steps);
    expect(counter.replicas.reads).toBe(counter.replicas.messagesIn);
    // A step's broadcast writes once per peer: each frame of a replica's step goes to a distinct peer here.
    expect(counter.replicas.writes).toBeLessThanOrEqual(counter.replicas.framesOut);
    // Busy CPU (1 ms per message in): inputs queue, and a turn handles them together.
    const model = new CostModel(config({ costs: { ...ZERO, perMessageInUs: 1000 } }));
    const busy = new Simulation(input, model).run();
    expect(busy.valid).toBe(true);
    let turns = 0;
    let messagesIn = 0;
    let writes = 0;
    let framesOut = 0;
    for (const [peer, io] of model.ioByNode()) {
      if (peer >= 4) continue; // replicas only
      turns += io.turns;
      messagesIn += io.messagesIn;
      writes += io.writes;
      framesOut += io.framesOut;
    }
    expect(framesOut).toBe(busy.replicaMessages);
    expect(turns).toBeLessThan(messagesIn * 0.8);
    expect(writes).toBeLessThan(framesOut * 0.8);
  });

  it('in the simulator, a frame above 64 KiB takes more than one socket read, as Node reads a stream 64 KiB at a time', () => {
    const seed = 3;
    console.log(`cost-model read-size seed ${seed}`);
    const small = new WorkCounter();
    new Simulation({ protocol: 'pbft', n: 4, seed, batches: 20, clients: 2, batchSize: 10 }, small).run();
    expect(small.replicas.reads).toBe(small.replicas.messagesIn);
    // Batches of 2000 writes of 64-byte values: each request and PRE-PREPARE is well above 64 KiB.
    const large = new WorkCounter();
    new Simulation({ protocol: 'pbft', n: 4, seed, batches: 20, clients: 2, batchSize: 2000, valueBytes: 64 }, large).run();
    expect(large.replicas.reads).toBeGreaterThan(large.replicas.messagesIn);
  });

  it('in the simulator, a turn\u2019s flush makes a closed loop move as one wave, which leaves shared cores idle where one process works alone', () => {
    // Per-operation costs of the calibration machine (a 2-core host): what the test needs is
    // realistic proportions between the steps, not these exact numbers.
    const costs = MACHINE_COSTS_2026_12_04;
    const seed = 5;
    console.log(`cost-model wave seed ${seed}`);
    const clients = 24;
    const run = (protocol: string): { cores: number; clientFramesPerWrite: number } => {
      const model = new CostModel(config({ costs, sharedHostCores: 2 }));
      const r = new Simulation(
        { protocol, n: 4, seed, batches: 400, clients, batchSize: 100, delay: { baseMs: 0.05, jitterMs: 0.05, tailMeanMs: 0 } },
        model,
      ).run();
      expect(r.valid).toBe(true);
      const cpuMs = [...model.cpuMsByNode().values()].reduce((a, b) => a + b, 0);
      const client = model.ioByNode().get(clientPeer(0))!;
      return { cores: cpuMs / r.virtualTimeMs, clientFramesPerWrite: client.framesOut / client.writes };
    };
    const zyzzyva = run('zyzzyva');
    const poe = run('poe');
    // The client machine gets its replies in waves and sends its next requests in one write
    // each: about all of its outstanding batches (real runs: 23.7 and 23.5 frames per write of 24).
    expect(zyzzyva.clientFramesPerWrite).toBeGreaterThan(0.8 * clients);
    expect(poe.clientFramesPerWrite).toBeGreaterThan(0.8 * clients);
    // A wave passes Zyzzyva's primary alone (ordering, executing and replying to all of it) while
    // the backups wait for its flush; PoE spends more of a wave in phases every replica works in.
    // Real runs (quiet machine, n = 4): Zyzzyva used 1.40 of 2 cores, PoE 1.62.
    expect(zyzzyva.cores).toBeLessThan(1.6);
    expect(poe.cores).toBeGreaterThan(zyzzyva.cores + 0.15);
    expect(poe.cores).toBeLessThan(2);
  });
});
