/**
 * The control channel between the harness and a replica or client process: JSON lines over
 * the process's stdin (requests) and stdout (responses). Logs go to stderr only.
 *
 * Over stdin/stdout the same processes can be driven locally (execa), through ssh, or in a
 * container, with no extra port to open. When stdin closes, the harness is gone: the process
 * exits at once, so a harness that is killed hard still leaves no orphan behind.
 *
 * Both ends live here: `serveControl` in the child, `ControlClient` in the harness.
 */
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { FaultSpec } from '../../replica/byzantine.js';
import type { ProtocolName } from '../../replica/types.js';

/** Where a peer listens. */
export interface PeerAddress {
  readonly peer: number;
  readonly host: string;
  readonly port: number;
}

/** Run-wide settings every process of a run shares. */
export interface CommonProcessConfig {
  readonly protocol: ProtocolName;
  readonly n: number;
  /** Client machines (processes) in the run: their keys are derived from keySeed. */
  readonly clientMachines: number;
  readonly keySeed: string;
  readonly records: number;
  readonly valueBytes: number;
  readonly extra?: Readonly<Record<string, string | number | boolean>>;
}

export interface ReplicaProcessConfig extends CommonProcessConfig {
  readonly role: 'replica';
  readonly id: number;
  readonly listenHost: string;
  /** 0: any free port (the bound port is returned by `configure`). */
  readonly listenPort: number;
  readonly checkpointIntervalK: number;
  readonly windowK: number;
  readonly viewChangeTimeoutMs: number;
  /**
   * Crash or Byzantine behaviours this replica wraps its core with (replica/byzantine.ts), in
   * order, the first innermost; crashAt's time counts from `start`. Absent: a correct replica.
   */
  readonly faults?: readonly FaultSpec[];
}

export interface ClientProcessConfig extends CommonProcessConfig {
  readonly role: 'client';
  readonly origin: number;
  readonly clients: number;
  readonly clientIdBase: number;
  readonly batchSize: number;
  readonly requestTimeoutMs: number;
  readonly openLoopBatchesPerSec?: number;
  /** The request timeout follows the observed latency (client/core.ts adaptiveTimeout). */
  readonly adaptiveTimeout?: boolean;
  readonly generator: string;
  readonly seed: number;
}

export type ProcessConfig = ReplicaProcessConfig | ClientProcessConfig;

export type ControlRequest =
  | { readonly id: number; readonly cmd: 'configure'; readonly config: ProcessConfig }
  /** Dial these peers (a replica dials only higher ids) and wait until `expect` peers are connected. */
  | { readonly id: number; readonly cmd: 'connect'; readonly peers: readonly PeerAddress[]; readonly expect: readonly number[]; readonly timeoutMs: number }
  /**
   * Start the core. The warm-up is a cap: the window opens at `open-window`, or by itself
   * warmupMs from now if none came (infra/process/support.ts MeasurementWindow); it then lasts
   * durationMs.
   */
  | { readonly id: number; readonly cmd: 'start'; readonly warmupMs: number; readonly durationMs: number }
  /** Open the measurement window now (the warm-up has settled); answers WindowOpened. */
  | { readonly id: number; readonly cmd: 'open-window' }
  /** Make the open window last durationMs from its start; answers WindowExtended. */
  | { readonly id: number; readonly cmd: 'extend-window'; readonly durationMs: number }
  | { readonly id: number; readonly cmd: 'progress' }
  /** This process's resident memory now (ProcessMemory); needs no `configure`. */
  | { readonly id: number; readonly cmd: 'memory' }
  /** Stop: a client stops issuing, a replica stops processing (its ledger is then final). */
  | { readonly id: number; readonly cmd: 'stop' }
  | { readonly id: number; readonly cmd: 'metrics' }
  | { readonly id: number; readonly cmd: 'ledger' }
  | { readonly id: number; readonly cmd: 'shutdown' };

export type ControlCommand = ControlRequest['cmd'];

export type ControlResponse =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string };

/** An unsolicited line: the process hit a fatal error and is exiting. */
export interface ControlFatal {
  readonly fatal: string;
}

// ---------------------------------------------------------------------------------------
// Child side

export type ControlHandler = (req: ControlRequest) => Promise<unknown> | unknown;

/** Writes one line and calls back once it is handed to the OS. */
function writeLine(out: Writable, value: unknown, done?: () => void): void {
  out.write(`${JSON.stringify(value)}\n`, done);
}

/**
 * Serves control requests from `input` until it closes, then calls `onClose` (which exits).
 * Requests are handled one at a time, in order.
 */
export function serveControl(handler: ControlHandler, onClose: () => void, input: Readable = process.stdin, output: Writable = process.stdout): void {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let chain: Promise<void> = Promise.resolve();
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    let req: ControlRequest;
    try {
      req = JSON.parse(line) as ControlRequest;
    } catch {
      writeLine(output, { id: -1, ok: false, error: `unparseable control line: ${line.slice(0, 80)}` });
      return;
    }
    chain = chain.then(async () => {
      try {
        const result = await handler(req);
        writeLine(output, { id: req.id, ok: true, result: result ?? null });
      } catch (err) {
        writeLine(output, { id: req.id, ok: false, error: (err as Error).message ?? String(err) });
      }
    });
  });
  lines.on('close', onClose);
}

