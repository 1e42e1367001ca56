/**
 * Pieces the replica and client runtimes share: named timers on the OS clock, the
 * measurement window, and per-process resource figures.
 */
import { performance } from 'node:perf_hooks';
import type { CommonProcessConfig } from './control.js';

/** The runtime's clock: milliseconds from process start, monotonic (cores get this as nowMs). */
export const nowMs = (): number => performance.now();

/**
 * Milliseconds since the Unix epoch, sub-millisecond: times two processes report can be
 * compared (on one machine exactly; across hosts up to their clocks' offset).
 */
export const epochMs = (): number => performance.timeOrigin + performance.now();

/**
 * The core's named timers (STYLE.md: a table of named timers, TigerBeetle). `set` re-arms,
 * `cancel` disarms; a timer fires once.
 */
export class NamedTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly onFire: (name: string) => void) {}

  set(name: string, afterMs: number): void {
    if (this.stopped) return;
    const old = this.timers.get(name);
    if (old) clearTimeout(old);
    this.timers.set(
      name,
      setTimeout(
        () => {
          this.timers.delete(name);
          this.onFire(name);
        },
        Math.max(0, afterMs),
      ),
    );
  }

  cancel(name: string): void {
    const t = this.timers.get(name);
    if (t) {
      clearTimeout(t);
      this.timers.delete(name);
    }
  }

  get armed(): number {
    return this.timers.size;
  }

  /** Cancels every timer; later `set` calls are ignored. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

/** CPU time and memory of this process. */
export interface ResourceSample {
  readonly atMs: number;
  /** User plus system CPU time since process start. */
  readonly cpuMs: number;
}

export function sampleResources(): ResourceSample {
  const u = process.cpuUsage();
  return { atMs: nowMs(), cpuMs: (u.user + u.system) / 1000 };
}

/** Peak resident set size of this process, in bytes. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/**
 * The measurement window [startMs, endMs) on this process's clock, fixed when the harness
 * sends `start`: warm-up first, then the measured part. `onOpen` and `onClose` run when the
 * clock crosses the edges (to snapshot counters); acceptance times are compared exactly.
 */
export class MeasurementWindow {
  readonly startedAtMs: number;
  readonly startMs: number;
  readonly endMs: number;
  private timers: NodeJS.Timeout[] = [];
  opened = false;
  closed = false;

  constructor(warmupMs: number, durationMs: number, onOpen: () => void, onClose: () => void) {
    this.startedAtMs = nowMs();
    this.startMs = this.startedAtMs + warmupMs;
    this.endMs = this.startMs + durationMs;
    this.timers.push(
      setTimeout(() => {
        this.opened = true;
        onOpen();
      }, warmupMs),
      setTimeout(() => {
        this.closed = true;
        onClose();
      }, warmupMs + durationMs),
    );
  }

  contains(tMs: number): boolean {
    return tMs >= this.startMs && tMs < this.endMs;
  }

  cancel(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }
}

/** Counts per key, for event and rejection reasons. */
export function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

/**
 * `extra` for cores and client policies: the run's key seed and crypto provider (clients of
 * Zyzzyva and HotStuff verify replicas' signatures with them), then the run's own switches.
 */
export function protocolExtra(config: CommonProcessConfig): Readonly<Record<string, string | number | boolean>> {
  return { keySeed: config.keySeed, cryptoProvider: 'node', ...config.extra };
}
