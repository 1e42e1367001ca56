/**
 * Pieces the replica and client runtimes share: named timers on the OS clock, the
 * measurement window, and per-process resource figures.
 */
import { performance } from 'node:perf_hooks';
import { batchBodyAt, batchBodyDigestInto } from '../../replica/messages.js';
import type { CommonProcessConfig } from './control.js';
import type { BatchLocator } from './transport.js';

/** The runtime's clock: milliseconds from process start, monotonic (cores get this as nowMs). */
export const nowMs = (): number => performance.now();

/**
 * Milliseconds since the Unix epoch, sub-millisecond: times two processes report can be
 * compared (on one machine exactly; across hosts up to their clocks' offset).
 */
export const epochMs = (): number => performance.timeOrigin + performance.now();

/** A time on this process's clock (nowMs) as ms since the Unix epoch. */
export const toEpochMs = (tMs: number): number => performance.timeOrigin + tMs;

/**
 * The core's named timers (STYLE.md: a table of named timers, TigerBeetle). `set` re-arms,
 * `cancel` disarms; a timer fires once.
 *
 * A cancelled timer keeps its node Timeout, disarmed, and a later `set` of the same name for
 * the same delay re-arms it with `refresh()`: a closed-loop client cancels its request timer
 * and sets it again for its next request once per batch, and a new Timeout and closure each
 * time (with the timer list unlinked and relinked) was garbage and work on every batch. A
 * disarmed timer that fires does nothing but forget itself.
 */
export class NamedTimers {
  private readonly timers = new Map<string, NamedTimer>();
  private stopped = false;

  constructor(private readonly onFire: (name: string) => void) {}

  set(name: string, afterMs: number): void {
    if (this.stopped) return;
    const ms = Math.max(0, afterMs);
    const old = this.timers.get(name);
    if (old && old.afterMs === ms) {
      old.armed = true;
      old.timeout.refresh();
      return;
    }
    if (old) clearTimeout(old.timeout);
    const timer: NamedTimer = {
      afterMs: ms,
      armed: true,
      timeout: setTimeout(() => {
        this.timers.delete(name);
        if (timer.armed) this.onFire(name);
      }, ms),
    };
    this.timers.set(name, timer);
  }

  cancel(name: string): void {
    const t = this.timers.get(name);
    if (t) t.armed = false;
  }

  /** Timers set and neither fired nor cancelled. */
  get armed(): number {
    let n = 0;
    for (const t of this.timers.values()) if (t.armed) n++;
    return n;
  }

  /** Cancels every timer; later `set` calls are ignored. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t.timeout);
    this.timers.clear();
  }
}

interface NamedTimer {
  readonly afterMs: number;
  armed: boolean;
  readonly timeout: NodeJS.Timeout;
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
 * The measurement window [startMs, endMs) on this process's clock. `start` arms it: the
 * warm-up is a cap (issue 11 item 2). The harness opens the window for every process at once
 * with `open` (the control channel's `open-window`) as soon as the clients' 1-second
 * throughput and the processes' memory have settled (infra/run/steady.ts); if it has not said so by the cap, the window
 * opens by itself at the cap, as a fallback (a fixed warm-up is the cap with no `open`). The
 * window then lasts `durationMs` from its opening; `extend` lengthens it while it is open.
 * `onOpen` and `onClose` run when the clock crosses the edges (to snapshot counters);
 * acceptance times are compared exactly. Until the window opens, startMs and endMs are the
 * cap's: no time before `open` is inside it.
 */
export class MeasurementWindow {
  readonly startedAtMs: number;
  private start: number;
  private end: number;
  private openTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  opened = false;
  closed = false;
  /** How the window opened: by the harness's `open`, or at the cap. */
  openedBy: 'command' | 'cap' | undefined;

  constructor(
    warmupCapMs: number,
    private readonly durationMs: number,
    private readonly onOpen: () => void,
    private readonly onClose: () => void,
  ) {
    this.startedAtMs = nowMs();
    this.start = this.startedAtMs + warmupCapMs;
    this.end = this.start + durationMs;
    this.openTimer = setTimeout(() => this.openAt(this.start, 'cap'), warmupCapMs);
  }

  get startMs(): number {
    return this.start;
  }

  get endMs(): number {
    return this.end;
  }

  /**
   * Opens the window now (the harness's `open-window`); a window already open (at the cap,
   * whose timer may fire late) keeps its start. Returns whether this call opened it.
   */
  open(): boolean {
    if (this.opened) return false;
    const now = nowMs();
    // The cap has passed but its timer has not fired yet: the window opened at the cap.
    if (now >= this.start) this.openAt(this.start, 'cap');
    else this.openAt(now, 'command');
    return this.openedBy === 'command';
  }

  private openAt(at: number, by: 'command' | 'cap'): void {
    if (this.opened) return;
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = undefined;
    this.opened = true;
    this.openedBy = by;
    this.start = at;
    this.end = at + this.durationMs;
    this.onOpen();
    this.armClose();
  }

  private armClose(): void {
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = setTimeout(
      () => {
        this.closeTimer = undefined;
        this.closed = true;
        this.onClose();
      },
      Math.max(0, this.end - nowMs()),
    );
  }

  /**
   * Makes the open window last `durationMs` from its start (only longer). Refused (false) when
   * the window is not open, already closed, or its end has already passed on this clock.
   */
  extend(durationMs: number): boolean {
    if (!this.opened || this.closed || nowMs() >= this.end) return false;
    const end = this.start + durationMs;
    if (end <= this.end) return true;
    this.end = end;
    this.armClose();
    return true;
  }

  /** `open-window`'s answer (infra/process/control.ts). */
  openByCommand(): { byCommand: boolean; startEpochMs: number } {
    const byCommand = this.open();
    return { byCommand, startEpochMs: toEpochMs(this.start) };
  }

  /** `extend-window`'s answer. */
  extendByCommand(durationMs: number): { extended: boolean; endEpochMs: number } {
    const extended = this.extend(durationMs);
    return { extended, endEpochMs: toEpochMs(this.end) };
  }

  contains(tMs: number): boolean {
    return tMs >= this.start && tMs < this.end;
  }

  cancel(): void {
    if (this.openTimer) clearTimeout(this.openTimer);
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.openTimer = undefined;
    this.closeTimer = undefined;
  }
}

/** A process's window once `start` made it: the control commands open-window and extend-window need one. */
export function startedWindow(w: MeasurementWindow | undefined): MeasurementWindow {
  if (!w) throw new Error('not started');
  return w;
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

/**
 * Where this codebase's messages carry a client batch, for the transport: the batch a frame
 * carries (a REQUEST, a PROPOSE, ...) is hashed once per process, for its MAC and for
 * D(⟨T⟩c) alike (replica/messages.ts batchBodyAt, batchBodyDigestInto).
 */
export const MESSAGE_BATCHES: BatchLocator = { bodyAt: batchBodyAt, bodyDigestInto: batchBodyDigestInto };
