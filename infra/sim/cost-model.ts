/**
 * The cost model (issue 12 item 1): the simulator's nodes get CPU and a NIC, and every step of a
 * core is charged the CPU of what it did, as counted by the simulator (cost-hook.ts): Ed25519
 * signs and verifications by message size, HMAC and SHA-256 by bytes, encoding and decoding by
 * bytes, execution per transaction, plus a fixed cost per received message, per sent frame and
 * per step. A step's frames leave when its CPU time has passed, one after another (each charged
 * its encoding and transport MAC), then queue for the sender's NIC (FIFO, egress bandwidth), and
 * the network adds the propagation delay. A node that is busy holds its inputs (the simulator
 * keeps them in a FIFO backlog until `readyAtMs`).
 *
 * CPU. A node is a set of lanes (threads) that run on a pool of cores:
 * - single-threaded (a replica process today, and a client process): one lane does everything;
 * - pipelined (a testbed may ask for the paper's §4 pipeline: input, batch, worker, execute and
 *   output threads, poe-paper.txt lines 381-395): the input side of a step (decoding, the
 *   transport MAC check, signature verifications) runs on one of `inputLanes` lanes, the rest of
 *   the step on the one protocol lane after it, and outgoing frames (encoding, MAC) on one of
 *   `outputLanes` lanes.
 * A pool is either a node's own cores (a c5.2xlarge per replica) or a host's cores shared by
 * every node placed on it (the local backend: replicas and clients on one machine's cores).
 * Scheduling is non-preemptive list scheduling: a piece of work starts when its lane and a core
 * of its pool are both free.
 *
 * Pure arithmetic on virtual time; deterministic.
 */
import { isClientPeer, type Peer } from '../../replica/types.js';
import type { FrameOut, SimCostHook, StepWork } from './cost-hook.js';

/** A cost of `fixedUs + perByteUs * bytes` microseconds. */
export interface LinearCost {
  readonly fixedUs: number;
  readonly perByteUs: number;
}

/** Per-operation CPU costs in microseconds (a calibration file holds them, calibration.ts). */
export interface OpCosts {
  readonly ed25519Sign: LinearCost;
  readonly ed25519Verify: LinearCost;
  readonly hmac: LinearCost;
  readonly sha256: LinearCost;
  readonly encode: LinearCost;
  readonly decode: LinearCost;
  /** Executing one transaction (a YCSB write) in the store, ledger append amortised. */
  readonly executeTxnUs: number;
  /** Fixed costs the micro-benchmarks do not see (event loop, socket reads and writes, core bookkeeping): fitted from real runs. */
  readonly perMessageInUs: number;
  readonly perFrameOutUs: number;
  readonly perStepUs: number;
  /** Per byte of a frame written to or read from a socket (kernel copies, buffers): fitted from real runs. */
  readonly ioPerByteUs: number;
}

export interface NodeCpu {
  /** Cores the node's lanes may use; ignored when the node sits on a shared host. */
  readonly cores: number;
  /** Relative speed of these cores against the calibration machine's (1: the same). */
  readonly speed: number;
  /** Absent: single-threaded. */
  readonly pipeline?: { readonly inputLanes: number; readonly outputLanes: number };
}

export interface CostModelConfig {
  readonly costs: OpCosts;
  readonly replica: NodeCpu;
  readonly client: NodeCpu;
  /** All nodes share one host of this many cores (the local backend); undefined: each node has its own cores. */
  readonly sharedHostCores?: number;
  /** Egress bandwidth per node in bits per second (Infinity: no NIC limit, e.g. loopback). */
  readonly replicaNicBitsPerSec: number;
  readonly clientNicBitsPerSec: number;
  /** Bytes each frame adds on the wire beyond its payload (transport header, TCP/IP share). */
  readonly wireOverheadBytes: number;
}

/** The CPU a step costs, in microseconds, split into its input side and the rest. */
export function stepCpuUs(c: OpCosts, w: StepWork): { inputUs: number; protocolUs: number } {
  const lin = (l: LinearCost, ops: number, bytes: number): number => l.fixedUs * ops + l.perByteUs * bytes;
  const cr = w.crypto;
  const inputUs =
    lin(c.decode, w.decodes, w.decodeBytes) +
    lin(c.hmac, w.frameMacVerifies, w.frameMacVerifyBytes) +
    lin(c.ed25519Verify, cr.verifies, cr.verifyBytes) +
    c.perMessageInUs * w.messagesIn +
    c.ioPerByteUs * w.frameMacVerifyBytes;
  const protocolUs =
    c.perStepUs +
    lin(c.ed25519Sign, cr.signs, cr.signBytes) +
    lin(c.hmac, cr.macs + cr.macVerifies, cr.macBytes + cr.macVerifyBytes) +
    lin(c.sha256, cr.digests, cr.digestBytes) +
    c.executeTxnUs * w.txnsExecuted;
  return { inputUs, protocolUs };
}

/** The CPU one outgoing frame costs, in microseconds: its encoding (once per message), its transport MAC and the fixed send cost. */
export function frameCpuUs(c: OpCosts, f: FrameOut): number {
  return (
    (f.encoded ? c.encode.fixedUs + c.encode.perByteUs * f.bytes : 0) + c.hmac.fixedUs + c.hmac.perByteUs * f.bytes + c.perFrameOutUs + c.ioPerByteUs * f.bytes
  );
}

/** Cores: each free from some virtual time on. */
export class CpuPool {
  private readonly freeAtMs: number[];
  /** CPU time handed out, for utilisation reports. */
  busyMs = 0;

  constructor(cores: number) {
    if (!(cores > 0)) throw new RangeError(`a CPU pool needs cores > 0, got ${cores}`);
    // A fractional count (e.g. 1.5) is rounded up; NodeResources slows each core to match.
    this.freeAtMs = new Array<number>(Math.max(1, Math.ceil(cores))).fill(0);
  }

