/**
 * A SimCostHook that charges no time and only adds up what the steps did (cost-hook.ts), for
 * replicas and client machines apart: the counts behind the README's cost table (issue 10 item
 * 5) and the inputs of the cost model's tests. Every number here was counted where the work was
 * done (CountingCrypto, the simulator's codec calls, its stand-in for the transport), none
 * estimated.
 */
import { addCryptoCounts, type CryptoCounts, zeroCryptoCounts } from '../../replica/crypto-counter.js';
import { isClientPeer, type Peer } from '../../replica/types.js';
import type { FrameOut, SimCostHook, StepWork } from './cost-hook.js';
import { frameMacCost, ioOutPerByteUs, type OpCosts, readCpuUs, stepCpuUs, TurnTracker } from './cost-model.js';

/** The work of a set of nodes, summed over a run. */
export interface WorkTotals {
  crypto: CryptoCounts;
  steps: number;
  /** Wake-ups (turns of the event loop with at least one step), socket reads (a connection's inputs in a turn) and socket writes (a connection's outputs in a turn). */
  turns: number;
  reads: number;
  writes: number;
  messagesIn: number;
  decodes: number;
  decodeBytes: number;
  encodes: number;
  encodeBytes: number;
  /** Frames sent (one per destination), their bytes, and the transport MAC computed on each. */
  framesOut: number;
  frameBytesOut: number;
  frameMacs: number;
  frameMacBytes: number;
  frameMacVerifies: number;
  frameMacVerifyBytes: number;
  frameMacHashBytes: number;
  txnsExecuted: number;
}

export const zeroWorkTotals = (): WorkTotals => ({
  crypto: zeroCryptoCounts(),
  steps: 0,
  turns: 0,
  reads: 0,
  writes: 0,
  messagesIn: 0,
  decodes: 0,
  decodeBytes: 0,
  encodes: 0,
  encodeBytes: 0,
  framesOut: 0,
  frameBytesOut: 0,
  frameMacs: 0,
  frameMacBytes: 0,
  frameMacVerifies: 0,
  frameMacVerifyBytes: 0,
  frameMacHashBytes: 0,
  txnsExecuted: 0,
});

export function addStepWork(t: WorkTotals, w: StepWork): void {
  addCryptoCounts(t.crypto, w.crypto);
  t.steps++;
  t.messagesIn += w.messagesIn;
  t.decodes += w.decodes;
  t.decodeBytes += w.decodeBytes;
  t.frameMacVerifies += w.frameMacVerifies;
  t.frameMacVerifyBytes += w.frameMacVerifyBytes;
  t.frameMacHashBytes += w.frameMacHashBytes ?? w.frameMacVerifyBytes;
  t.txnsExecuted += w.txnsExecuted;
}

export function addFrameOut(t: WorkTotals, f: FrameOut): void {
  t.framesOut++;
  t.frameBytesOut += f.bytes;
  t.frameMacs++;
  t.frameMacBytes += f.macBytes ?? f.bytes;
  if (f.encoded) {
    t.encodes++;
    t.encodeBytes += f.bytes;
  }
}

export class WorkCounter implements SimCostHook {
  readonly replicas: WorkTotals = zeroWorkTotals();
  readonly clients: WorkTotals = zeroWorkTotals();
  /** Per replica id. */
  readonly perReplica = new Map<number, WorkTotals>();
  /** Per node, the turn as CostModel (cost-model.ts) keeps it. */
  private readonly turns = new Map<Peer, TurnTracker>();

  private turnOf(node: Peer): TurnTracker {
    let t = this.turns.get(node);
    if (!t) {
      t = new TurnTracker();
      this.turns.set(node, t);
    }
    return t;
  }

  private totalsOf(node: Peer): WorkTotals[] {
    if (isClientPeer(node)) return [this.clients];
    let r = this.perReplica.get(node);
    if (!r) {
      r = zeroWorkTotals();
      this.perReplica.set(node, r);
    }
    return [this.replicas, r];
  }

  readyAtMs(_node: Peer, nowMs: number): number {
    return nowMs;
  }

  turnBegin(node: Peer, _nowMs: number, reads: number): void {
    this.turnOf(node).begin(reads);
  }

  stepDone(node: Peer, _nowMs: number, work: StepWork): void {
    const reads = this.turnOf(node).step(work.messagesIn);
    for (const t of this.totalsOf(node)) {
      addStepWork(t, work);
      if (reads !== undefined) {
        t.turns++;
        t.reads += reads;
      }
    }
  }

  frameSent(frame: FrameOut, nowMs: number): number {
    const write = this.turnOf(frame.from).write(frame.to);
    for (const t of this.totalsOf(frame.from)) {
      addFrameOut(t, frame);
      if (write) t.writes++;
    }
    return nowMs;
  }
}

/**
 * The CPU microseconds the cost model would charge for `t` (cost-model.ts stepCpuUs and
 * frameCpuUs, summed): used to fit the fixed costs and to compare with measured CPU.
 */
export function workCpuUs(c: OpCosts, t: WorkTotals): number {
  const { inputUs, protocolUs } = stepCpuUs(c, t);
  const turns = c.perStepUs * t.turns + readCpuUs(c, t.reads) + (c.perWriteUs ?? 0) * t.writes;
  const mac = frameMacCost(c);
  const frames =
    c.encode.fixedUs * t.encodes +
    c.encode.perByteUs * t.encodeBytes +
    mac.fixedUs * t.frameMacs +
    mac.perByteUs * t.frameMacBytes +
    c.perFrameOutUs * t.framesOut +
    ioOutPerByteUs(c) * t.frameBytesOut;
  return inputUs + protocolUs + turns + frames;
}
