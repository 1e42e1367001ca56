/**
 * The cost model (issue 12 item 1): the simulator's nodes get CPU and a NIC, and every step of a
 * core is charged the CPU of what it did, as counted by the simulator (cost-hook.ts): Ed25519
 * signs and verifications by message size, HMAC and SHA-256 by bytes, encoding and decoding by
 * bytes, execution per transaction, plus a fixed cost per received message, per sent frame and
 * per step. A node that is busy holds its inputs (the simulator keeps them in a FIFO backlog
 * until `readyAtMs`) and handles all of them in its next turn, as the process runtime handles
 * every input of an event-loop turn. A single-threaded node's frames (each charged its encoding
 * and transport MAC) leave together when its turn's CPU is done, as the runtime writes a turn's
 * frames in one flush after the turn's last input (turnEnd); a pipelined node's leave as its
 * output lanes finish them. Then they queue for the sender's NIC (FIFO, egress bandwidth), and
 * the network adds the propagation delay, one per flush and peer (one write).
 *
 * What the flush does to a closed loop (validated against real runs, experiments/validate.ts):
 * a node's outputs wait for its whole turn, so the next node starts on all of them at once, and
 * the outstanding batches end up moving round as one wave (real runs write 20-24 frames per
 * socket write with 24 batches outstanding). A stage of the wave that one process handles alone
 * (Zyzzyva's primary ordering, executing and answering the whole wave while its backups wait
 * for its flush) leaves the other cores of a shared host idle: real Zyzzyva at n = 4 used 1.40
 * of 2 cores, PoE 1.62, and doubling the load gained them 1.4% and 2.3% at twice the latency.
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
  /**
   * The transport's frame MAC (infra/process/transport.ts FrameMac: HMAC-SHA256 from key pads
   * prepared once per connection, two one-shot SHA-256 calls into reused buffers), by the bytes
   * it hashes (mac-bytes.ts). A quarter to a half of `hmac` (node's createHmac, which the cores'
   * crypto provider uses) at the sizes of votes and replies. Absent (calibrations before it was
   * measured apart): `hmac`.
   */
  readonly frameMac?: LinearCost;
  readonly sha256: LinearCost;
  readonly encode: LinearCost;
  readonly decode: LinearCost;
  /** Executing one transaction (a YCSB write) in the store, ledger append amortised. */
  readonly executeTxnUs: number;
  /** Fixed costs the micro-benchmarks do not see (event loop, socket reads and writes, core bookkeeping): fitted from real runs. */
  readonly perMessageInUs: number;
  readonly perFrameOutUs: number;
  /** Per turn (one wake-up of the event loop that handles every input queued: see turnCpuUs). */
  readonly perStepUs: number;
  /**
   * Per socket read: one per connection with data in a turn (a 'data' event, one read
   * syscall). Absent (calibrations before it was fitted): 0.
   */
  readonly perReadUs?: number;
  /**
   * Per socket write: one writev per connection written to in a turn (the transport corks a
   * turn's frames to one peer and flushes them once). Absent (calibrations before it was
   * fitted): 0.
   */
  readonly perWriteUs?: number;
  /** Per byte of a frame read from a socket (kernel copies, buffers): fitted from real runs. */
  readonly ioPerByteUs: number;
  /**
   * Per byte of a frame written to a socket, fitted apart from reading (the sender of a large
   * PROPOSE and its receivers do not pay alike). Absent (calibrations before it was fitted
   * apart): the same as ioPerByteUs.
   */
  readonly ioPerByteOutUs?: number;
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

/**
 * The CPU a turn's wake-up costs on top of its steps: the fixed cost per turn and one socket
 * read per connection its inputs came from. The runtime (infra/process/transport.ts) handles
 * every 'data' event of an event-loop turn, one read per connection, before it flushes.
 */