  earliestFreeMs(): number {
    let m = Infinity;
    for (const t of this.freeAtMs) if (t < m) m = t;
    return m;
  }

  /** Runs `ms` of work that may start at `notBeforeMs` on the earliest free core; returns when it ends. */
  run(notBeforeMs: number, ms: number): number {
    let best = 0;
    for (let i = 1; i < this.freeAtMs.length; i++) if (this.freeAtMs[i]! < this.freeAtMs[best]!) best = i;
    const start = Math.max(notBeforeMs, this.freeAtMs[best]!);
    const end = start + ms;
    this.freeAtMs[best] = end;
    this.busyMs += ms;
    return end;
  }
}

/** One node's lanes, pool, speed and NIC. */
class NodeResources {
  /** The protocol lane (the only lane of a single-threaded node). */
  mainFreeMs = 0;
  readonly inputLanes: number[];
  readonly outputLanes: number[];
  nicFreeMs = 0;
  /** When the current step's protocol work ends: its frames may not leave before. */
  stepEndMs = 0;
  cpuMs = 0;
  bytesOut = 0;

  constructor(
    readonly pool: CpuPool,
    readonly speed: number,
    readonly pipelined: boolean,
    inputLanes: number,
    outputLanes: number,
    readonly nicBitsPerSec: number,
  ) {
    this.inputLanes = new Array<number>(inputLanes).fill(0);
    this.outputLanes = new Array<number>(outputLanes).fill(0);
  }
}

const earliest = (lanes: number[]): number => {
  let best = 0;
  for (let i = 1; i < lanes.length; i++) if (lanes[i]! < lanes[best]!) best = i;
  return best;
};

export class CostModel implements SimCostHook {
  private readonly nodes = new Map<Peer, NodeResources>();
  private readonly sharedPool: CpuPool | undefined;

  constructor(readonly config: CostModelConfig) {
    this.sharedPool = config.sharedHostCores === undefined ? undefined : new CpuPool(config.sharedHostCores);
  }

  private node(peer: Peer): NodeResources {
    let r = this.nodes.get(peer);
    if (!r) {
      const client = isClientPeer(peer);
      const cpu = client ? this.config.client : this.config.replica;
      // A share below one core runs at that fraction of a core's speed; so does a fractional
      // shared host (1.5 cores: two cores at three quarters of the speed).
      const hostCores = this.config.sharedHostCores;
      const share = hostCores !== undefined ? hostCores / Math.ceil(hostCores) : Math.min(1, cpu.cores);
      const pool = this.sharedPool ?? new CpuPool(Math.max(1, cpu.cores));
      const p = cpu.pipeline;
      r = new NodeResources(
        pool,
        cpu.speed * share,
        p !== undefined,
        p?.inputLanes ?? 0,
        p?.outputLanes ?? 0,
        client ? this.config.clientNicBitsPerSec : this.config.replicaNicBitsPerSec,
      );
      this.nodes.set(peer, r);
    }
    return r;
  }

  readyAtMs(peer: Peer, nowMs: number): number {
    const r = this.node(peer);
    const lane = r.pipelined ? r.inputLanes[earliest(r.inputLanes)]! : r.mainFreeMs;
    return Math.max(nowMs, lane, r.pool.earliestFreeMs());
  }

  stepDone(peer: Peer, nowMs: number, work: StepWork): void {
    const r = this.node(peer);
    const { inputUs, protocolUs } = stepCpuUs(this.config.costs, work);
    const inputMs = inputUs / 1000 / r.speed;
    const protocolMs = protocolUs / 1000 / r.speed;
    if (r.pipelined) {
      const i = earliest(r.inputLanes);
      const inputEnd = r.pool.run(Math.max(nowMs, r.inputLanes[i]!), inputMs);
      r.inputLanes[i] = inputEnd;
      r.mainFreeMs = r.pool.run(Math.max(inputEnd, r.mainFreeMs), protocolMs);
    } else {
      r.mainFreeMs = r.pool.run(Math.max(nowMs, r.mainFreeMs), inputMs + protocolMs);
    }
    r.stepEndMs = r.mainFreeMs;
    // CPU time as the calibration machine counts it (not stretched by a slower or shared core).
    r.cpuMs += (inputUs + protocolUs) / 1000;
  }

  frameSent(frame: FrameOut, nowMs: number): number {
    const r = this.node(frame.from);
    const ms = frameCpuUs(this.config.costs, frame) / 1000 / r.speed;
    let cpuDone: number;
    if (r.pipelined && r.outputLanes.length > 0) {
      const i = earliest(r.outputLanes);
      cpuDone = r.pool.run(Math.max(nowMs, r.stepEndMs, r.outputLanes[i]!), ms);
      r.outputLanes[i] = cpuDone;
    } else {
      cpuDone = r.pool.run(Math.max(nowMs, r.mainFreeMs), ms);
      r.mainFreeMs = cpuDone;
    }
    r.cpuMs += ms * r.speed;
    const wireBytes = frame.bytes + this.config.wireOverheadBytes;
    r.bytesOut += wireBytes;
    const serialiseMs = Number.isFinite(r.nicBitsPerSec) ? (wireBytes * 8 * 1000) / r.nicBitsPerSec : 0;
    r.nicFreeMs = Math.max(cpuDone, r.nicFreeMs) + serialiseMs;
    return r.nicFreeMs;
  }

  /** CPU milliseconds charged per node so far, in the calibration machine's CPU time (replicas by id, clients as their peer number). */
  cpuMsByNode(): Map<Peer, number> {
    return new Map([...this.nodes].map(([p, r]) => [p, r.cpuMs]));
  }
}