/** Reports a fatal error to the harness, then exits with `code`. */
export function reportFatalAndExit(message: string, code: number, output: Writable = process.stdout): void {
  process.stderr.write(`fatal: ${message}\n`);
  writeLine(output, { fatal: message } satisfies ControlFatal, () => process.exit(code));
  // If the pipe is gone the callback may never run.
  setTimeout(() => process.exit(code), 500).unref();
}

// ---------------------------------------------------------------------------------------
// Harness side

export class ControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; cmd: string };

/** Sends requests to one process and matches responses by id. */
export class ControlClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | undefined;
  /** Set when the process reported a fatal error. */
  fatal: string | undefined;

  constructor(
    readonly name: string,
    private readonly input: Writable,
    output: Readable,
  ) {
    const lines = createInterface({ input: output, crlfDelay: Infinity });
    lines.on('line', (line) => this.onLine(line));
    input.on('error', () => {
      /* the process died; fail() reports it */
    });
  }

  private onLine(line: string): void {
    if (line.trim() === '') return;
    let msg: ControlResponse | ControlFatal;
    try {
      msg = JSON.parse(line) as ControlResponse | ControlFatal;
    } catch {
      // Stray output (e.g. node --trace-gc writes to stdout); the protocol is lines of JSON.
      if (process.env['POE_BENCH_TRACE']) process.stderr.write(`[${this.name}] ${line}\n`);
      return;
    }
    if ('fatal' in msg) {
      this.fatal = msg.fatal;
      this.fail(new ControlError(`${this.name}: ${msg.fatal}`));
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new ControlError(`${this.name}: ${p.cmd}: ${msg.error}`));
  }

  /** Fails every outstanding and future request (the process exited or reported fatal). */
  fail(err: Error): void {
    if (!this.failure) this.failure = err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  request<T>(req: DistributiveOmit<ControlRequest, 'id'>, timeoutMs = 30_000): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ControlError(`${this.name}: ${req.cmd}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        cmd: req.cmd,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.input.write(`${JSON.stringify({ ...req, id })}\n`);
    });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The answer to `open-window`: when the window opened, and whether this command opened it. */
export interface WindowOpened {
  /** False when the window had already opened at its cap. */
  readonly byCommand: boolean;
  readonly startEpochMs: number;
}

/** The answer to `extend-window`: false when the window had already closed (or never opened). */
export interface WindowExtended {
  readonly extended: boolean;
  readonly endEpochMs: number;
}

/** The answer to `memory`: what the warm-up's memory rule reads (infra/run/steady.ts memorySettled). */
export interface ProcessMemory {
  readonly rssBytes: number;
}

/** This process's resident set now. */
function processMemory(): ProcessMemory {
  return { rssBytes: process.memoryUsage.rss() };
}

/** What the replica and client processes have in common for their control channel. */
export interface ControlledRuntime {
  connect(peers: readonly PeerAddress[], expect: readonly number[], timeoutMs: number): Promise<number[]>;
  start(warmupMs: number, durationMs: number): void;
  openWindow(): WindowOpened;
  extendWindow(durationMs: number): WindowExtended;
  stop(): void;
  progress(): unknown;
  metrics(): unknown;
  /** The replica's ledger, or the batches a client accepted: what the safety check reads. */
  ledger(): unknown;
  close(): Promise<void>;
}

/**
 * Runs a process's control loop (infra/process/replica-main.ts, infra/process/client-main.ts): `configure` builds the
 * runtime and answers, every other command goes to it. `role` names the process in fatal errors.
 */
export function serveProcess(role: string, configure: (config: ProcessConfig) => Promise<{ runtime: ControlledRuntime; answer: unknown }>): void {
  let runtime: ControlledRuntime | undefined;
  const need = (): ControlledRuntime => {
    if (!runtime) throw new Error('not configured');
    return runtime;
  };
  const handle = async (req: ControlRequest): Promise<unknown> => {
    switch (req.cmd) {
      case 'configure': {
        if (runtime) throw new Error('already configured');
        const made = await configure(req.config);
        runtime = made.runtime;
        return made.answer;
      }
      case 'connect':
        return { connected: await need().connect(req.peers, req.expect, req.timeoutMs) };
      case 'start':
        need().start(req.warmupMs, req.durationMs);
        return null;
      case 'open-window':
        return need().openWindow();
      case 'extend-window':
        return need().extendWindow(req.durationMs);
      case 'progress':
        return need().progress();
      case 'memory':
        return processMemory();
      case 'stop':
        need().stop();
        return need().progress();
      case 'metrics':
        return need().metrics();
      case 'ledger':
        return need().ledger();
      case 'shutdown':
        await runtime?.close();
        // The harness closes stdin once it has the answer; exit anyway if it does not.
        setTimeout(() => process.exit(0), 2000).unref();
        return null;
    }
  };
  process.on('uncaughtException', (err) => reportFatalAndExit(`${role}: ${err.stack ?? err.message}`, 70));
  process.on('unhandledRejection', (err) => reportFatalAndExit(`${role}: ${String(err)}`, 70));
  // Ctrl-C in a terminal reaches the whole process group; the harness handles it and stops this
  // process through its control channel, so the run ends in order rather than by a race.
  process.on('SIGINT', () => undefined);
  serveControl(handle, () => process.exit(0));
}