export const turnCpuUs = (c: OpCosts, reads: number): number => c.perStepUs + readCpuUs(c, reads);
/** The socket reads of a turn (perReadUs each): the input side of its wake-up. */
export const readCpuUs = (c: OpCosts, reads: number): number => (c.perReadUs ?? 0) * reads;

/** The CPU a step costs, in microseconds, split into its input side and the rest (its turn's wake-up apart: turnCpuUs). */
export function stepCpuUs(c: OpCosts, w: StepWork): { inputUs: number; protocolUs: number } {
  const lin = (l: LinearCost, ops: number, bytes: number): number => l.fixedUs * ops + l.perByteUs * bytes;
  const cr = w.crypto;
  const inputUs =
    lin(c.decode, w.decodes, w.decodeBytes) +
    lin(frameMacCost(c), w.frameMacVerifies, w.frameMacHashBytes ?? w.frameMacVerifyBytes) +
    lin(c.ed25519Verify, cr.verifies, cr.verifyBytes) +
    c.perMessageInUs * w.messagesIn +
    c.ioPerByteUs * w.frameMacVerifyBytes;
  const protocolUs =
    lin(c.ed25519Sign, cr.signs, cr.signBytes) +
    lin(c.hmac, cr.macs + cr.macVerifies, cr.macBytes + cr.macVerifyBytes) +
    lin(c.sha256, cr.digests, cr.digestBytes) +
    c.executeTxnUs * w.txnsExecuted;
  return { inputUs, protocolUs };
}

/** The cost of the transport's frame MAC (hmac where a calibration did not measure it apart). */
export const frameMacCost = (c: OpCosts): LinearCost => c.frameMac ?? c.hmac;

/** The CPU per byte of a frame written to a socket (ioPerByteUs where a calibration did not fit it apart). */
export const ioOutPerByteUs = (c: OpCosts): number => c.ioPerByteOutUs ?? c.ioPerByteUs;

/**
 * The CPU one outgoing frame costs, in microseconds: its encoding (once per message), its
 * transport MAC and the fixed send cost; the socket write it shares with the turn's other
 * frames to the same peer is charged apart (perWriteUs, once per connection and turn).
 */
export function frameCpuUs(c: OpCosts, f: FrameOut): number {
  const mac = frameMacCost(c);
  return (
    (f.encoded ? c.encode.fixedUs + c.encode.perByteUs * f.bytes : 0) +
    mac.fixedUs +
    mac.perByteUs * (f.macBytes ?? f.bytes) +
    c.perFrameOutUs +
    ioOutPerByteUs(c) * f.bytes
  );
}

/**
 * A pool of cores over virtual time, booked piece by piece. The simulator books work ahead of
 * the clock (a step's frames leave after its CPU time), so a pool that only knew when each core
 * is next free would lose every gap left before a booking in the future: a node ready at t would
 * wait behind work booked for later, and a host would look busy while its cores idle (measured:
 * PoE at n = 4 on two shared cores used 1.05 of them, half the real run's 1.63). So the pool
 * keeps a timeline of how many cores are busy and each piece of work fills the earliest free
 * capacity from the time it may start, split across gaps if it must be, like a time-sliced
 * kernel scheduler (a piece uses at most one core at a time: one thread). Work is never
 * reordered in a way the cores could not run: what is booked keeps its slots.
 */
export class CpuPool {
  /** Breakpoints: on [at[i], at[i+1]) `busy[i]` cores are taken; after the last one, none. */
  private readonly at: number[] = [0];
  private readonly busy: number[] = [0];
  private readonly cores: number;
  /** CPU time handed out, for utilisation reports. */
  busyMs = 0;

  constructor(cores: number) {
    if (!(cores > 0)) throw new RangeError(`a CPU pool needs cores > 0, got ${cores}`);
    // A fractional count (e.g. 1.5) is rounded up; NodeResources slows each core to match.
    this.cores = Math.max(1, Math.ceil(cores));
  }

