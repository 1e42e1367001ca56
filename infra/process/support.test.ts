import { describe, expect, it } from 'vitest';
import { MeasurementWindow, NamedTimers, nowMs } from './support.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A window with counters of its edges (issue 11 item 2: the warm-up is a cap, `open` ends it early). */
function windowOf(capMs: number, durationMs: number) {
  const edges = { opened: 0, closed: 0 };
  const w = new MeasurementWindow(
    capMs,
    durationMs,
    () => edges.opened++,
    () => edges.closed++,
  );
  return { w, edges };
}

describe('MeasurementWindow', () => {
  it('opens at the harness command, before the cap, and lasts its duration from then', async () => {
    const { w, edges } = windowOf(5000, 150);
    await sleep(30);
    const before = nowMs();
    expect(w.contains(before)).toBe(false);
    expect(w.open()).toBe(true);
    expect(w.openedBy).toBe('command');
    expect(edges.opened).toBe(1);
    expect(w.startMs).toBeGreaterThanOrEqual(before);
    expect(w.startMs - w.startedAtMs).toBeLessThan(5000);
    expect(w.endMs - w.startMs).toBeCloseTo(150, 6);
    // A second open changes nothing.
    expect(w.open()).toBe(false);
    await sleep(250);
    expect(edges).toEqual({ opened: 1, closed: 1 });
    w.cancel();
  });

  it('opens by itself at the cap when not told (the fallback), and a late command keeps the cap', async () => {
    const { w, edges } = windowOf(40, 1000);
    await sleep(120);
    expect(w.openedBy).toBe('cap');
    expect(w.startMs - w.startedAtMs).toBeCloseTo(40, 6);
    expect(w.open()).toBe(false);
    expect(w.startMs - w.startedAtMs).toBeCloseTo(40, 6);
    expect(edges.opened).toBe(1);
    w.cancel();
  });

  it('extends an open window, and refuses once it has closed', async () => {
    const { w, edges } = windowOf(5000, 100);
    expect(w.extend(500)).toBe(false); // not open yet
    w.open();
    expect(w.extend(300)).toBe(true);
    expect(w.endMs - w.startMs).toBeCloseTo(300, 6);
    expect(w.extend(200)).toBe(true); // never shortened
    expect(w.endMs - w.startMs).toBeCloseTo(300, 6);
    await sleep(180);
    expect(edges.closed).toBe(0);
    await sleep(250);
    expect(edges.closed).toBe(1);
    expect(w.extend(1000)).toBe(false);
    w.cancel();
  });
});

describe('NamedTimers', () => {
  it('fires a set timer once; a cancelled one never; a cancel then set (re-armed in place) once, at the new time', async () => {
    const fired: [string, number][] = [];
    const t0 = nowMs();
    const timers = new NamedTimers((name) => fired.push([name, nowMs() - t0]));
    timers.set('a', 20);
    timers.set('b', 20);
    timers.cancel('b');
    timers.set('c', 20);
    timers.cancel('c');
    await sleep(10);
    timers.set('c', 20); // the same delay: the disarmed timer is refreshed, from now
    expect(timers.armed).toBe(2);
    await sleep(60);
    expect(fired.map(([n]) => n).sort()).toEqual(['a', 'c']);
    expect(fired.find(([n]) => n === 'c')![1]).toBeGreaterThanOrEqual(29);
    expect(timers.armed).toBe(0);
    timers.stop();
  });

  it('re-arms with a new delay when the delay changes, and sets nothing after stop', async () => {
    const fired: string[] = [];
    const timers = new NamedTimers((name) => fired.push(name));
    timers.set('a', 500);
    timers.set('a', 10); // replaces the 500 ms timer
    await sleep(40);
    expect(fired).toEqual(['a']);
    timers.set('b', 10);
    timers.stop();
    timers.set('c', 10);
    await sleep(40);
    expect(fired).toEqual(['a']);
  });
});
