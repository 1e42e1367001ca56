/**
 * `poe-bench run` flags: defaults, every bad input named with its flag, crashed backups chosen
 * deterministically (highest ids, never the view-0 primary).
 */
import { describe, expect, it } from 'vitest';
import { getProtocol, registeredProtocols } from '../../replica/protocols.js';
import {
  crashedBackups,
  outstandingTxns,
  faultsOf,
  faultyReplicas,
  mayLagReplicas,
  liveReplicas,
  makeRunSpec,
  parseExtra,
  parseRunFlags,
  processExtra,
  RUN_DEFAULTS,
  runReplayArgs,
  RunSpecError,
} from './spec.js';
import { formatReplicaFault } from '../../replica/byzantine.js';

const bad = (flags: Parameters<typeof parseRunFlags>[0]): string => {
  try {
    parseRunFlags(flags);
  } catch (err) {
    expect(err).toBeInstanceOf(RunSpecError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(flags)}`);
};

describe('run spec', () => {
  it('fills the defaults and records the seeds', () => {
    const s = parseRunFlags({ protocol: 'poe' });
    expect(s).toMatchObject({
      protocol: 'poe',
      replicas: 4,
      crashed: 0,
      crashedReplicas: [],
      batch: 100,
      clients: RUN_DEFAULTS.clients,
      warmupS: 40,
      durationS: 20,
    });
    expect(s.keySeed).toBe('poe-bench-run-1');
    expect(s.generator).toBe('ycsb');
    expect(s.backend).toBe('local');
  });

  it('names the flag of every bad input', () => {
    expect(bad({})).toMatch(/--protocol: is required/);
    expect(bad({ protocol: 'raft' })).toMatch(/--protocol: unknown protocol 'raft'/);
    expect(bad({ protocol: 'poe', replicas: '3' })).toMatch(/--replicas: must be >= 4/);
    expect(bad({ protocol: 'poe', replicas: 'four' })).toMatch(/--replicas: must be a number/);
    expect(bad({ protocol: 'poe', batch: '0' })).toMatch(/--batch: must be in \[1, 100000\]/);
    expect(bad({ protocol: 'poe', warmup: '-1' })).toMatch(/--warmup: must be a number >= 0/);
    expect(bad({ protocol: 'poe', backend: 'aws' })).toMatch(/--backend: unknown backend 'aws'/);
    expect(bad({ protocol: 'poe', generator: 'uniform' })).toMatch(/--generator: unknown generator/);
    expect(bad({ protocol: 'poe', basePort: '80' })).toMatch(/--base-port: 80 is a privileged port/);
    expect(bad({ protocol: 'poe', clients: '1', clientProcs: '2' })).toMatch(/--clients: 1 logical clients cannot fill 2/);
    expect(bad({ protocol: 'poe', extra: ['novalue'] })).toMatch(/--extra: 'novalue' is not key=value/);
  });

  it('refuses more crashed replicas than tolerated unless forced, and never a cluster without a primary', () => {
    expect(bad({ protocol: 'pbft', replicas: '7', crashed: '3' })).toMatch(/--crashed: 3 exceeds what pbft tolerates with n = 7 \(f = 2\); pass --force/);
    expect(parseRunFlags({ protocol: 'pbft', replicas: '7', crashed: '3', force: true }).crashedReplicas).toEqual([4, 5, 6]);
    expect(bad({ protocol: 'pbft', replicas: '4', crashed: '4', force: true })).toMatch(/leave no replica to be the primary/);
  });

  it('crashes the highest ids, never replica 0', () => {
    expect(crashedBackups(4, 1)).toEqual([3]);
    expect(crashedBackups(32, 2)).toEqual([30, 31]);
    expect(crashedBackups(4, 0)).toEqual([]);
    const s = makeRunSpec({ protocol: 'poe', replicas: 16, crashed: 1 });
    expect(liveReplicas(s)).toEqual(Array.from({ length: 15 }, (_, i) => i));
  });

  it('gives HotStuff the participating replicas as parallel leaders, user switches last', () => {
    // Every HotStuff spec names its certificate rule, the default ('paper') included (issue 10).
    expect(processExtra(makeRunSpec({ protocol: 'hotstuff', replicas: 4, crashed: 1 }))).toEqual({ leaders: '0,1,2', hotstuffRule: 'paper' });
    expect(processExtra(makeRunSpec({ protocol: 'hotstuff', extra: { leaders: '0,2', hotstuffRule: 'qc' } }))).toEqual({ leaders: '0,2', hotstuffRule: 'qc' });
    expect(processExtra(makeRunSpec({ protocol: 'poe', crashed: 1 }))).toEqual({});
  });

  it('types --extra values', () => {
    expect(parseExtra('mode=chained')).toEqual(['mode', 'chained']);
    expect(parseExtra('depth=3')).toEqual(['depth', 3]);
    expect(parseExtra('fast=true')).toEqual(['fast', true]);
  });

  it('reads --faults: ids or primary, every kind, composed per replica, recorded and round-tripped', () => {
    const s = parseRunFlags({ protocol: 'poe', replicas: '7', faults: ['primary=stopAfter:900', '1=slow:20', '1=crashAt:5000'] });
    expect(s.faults).toEqual([
      { replica: 0, fault: { kind: 'stopAfter', batches: 900 } },
      { replica: 1, fault: { kind: 'slow', delayMs: 20 } },
      { replica: 1, fault: { kind: 'crashAt', atMs: 5000 } },
    ]);
    expect(faultsOf(s, 1)).toEqual([
      { kind: 'slow', delayMs: 20 },
      { kind: 'crashAt', atMs: 5000 },
    ]);
    expect(faultsOf(s, 2)).toEqual([]);
    expect(s.faults.map(formatReplicaFault)).toEqual(['0=stopAfter:900', '1=slow:20', '1=crashAt:5000']);
    expect(makeRunSpec({ protocol: 'poe', replicas: 7, faults: s.faults }).faults).toEqual(s.faults);
    // inTheDark and equivocate need the protocol's proposal hooks (replica/byzantine.ts FaultHooks).
    for (const protocol of registeredProtocols()) {
      const flags = { protocol, faults: ['0=inTheDark:3', '0=equivocate'], force: true };
      if (getProtocol(protocol).faults) {
        expect(parseRunFlags(flags).faults.map((a) => a.fault)).toEqual([{ kind: 'inTheDark', victims: [3] }, { kind: 'equivocate' }]);
      } else {
        expect(bad(flags)).toMatch(
          new RegExp(`protocol ${protocol} has no proposal hooks for 'inTheDark'[^]*protocol ${protocol} has no proposal hooks for 'equivocate'`),
        );
      }
    }
    expect(parseRunFlags({ protocol: 'poe', faults: ['3=silent'] }).faults[0]!.fault).toEqual({ kind: 'silent' });
    expect(parseRunFlags({ protocol: 'poe' }).faults).toEqual([]);
  });

  it('counts crashed backups and faulty replicas together against f', () => {
    expect(faultyReplicas(makeRunSpec({ protocol: 'poe', replicas: 7, crashed: 1, faults: [{ replica: 0, fault: { kind: 'silent' } }] }))).toEqual([0, 6]);
    expect(bad({ protocol: 'poe', crashed: '1', faults: ['primary=stopAfter:900'] })).toMatch(
      /--faults: 2 faulty replicas \(0, 3, the crashed backups 3 included\) exceed what poe tolerates with n = 4 \(f = 1\); pass --force/,
    );
    expect(parseRunFlags({ protocol: 'poe', crashed: '1', faults: ['primary=stopAfter:900'], force: true }).faults.length).toBe(1);
  });

  it('names every bad --faults value', () => {
    expect(bad({ protocol: 'poe', faults: ['stopAfter:900'] })).toMatch(/--faults: 'stopAfter:900' is not REPLICA=FAULT/);
    expect(bad({ protocol: 'poe', faults: ['0=explode'] })).toMatch(/--faults: unknown fault 'explode'/);
    expect(bad({ protocol: 'poe', faults: ['0=stopAfter:x'] })).toMatch(/--faults: fault 'stopAfter:x': batches must be a non-negative number/);
    expect(bad({ protocol: 'poe', faults: ['0=stopAfter:1.5'] })).toMatch(/stopAfter counts batches: give an integer/);
    expect(bad({ protocol: 'poe', faults: ['0=crashAt:-5'] })).toMatch(/--faults: fault 'crashAt:-5': time in ms must be a non-negative number/);
    expect(bad({ protocol: 'poe', faults: ['4=silent'] })).toMatch(/--faults: '4=silent': replica 4 does not exist \(replicas are 0..3\)/);
    expect(bad({ protocol: 'poe', crashed: '1', faults: ['3=slow:5'], force: true })).toMatch(
      /replica 3 is a crashed backup \(--crashed\): it is never started/,
    );
    expect(bad({ protocol: 'poe', faults: ['0=inTheDark:9'] })).toMatch(/victim 9 does not exist/);
    expect(bad({ protocol: 'poe', faults: ['0=inTheDark:0'] })).toMatch(/a replica cannot keep itself in the dark/);
    expect(bad({ protocol: 'poe', faults: ['0=inTheDark:2,3'] })).toMatch(/keeps at most f = 1 replicas in the dark/);
    expect(bad({ protocol: 'poe', faults: ['0=silent', '1=silent'] })).toMatch(/2 faulty replicas \(0, 1\)/);
    expect(bad({ protocol: 'poe', faults: ['0=inTheDark:'] })).toMatch(/inTheDark needs replica ids/);
  });

  it('lets the replicas a Byzantine primary keeps behind lag: in-the-dark victims and deceived backups, never faulty ones', () => {
    const spec = (faults: string[], extra: Record<string, string | boolean> = {}) => parseRunFlags({ protocol: 'poe', replicas: '7', faults, ...extra });
    expect(mayLagReplicas(spec(['0=inTheDark:2,5']))).toEqual([2, 5]);
    expect(mayLagReplicas(spec(['0=equivocate']))).toEqual([4, 5, 6]);
    expect(mayLagReplicas(spec(['0=equivocate', '5=silent']))).toEqual([4, 6]);
    expect(mayLagReplicas(spec(['0=stopAfter:900', '1=slow:5']))).toEqual([]);
    expect(mayLagReplicas(parseRunFlags({ protocol: 'poe', crashed: '1', faults: ['0=inTheDark:3'], force: true }))).toEqual([]);
  });
});

describe('load in transactions (issue 11 item 6)', () => {
  it('--load-txns sets the requests outstanding from the batch size, so a batch sweep holds the load', () => {
    const at = (batch: string) => parseRunFlags({ protocol: 'poe', loadTxns: '2400', batch });
    expect(at('10')).toMatchObject({ clients: 240, loadTxns: 2400 });
    expect(at('100')).toMatchObject({ clients: 24, loadTxns: 2400 });
    expect(at('300')).toMatchObject({ clients: 8, loadTxns: 2400 });
    expect(outstandingTxns(at('300'))).toBe(2400);
    // Never fewer requests than client machines.
    expect(parseRunFlags({ protocol: 'poe', loadTxns: '10', batch: '100', clientProcs: '2' }).clients).toBe(2);
  });

  it('--load-txns with --clients or --open-loop is refused', () => {
    expect(() => parseRunFlags({ protocol: 'poe', loadTxns: '100', clients: '4' })).toThrow(/--load-txns/);
    expect(() => parseRunFlags({ protocol: 'poe', loadTxns: '100', openLoop: '4' })).toThrow(/--load-txns/);
  });

  it('client timeouts follow the latency unless given, for zyzzyva, or with faults', () => {
    expect(parseRunFlags({ protocol: 'poe' }).clientTimeoutFixed).toBe(false);
    expect(parseRunFlags({ protocol: 'poe', clientTimeoutMs: '500' }).clientTimeoutFixed).toBe(true);
    expect(parseRunFlags({ protocol: 'zyzzyva' }).clientTimeoutFixed).toBe(true);
    expect(parseRunFlags({ protocol: 'poe', faults: ['primary=stopAfter:900'] }).clientTimeoutFixed).toBe(true);
  });

  it('--node-flags: every process gets the default young generation unless told otherwise; the flags are recorded and replayed', () => {
    expect(parseRunFlags({ protocol: 'poe' }).nodeFlags).toEqual(['--max-semi-space-size=32', '--initial-old-space-size=64']);
    expect(runReplayArgs(parseRunFlags({ protocol: 'poe' }))).not.toContain('--node-flags');
    const none = parseRunFlags({ protocol: 'poe', nodeFlags: 'none' });
    expect(none.nodeFlags).toEqual([]);
    expect(runReplayArgs(none)).toEqual(expect.arrayContaining(['--node-flags', 'none']));
    const two = parseRunFlags({ protocol: 'pbft', nodeFlags: 'max-semi-space-size=64, trace-gc' });
    expect(two.nodeFlags).toEqual(['--max-semi-space-size=64', '--trace-gc']);
    // A recorded spec handed back runs with the same flags.
    expect(makeRunSpec(two).nodeFlags).toEqual(two.nodeFlags);
    expect(makeRunSpec(none).nodeFlags).toEqual([]);
    for (const text of ['--trace-gc', 'a b', 'x;rm -rf', 'ok,', '=1']) expect(bad({ protocol: 'poe', nodeFlags: text }), text).toMatch(/--node-flags/);
  });
});