  /** Drops the timeline before `nowMs` (virtual time only moves forward). */
  forget(nowMs: number): void {
    let k = 0;
    while (k + 1 < this.at.length && this.at[k + 1]! <= nowMs) k++;
    if (k > 0) {
      this.at.splice(0, k);
      this.busy.splice(0, k);
    }
  }

  /** The first time from `fromMs` on at which a core is free. */
  earliestFreeMs(fromMs = 0): number {
    for (let i = 0; i < this.at.length; i++) {
      const end = i + 1 < this.at.length ? this.at[i + 1]! : Infinity;
      if (end > fromMs && this.busy[i]! < this.cores) return Math.max(fromMs, this.at[i]!);
    }
    return Math.max(fromMs, this.at.at(-1)!);
  }

  /** Index of the segment that starts at `t`, splitting the one that contains it. */
  private split(t: number): number {
    let i = this.at.length - 1;
    while (i > 0 && this.at[i]! > t) i--;
    if (this.at[i] === t) return i;
    this.at.splice(i + 1, 0, t);
    this.busy.splice(i + 1, 0, this.busy[i]!);
    return i + 1;
  }

  /** Runs `ms` of one thread's work that may start at `notBeforeMs` in the earliest free capacity; returns when it ends. */
  run(notBeforeMs: number, ms: number): number {
    this.busyMs += ms;
    if (!(ms > 0)) return Math.max(notBeforeMs, 0);
    let left = ms;
    let t = notBeforeMs;
    let i = this.split(Math.max(t, this.at[0]!));
    t = this.at[i]!;
    for (;;) {
      const end = i + 1 < this.at.length ? this.at[i + 1]! : Infinity;
      if (this.busy[i]! < this.cores) {
        const take = Math.min(left, end - t);
        if (take < end - t) this.split(t + take);
        this.busy[i]!++;
        left -= take;
        t += take;
        if (left <= 1e-12) break;
      } else t = end;
      i++;
      if (i >= this.at.length) {
        this.at.push(t);
        this.busy.push(0);
      }
    }
    this.merge();
    return t;
  }

  /** Joins neighbouring segments with the same count, so a long busy stretch stays one segment. */
  private merge(): void {
    let w = 0;
    for (let r = 1; r < this.at.length; r++) {
      if (this.busy[r] === this.busy[w]) continue;
      w++;
      this.at[w] = this.at[r]!;
      this.busy[w] = this.busy[r]!;
    }
    this.at.length = w + 1;
    this.busy.length = w + 1;
  }
}

/**
 * A node's turn as the simulator reports it (SimCostHook turnBegin, stepDone, frameSent): which
 * step opens it (and pays its wake-up and reads) and which frames are its first to a peer (and
 * pay the write). Until the simulator opens a turn, every step is a turn of its own, with one
 * read if it had an input. The cost model and the work counter (work-counter.ts) charge and count
 * by this one bookkeeping.
 */
export class TurnTracker {
  /** 'none' until turnBegin; 'fresh' when opened and no step has run; 'running' after its first step. */
  private mode: 'none' | 'fresh' | 'running' = 'none';
  private reads = 0;
  private readonly dests = new Set<Peer>();

  /** Whether the simulator opens this node's turns (a hook without turnBegin never does). */
  get opened(): boolean {
    return this.mode !== 'none';
  }

  begin(reads: number): void {
    this.mode = 'fresh';
    this.reads = reads;
    this.dests.clear();
  }

  /** A step ran: the socket reads of the turn it opens, or undefined when it is not the turn's first. */
  step(messagesIn: number): number | undefined {
    if (this.mode === 'running') return undefined;
    const reads = this.mode === 'fresh' ? this.reads : messagesIn;
    if (this.mode === 'none') this.dests.clear();
    else this.mode = 'running';
    return reads;
  }

