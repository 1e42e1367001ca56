/**
 * Ends the process as soon as stdout and stderr have flushed what was written to them, instead
 * of letting node wind down on its own. A run of the simulator leaves a heap of 130-180 MB
 * (PoE, 16 replicas, 2,000 batches), and node's own wind-down (environment clean-up, then
 * disposing of the isolate and its heap) took 20-30 ms of a 0.45-0.5 s `sim` on this machine
 * (2026-12-05, natural exit against this, alternating, four pairs). Used only where
 * the work is done and everything printed: `poe-bench sim` and bench-sim's child.
 *
 * `write('', cb)` calls back once every earlier write to that stream is flushed, so this is safe
 * where stdout is asynchronous (pipes and terminals on macOS), not only where it is synchronous
 * (files, pipes and terminals on Linux). Without `code`, node's own rule: `process.exitCode` if
 * set, else 0. (On Node 20 `process.exit(undefined)` exits 0 whatever `process.exitCode` says, so
 * the call without an argument is kept apart: test/e2e/sim-cli.test.ts.)
 */
export async function exitFlushed(code?: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  await new Promise<void>((resolve) => process.stderr.write('', () => resolve()));
  if (code === undefined) process.exit();
  process.exit(code);
}
