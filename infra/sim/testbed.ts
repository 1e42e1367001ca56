/**
 * Testbed profiles for the cost model (issue 12 item 2): what machines the nodes run on. Every
 * assumption carries its source. Built in: `local` (this machine as it is: the replicas and the
 * client processes share its cores), `c5.2xlarge` (the paper's testbed, poe-paper.txt line 411,
 * running this code: single-threaded replica processes) and `c5.2xlarge-pipeline` (the same
 * machines with the paper's §4 thread pipeline, lines 358-381). Any other: a JSON file of the
 * same shape (`--testbed FILE`).
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { CostModelConfig, NodeCpu, OpCosts } from './cost-model.js';
import type { DelaySpec } from './network.js';

export interface Testbed {
  readonly name: string;
  readonly description: string;
  readonly replica: NodeCpu;
  readonly client: NodeCpu;
  /** Every node on one host of this many cores (undefined: each node has its own machine). */
  readonly sharedHostCores?: number;
  /** Egress bandwidth per node, bits per second; null in JSON means no limit (loopback). */
  readonly replicaNicBitsPerSec: number | null;
  readonly clientNicBitsPerSec: number | null;
  readonly wireOverheadBytes: number;
  /** One-way propagation delay of every link. */
  readonly delay: DelaySpec;
  /** Client machines (processes) the logical clients are spread over; undefined: the run's own. */
  readonly clientMachines?: number;
  /** Where each number came from, by field. */
  readonly sources: Readonly<Record<string, string>>;
}

/**
 * The local backend: the run's processes on this machine's cores, or on `availableCores` of
 * them (what other work left of the machine: `model validate` models a real run's window so).
 * Cores a saturated run leaves idle while its processes wait on one another are not taken off
 * here: the model produces them (cost-model.ts turnEnd).
 */
export function localTestbed(availableCores?: number): Testbed {
  const all = cpus().length;
  const cores = availableCores === undefined ? all : Math.max(0.01, Math.min(all, Math.round(availableCores * 100) / 100));
  return {
    name: 'local',
    description: `this machine as it is: ${cores} cores shared by every replica and client process`,
    replica: { cores: 1, speed: 1 },
    client: { cores: 1, speed: 1 },
    sharedHostCores: cores,
    replicaNicBitsPerSec: null,
    clientNicBitsPerSec: null,
    wireOverheadBytes: 36,
    delay: { baseMs: 0.05, jitterMs: 0.05, tailMeanMs: 0 },
    sources: {
      sharedHostCores:
        availableCores === undefined
          ? 'os.cpus().length on this machine; the local backend places every process on it (infra/local)'
          : `what other work left of the machine (${availableCores.toFixed(2)} of ${all} cores; a fractional share is whole cores at that fraction of the speed)`,
      replica: 'a replica process is one Node.js thread (infra/process/replica-main.ts); speed 1 = the calibration machine',
      client: 'a client process is one Node.js thread (infra/process/client-main.ts)',
      replicaNicBitsPerSec: 'loopback: no NIC; the kernel copy is CPU time, inside the fitted per-frame cost',
      wireOverheadBytes: 'transport header: u32 length + 32-byte HMAC per frame (infra/process/transport.ts)',
      delay: 'assumption: loopback latency of a few tens of microseconds; the fitted fixed costs absorb the rest',
    },
  };
}

const C5_SOURCES = {
  replica:
    'paper line 411: c5.2xlarge, 8 cores (vCPUs), Intel Xeon Skylake SP up to 3.4 GHz. speed 1 is an ASSUMPTION (one c5 vCPU as fast as one core of the calibration machine): no measurement here; set `speed` in a profile file if known',
  client: 'paper line 411: clients on 10 machines of 4 cores; each machine is modelled as one client process of this harness (single-threaded)',
  clientMachines: 'paper line 411: 10 client machines',
  replicaNicBitsPerSec:
    'AWS EC2 instance network specifications: c5.2xlarge has a baseline bandwidth of 2.5 Gbit/s ("up to 10 Gbit/s" in bursts); a 180 s run (paper line 411) outlasts the burst, so the baseline is used',
  wireOverheadBytes: 'transport header 36 bytes (infra/process/transport.ts) + about 52 bytes of TCP/IP headers per frame (one segment for most frames)',
  delay: 'ASSUMPTION: 0.5 ms round trip within one AWS region and availability zone (0.25 ms one way) with 0.05 ms jitter; the paper gives no network latency',
};