  /** A frame to `to`: true when it is the turn's first to that peer (its connection's write). */
  write(to: Peer): boolean {
    if (this.dests.has(to)) return false;
    this.dests.add(to);
    return true;
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
  readonly turn = new TurnTracker();
  /** Wire bytes of the frames this turn holds until its flush (a single-threaded node: see turnEnd). */
  readonly held: number[] = [];
  readonly io: NodeIo = { turns: 0, reads: 0, writes: 0, messagesIn: 0, framesOut: 0 };

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

/** What a node's runtime did, counted by the cost model as it charged it. */
export interface NodeIo {
  turns: number;
  reads: number;
  writes: number;
  messagesIn: number;
  framesOut: number;
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
    return r.pool.earliestFreeMs(Math.max(nowMs, lane));
  }

  turnBegin(peer: Peer, _nowMs: number, reads: number): void {
    this.node(peer).turn.begin(reads);
  }

  stepDone(peer: Peer, nowMs: number, work: StepWork): void {
    const r = this.node(peer);
    r.pool.forget(nowMs);
    const c = this.config.costs;
    let { inputUs, protocolUs } = stepCpuUs(c, work);
    // The turn's wake-up and reads are charged with its first step (a turn whose only event was
    // a cancelled timer never woke the real process and costs nothing).
    const reads = r.turn.step(work.messagesIn);
    if (reads !== undefined) {
      // The reads are input work (a pipeline's input lanes), the wake-up the protocol lane's.
      inputUs += readCpuUs(c, reads);
      protocolUs += c.perStepUs;
      r.io.turns++;
      r.io.reads += reads;
    }
    r.io.messagesIn += work.messagesIn;
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

  frameSent(frame: FrameOut, nowMs: number): number | undefined {
    const r = this.node(frame.from);
    let us = frameCpuUs(this.config.costs, frame);
    r.io.framesOut++;
    if (r.turn.write(frame.to)) {
      r.io.writes++;
      us += this.config.costs.perWriteUs ?? 0;
    }
    const ms = us / 1000 / r.speed;
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
    if (!r.pipelined && r.turn.opened) {
      // A single-threaded process queues the frame and writes it when the turn ends (turnEnd).
      r.held.push(wireBytes);
      return undefined;
    }
    return this.depart(r, cpuDone, wireBytes);
  }

  /** Queues `wireBytes` for the NIC from `readyMs`: returns when the frame has left it (FIFO, egress bandwidth). */
  private depart(r: NodeResources, readyMs: number, wireBytes: number): number {
    const serialiseMs = Number.isFinite(r.nicBitsPerSec) ? (wireBytes * 8 * 1000) / r.nicBitsPerSec : 0;
    r.nicFreeMs = Math.max(readyMs, r.nicFreeMs) + serialiseMs;
    return r.nicFreeMs;
  }

  /**
   * A single-threaded node's turn is over: its frames leave together once all of the turn's CPU
   * is done, as the process runtime queues every frame of an event-loop turn and writes them in
   * one flush after the turn's last input (infra/process/transport.ts scheduleFlush). A step's
   * frames therefore wait for the turn's later steps, and the node's next stage downstream
   * starts only when the whole turn is done: turns that carry many batches move on as one wave.
   */
  turnEnd(peer: Peer, nowMs: number): number[] {
    const r = this.node(peer);
    const flushMs = Math.max(nowMs, r.mainFreeMs);
    const out = r.held.map((bytes) => this.depart(r, flushMs, bytes));
    r.held.length = 0;
    return out;
  }

  /** Turns, reads, writes, messages in and frames out per node so far, as charged. */
  ioByNode(): Map<Peer, Readonly<NodeIo>> {
    return new Map([...this.nodes].map(([p, r]) => [p, r.io]));
  }

  /** CPU milliseconds charged per node so far, in the calibration machine's CPU time (replicas by id, clients as their peer number). */
  cpuMsByNode(): Map<Peer, number> {
    return new Map([...this.nodes].map(([p, r]) => [p, r.cpuMs]));
  }
}
