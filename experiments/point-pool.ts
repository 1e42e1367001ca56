/**
 * Simulated and modelled points on every core of the machine: a pool of worker threads
 * (experiments/sweep-sim-worker.ts), each running one point at a time. A point is one
 * synchronous, CPU-bound call (a second or several at 32 replicas), so one thread per core runs
 * them side by side, while the main thread stays free to draw the progress bar and to answer
 * Ctrl-C by terminating the workers.
 *
 * A point gives the same result in a worker as in this thread: the simulator is deterministic
 * (its seed) and the cost model is arithmetic on counted work. Run from the TypeScript sources
 * (tests), where no compiled worker exists, the pool runs its points in this thread, one at a time.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RunRecord } from '../infra/run/records.js';
import { modelPoint, type ModelPointInput, type ModelPointResult } from './model-point.js';
import { simulatePoint, type SimPointInput } from './sweep-sim.js';

/** One point to run: in the plain simulator (`--backend sim`) or in the cost model (modelPoint). Plain data, so it crosses to a worker. */
export type PointTask = { readonly kind: 'sim'; readonly input: SimPointInput } | { readonly kind: 'model'; readonly input: ModelPointInput };

export type PointTaskResult<T extends PointTask> = T extends { kind: 'sim' } ? RunRecord & Record<string, unknown> : ModelPointResult;

/** Runs one task in this thread (what a worker does with a message). */
export function runPointTask(task: PointTask): (RunRecord & Record<string, unknown>) | ModelPointResult {
  return task.kind === 'sim' ? simulatePoint(task.input) : modelPoint(task.input);
}

interface Queued {
  readonly task: PointTask;
  readonly resolve: (r: unknown) => void;
  readonly reject: (e: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  job?: Queued;
}

/** Worker threads the pool starts by default: one per core this process may use. */
export const defaultPoolSize = (): number => Math.max(1, availableParallelism());

/**
 * A fixed set of worker threads taking tasks first come, first served. `run` resolves with the
 * task's result, or undefined once the pool is terminated (an interrupted sweep); a task that
 * throws rejects with the worker's error. `close` ends the workers when every task is done.
 */
export class PointPool {
  private readonly queue: Queued[] = [];
  private readonly slots: Slot[] = [];
  private terminated = false;
  private readonly workerUrl = new URL('./sweep-sim-worker.js', import.meta.url);
  /** No compiled worker (tests run the TypeScript sources): tasks run in this thread. */
  readonly inThread: boolean;
  private inThreadBusy = false;

  constructor(readonly size = defaultPoolSize()) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a pool needs at least one worker, got ${size}`);
    this.inThread = !existsSync(fileURLToPath(this.workerUrl));
  }

  /** Queues a task; resolves with its result, or undefined if the pool is terminated first. */
  run<T extends PointTask>(task: T): Promise<PointTaskResult<T> | undefined> {
    if (this.terminated) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      this.queue.push({ task, resolve: resolve as (r: unknown) => void, reject });
      this.pump();
    });
  }

  /** Stops every worker at once; every task not finished resolves undefined. */
  async terminate(): Promise<void> {
    if (this.terminated) return;
    this.terminated = true;
    for (const q of this.queue.splice(0)) q.resolve(undefined);
    const slots = this.slots.splice(0);
    for (const s of slots) s.job?.resolve(undefined);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private pump(): void {
    if (this.terminated) return;
    if (this.inThread) {
      this.pumpInThread();
      return;
    }
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.job === undefined);
      if (slot === undefined && this.slots.length < this.size) slot = this.spawn();
      if (slot === undefined) return;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      slot.worker.postMessage(job.task);
    }
  }

  /** One task at a time, each on a later turn of the event loop, so `run` never blocks its caller. */
  private pumpInThread(): void {
    if (this.inThreadBusy || this.queue.length === 0) return;
    this.inThreadBusy = true;
    setImmediate(() => {
      const job = this.queue.shift();
      this.inThreadBusy = false;
      if (job === undefined || this.terminated) return;
      try {
        job.resolve(runPointTask(job.task));
      } catch (err) {
        job.reject(err as Error);
      }
      this.pump();
    });
  }

  private spawn(): Slot {
    const worker = new Worker(this.workerUrl);
    const slot: Slot = { worker };
    this.slots.push(slot);
    worker.on('message', (msg: { ok: true; result: unknown } | { ok: false; error: string }) => {
      const job = slot.job;
      slot.job = undefined;
      worker.unref();
      if (job !== undefined) {
        if (msg.ok) job.resolve(msg.result);
        else job.reject(new Error(msg.error));
      }
      this.pump();
    });
    worker.on('error', (err) => {
      const job = slot.job;
      slot.job = undefined;
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      job?.reject(err);
      this.pump();
    });
    worker.on('exit', (code) => {
      if (this.terminated) return;
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      const job = slot.job;
      slot.job = undefined;
      job?.reject(new Error(`a point worker exited with code ${code} before answering`));
      this.pump();
    });
    // A worker keeps the process alive only while it has a task: idle ones must not keep a finished command waiting.
    worker.unref();
    return slot;
  }
}
