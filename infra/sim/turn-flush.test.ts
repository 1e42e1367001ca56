/**
 * The simulator's turn-end flush (cost-hook.ts turnEnd): a hook that holds a turn's frames gets
 * them sent when the turn ends, one write per peer, as the process runtime flushes each
 * connection once per event-loop turn (infra/process/transport.ts). The frames of one flush to
 * one peer cross the link together (one delay), so they reach the peer at one instant and it
 * handles them in one turn with one read; and a hook that breaks the turnEnd contract stops the
 * run instead of silently losing frames.
 */
import { describe, expect, it } from 'vitest';
import type { Peer } from '../../replica/types.js';
import type { FrameOut, SimCostHook, StepWork } from './cost-hook.js';
import { Simulation } from './simulator.js';

interface Turn {
  readonly node: Peer;
  readonly atMs: number;
  readonly reads: number;
  steps: number;
}

/** Never busy; holds every frame to its turn's end and lets them all leave then; records each turn. */
class HoldingHook implements SimCostHook {
  readonly turns: Turn[] = [];
  private held = 0;
  constructor(private readonly departures: (held: number, nowMs: number) => number[] = (held, nowMs) => new Array<number>(held).fill(nowMs)) {}
  readyAtMs(_node: Peer, nowMs: number): number {
    return nowMs;
  }
  turnBegin(node: Peer, atMs: number, reads: number): void {
    this.turns.push({ node, atMs, reads, steps: 0 });
  }
  stepDone(_node: Peer, _nowMs: number, _work: StepWork): void {
    const t = this.turns.at(-1);
    if (t) t.steps++;
  }
  frameSent(_frame: FrameOut, _nowMs: number): number | undefined {
    this.held++;
    return undefined;
  }
  turnEnd(_node: Peer, nowMs: number): readonly number[] {
    const d = this.departures(this.held, nowMs);
    this.held = 0;
    return d;
  }
}

// Jittered links: frames drawn a delay each would land at different instants.
const input = (seed: number) =>
  ({ protocol: 'pbft', n: 4, seed, batches: 200, clients: 8, batchSize: 10, delay: { baseMs: 0.5, jitterMs: 1, tailMeanMs: 0 } }) as const;

describe('turn-end flush', () => {
  it("a flush's frames to one peer arrive together: the peer handles them in one turn and one read", () => {
    const seed = 7;
    console.log(`turn-flush seed ${seed}`);
    const hook = new HoldingHook();
    const r = new Simulation(input(seed), hook).run();
    expect(r.valid).toBe(true);
    const replicaTurns = hook.turns.filter((t) => t.node < 4 && t.reads > 0);
    // Every read brings at least one frame; a turn reads once per connection it has frames from.
    for (const t of replicaTurns) expect(t.steps).toBeGreaterThanOrEqual(t.reads);
    // The primary's turns hand several PRE-PREPAREs to each backup in one flush: with one delay
    // per flush they arrive at one instant, one read, several steps. (Drawn a delay per frame,
    // as before turnEnd, no two frames from one sender would share an instant on these links.)
    const together = replicaTurns.filter((t) => t.reads === 1 && t.steps > 1);
    expect(together.length).toBeGreaterThan(replicaTurns.length / 20);
  });

  it('a hook that gives fewer departure times than the frames it held stops the run', () => {
    const hook = new HoldingHook((held, nowMs) => new Array<number>(Math.max(0, held - 1)).fill(nowMs));
    expect(() => new Simulation(input(1), hook).run()).toThrow(/departure time/);
  });

  it('a hook that holds frames without a turnEnd stops the run', () => {
    const hook = new HoldingHook();
    const noTurnEnd: SimCostHook = {
      readyAtMs: (n, t) => hook.readyAtMs(n, t),
      stepDone: (n, t, w) => hook.stepDone(n, t, w),
      frameSent: (f, t) => hook.frameSent(f, t),
    };
    expect(() => new Simulation(input(1), noTurnEnd).run()).toThrow(/no turnEnd/);
  });
});