export function c5Testbed(pipeline: boolean): Testbed {
  return {
    name: pipeline ? 'c5.2xlarge-pipeline' : 'c5.2xlarge',
    description: pipeline
      ? "the paper's testbed (c5.2xlarge replicas, 10 client machines) with the paper's multi-threaded replica pipeline"
      : "the paper's testbed (c5.2xlarge replicas, 10 client machines) running this code's single-threaded replica processes",
    replica: pipeline ? { cores: 8, speed: 1, pipeline: { inputLanes: 3, outputLanes: 2 } } : { cores: 8, speed: 1 },
    client: { cores: 4, speed: 1 },
    replicaNicBitsPerSec: 2.5e9,
    clientNicBitsPerSec: 2.5e9,
    wireOverheadBytes: 36 + 52,
    delay: { baseMs: 0.25, jitterMs: 0.05, tailMeanMs: 0 },
    clientMachines: 10,
    sources: pipeline
      ? {
          ...C5_SOURCES,
          pipeline:
            'paper §4 lines 358-381: one input thread for clients and two for replicas (3 input lanes), two output threads (2 output lanes), one worker and one execute thread (the protocol lane)',
        }
      : C5_SOURCES,
  };
}

/** A built-in profile by name, or a JSON file. */
export function loadTestbed(nameOrFile: string): Testbed {
  if (nameOrFile === 'local') return localTestbed();
  if (nameOrFile === 'c5.2xlarge') return c5Testbed(false);
  if (nameOrFile === 'c5.2xlarge-pipeline') return c5Testbed(true);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(nameOrFile, 'utf8'));
  } catch (err) {
    throw new Error(`testbed '${nameOrFile}': not local, c5.2xlarge or c5.2xlarge-pipeline, and not a readable JSON file (${(err as Error).message})`);
  }
  return checkTestbed(raw, nameOrFile);
}

function checkTestbed(raw: unknown, where: string): Testbed {
  const t = raw as Testbed;
  const num = (x: unknown, what: string, min = 0): void => {
    if (typeof x !== 'number' || !Number.isFinite(x) || x < min)
      throw new RangeError(`testbed ${where}: ${what} must be a number >= ${min}, got ${JSON.stringify(x)}`);
  };
  if (typeof t !== 'object' || t === null) throw new RangeError(`testbed ${where}: not an object`);
  if (typeof t.name !== 'string') throw new RangeError(`testbed ${where}: name must be a string`);
  for (const role of ['replica', 'client'] as const) {
    num(t[role]?.cores, `${role}.cores`, 1);
    num(t[role]?.speed, `${role}.speed`, 1e-6);
  }
  if (t.sharedHostCores !== undefined) num(t.sharedHostCores, 'sharedHostCores', 1);
  for (const k of ['replicaNicBitsPerSec', 'clientNicBitsPerSec'] as const) if (t[k] !== null) num(t[k], k, 1);
  num(t.wireOverheadBytes, 'wireOverheadBytes');
  num(t.delay?.baseMs, 'delay.baseMs');
  num(t.delay?.jitterMs, 'delay.jitterMs');
  num(t.delay?.tailMeanMs, 'delay.tailMeanMs');
  if (typeof t.sources !== 'object' || t.sources === null) throw new RangeError(`testbed ${where}: sources (where each number came from) is required`);
  return { ...t, description: typeof t.description === 'string' ? t.description : '' };
}

/** The cost model for a testbed and a calibration's operation costs. */
export function costModelConfig(testbed: Testbed, costs: OpCosts): CostModelConfig {
  return {
    costs,
    replica: testbed.replica,
    client: testbed.client,
    ...(testbed.sharedHostCores === undefined ? {} : { sharedHostCores: testbed.sharedHostCores }),
    replicaNicBitsPerSec: testbed.replicaNicBitsPerSec ?? Infinity,
    clientNicBitsPerSec: testbed.clientNicBitsPerSec ?? Infinity,
    wireOverheadBytes: testbed.wireOverheadBytes,
  };
}
