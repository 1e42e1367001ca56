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
import { ioOutPerByteUs, type OpCosts, stepCpuUs } from './cost-model.js';

/** The work of a set of nodes, summed over a run. */
export interface WorkTotals {
  crypto: CryptoCounts;
  steps: number;
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
  txnsExecuted: number;
}

export const zeroWorkTotals = (): WorkTotals => ({
  crypto: zeroCryptoCounts(),
  steps: 0,
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
  t.txnsExecuted += w.txnsExecuted;
}

export function addFrameOut(t: WorkTotals, f: FrameOut): void {
  t.framesOut++;
  t.frameBytesOut += f.bytes;
  t.frameMacs++;
  t.frameMacBytes += f.bytes;
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

  stepDone(node: Peer, _nowMs: number, work: StepWork): void {
    for (const t of this.totalsOf(node)) addStepWork(t, work);
  }

  frameSent(frame: FrameOut, nowMs: number): number {
    for (const t of this.totalsOf(frame.from)) addFrameOut(t, frame);
    return nowMs;
  }
}

/**
 * The CPU microseconds the cost model would charge for `t` (cost-model.ts stepCpuUs and
 * frameCpuUs, summed): used to fit the fixed costs and to compare with measured CPU.
 */
export function workCpuUs(c: OpCosts, t: WorkTotals): number {
  const { inputUs, protocolUs } = stepCpuUs(c, t);
  // stepCpuUs charges perStepUs once; a total of many steps owes it per step.
  const steps = c.perStepUs * (t.steps - 1);
  const frames =
    c.encode.fixedUs * t.encodes +
    c.encode.perByteUs * t.encodeBytes +
    c.hmac.fixedUs * t.frameMacs +
    c.hmac.perByteUs * t.frameMacBytes +
    c.perFrameOutUs * t.framesOut +
    ioOutPerByteUs(c) * t.frameBytesOut;
  return inputUs + protocolUs + steps + frames;
}
