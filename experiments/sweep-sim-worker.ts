/**
 * Worker thread for `poe-bench figure --backend sim`: a simulated point is one synchronous,
 * CPU-bound call (tens of seconds at 32 replicas), so it runs here, leaving the main thread
 * free to draw the progress bar and to answer Ctrl-C by terminating this worker.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { simulatePoint, type SimPointInput } from './sweep-sim.js';

try {
  parentPort!.postMessage({ ok: true, record: simulatePoint(workerData as SimPointInput) });
} catch (err) {
  parentPort!.postMessage({ ok: false, error: (err as Error).stack ?? String(err) });
}
