/**
 * A worker thread of the point pool (experiments/point-pool.ts): runs the simulated or modelled
 * points it is sent, one at a time, and answers each with its result. A point is one synchronous,
 * CPU-bound call, so each core gets a worker, leaving the main thread free to draw the progress
 * bar and to answer Ctrl-C by terminating the workers.
 */
import { parentPort } from 'node:worker_threads';
import { runPointTask, type PointTask } from './point-pool.js';

parentPort!.on('message', (task: PointTask) => {
  try {
    parentPort!.postMessage({ ok: true, result: runPointTask(task) });
  } catch (err) {
    parentPort!.postMessage({ ok: false, error: (err as Error).stack ?? String(err) });
  }
});
