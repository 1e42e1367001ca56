/**
 * Calibration (issue 12 item 2): the per-operation CPU costs of the cost model (cost-model.ts),
 * measured on this machine, and the fixed costs fitted from short real runs. A calibration file
 * records the machine, CPU model, Node version and date, and for every cost where it came from.
 *
 * Micro-benchmarks here: node:crypto Ed25519 sign and verify at the message sizes the cores sign,
 * HMAC-SHA256 and SHA-256 by bytes, each protocol's codec on the frames a short simulation
 * produces, the YCSB store per write. Each is a least-squares line (fixed + per byte) over
 * several sizes. The fit of the fixed per-message cost from real runs lives in
 * experiments/calibrate.ts (it needs the run machinery above this layer).
 */
import * as nodeCrypto from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { cpus, hostname, totalmem } from 'node:os';
import type { ProtocolModule } from '../../replica/protocol.js';
import { getProtocol } from '../../replica/protocols.js';
import { YcsbStore } from '../../replica/store.js';
import type { WireMessage } from '../../replica/types.js';
import type { LinearCost, OpCosts } from './cost-model.js';
import { Simulation } from './simulator.js';
import { FrameMac } from '../process/transport.js';

export const CALIBRATION_VERSION = 1;

/** One cost and where it came from. */
export interface CostSource {
  readonly source: string;
  /** The sizes (bytes) it was measured at, if by size. */
  readonly sizes?: readonly number[];
  /** Microseconds per operation measured at each size. */
  readonly measuredUs?: readonly number[];
}

export interface FitPoint {
  readonly protocol: string;
  readonly replicas: number;
  readonly batch: number;
  readonly clients: number;
  /** Measured on the local backend: CPU ms per accepted batch over all processes, and throughput. */
  readonly cpuMsPerBatch: number;
  readonly txnPerSec: number;
  /** Counted in the simulator for the same configuration: messages received + frames sent per batch. */
  readonly messagesPerBatch: number;
  /** The bytes of those frames (sent + received) per batch. */
  readonly ioBytesPerBatch: number;
  /** Modelled CPU ms per batch from the micro-benchmarked operations alone. */
  readonly opCpuMsPerBatch: number;
  /** Cores the run's processes used together in the window (sum of CPU% / 100): what this machine gave them. */
  readonly cpuCores: number;
  /**
   * The real run's warm-up (s) and whether it was in steady state (infra/run/steady.ts: throughput
   * and memory settled, no drift); absent in calibrations before they were recorded.
   */
  readonly warmupSec?: number;
  readonly steady?: boolean;
  /**
   * Per process (metrics names: "replica 0", "client 0"): CPU ms per accepted batch measured,
   * and what the simulator counted for that node per batch. The fit uses one equation per
   * process when present (calibrations before this had only the totals above).
   */
  readonly processes?: readonly FitProcess[];
}

export interface FitProcess {
  readonly name: string;
  readonly cpuMsPerBatch: number;
  readonly opCpuMsPerBatch: number;
  readonly messagesIn: number;
  readonly framesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /**
   * Socket reads and writes per accepted batch: the real process's frames per read and per
   * write (its transport counters over the run) applied to the frames the simulator counts for
   * the node per batch. Absent in calibrations before reads and writes were fitted.
   */
  readonly reads?: number;
  readonly writes?: number;
}

/** Costs added after the first calibration files: optional in a file, 0 (or, for ioPerByteOutUs, ioPerByteUs) when absent. */
type LaterCost = (typeof OPTIONAL_LINEAR_COSTS)[number] | (typeof OPTIONAL_SCALAR_COSTS)[number];

/** The fixed costs fitted from real runs (experiments/calibrate.ts), not micro-benchmarked. */
type FittedCost = 'perMessageInUs' | 'perFrameOutUs' | 'perStepUs' | 'ioPerByteUs' | 'ioPerByteOutUs' | 'perReadUs' | 'perWriteUs';

export interface CalibrationFile {
  readonly version: number;
  readonly machine: {
    readonly hostname: string;
    readonly cpuModel: string;
    readonly cores: number;
    readonly memoryGB: number;
    readonly node: string;
    readonly platform: string;
  };
  readonly date: string;
  readonly costs: OpCosts;
  /** Where each cost came from; the costs added later (perReadUs, perWriteUs, ioPerByteOutUs, frameMac) may be absent from older files. */
  readonly sources: Readonly<Record<Exclude<keyof OpCosts, LaterCost>, CostSource>> & Partial<Record<LaterCost, CostSource>>;
  /** The real runs the fixed costs were fitted to (disjoint from validation points). */
  readonly fitPoints: readonly FitPoint[];
  /** Filled by `poe-bench model validate` with the calibration it checked. */
  readonly validation?: unknown;
}

export function machineInfo(): CalibrationFile['machine'] {
  return {
    hostname: hostname(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

/** Least-squares line through (size, us) points; a negative intercept or slope is clamped to 0 and the other refitted. */
export function fitLine(sizes: readonly number[], us: readonly number[]): LinearCost {
  const n = sizes.length;
  if (n === 0 || n !== us.length) throw new RangeError('fitLine: need as many sizes as measurements, at least one');
  const mx = sizes.reduce((a, b) => a + b, 0) / n;
  const my = us.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (sizes[i]! - mx) * (us[i]! - my);
    sxx += (sizes[i]! - mx) ** 2;
  }
  let perByteUs = sxx > 0 ? sxy / sxx : 0;
  let fixedUs = my - perByteUs * mx;
  if (perByteUs < 0) {
    perByteUs = 0;
    fixedUs = my;
  }
  if (fixedUs < 0) {
    fixedUs = 0;
    const sx2 = sizes.reduce((a, x) => a + x * x, 0);
    perByteUs = sx2 > 0 ? sizes.reduce((a, x, i) => a + x * us[i]!, 0) / sx2 : 0;
  }
  return { fixedUs, perByteUs };
}

/**
 * Median CPU microseconds (user + system of this process) per call of `fn` over `rounds` rounds
 * of `iterations` calls. CPU time, not wall time: on a machine shared with other work, wall time
 * counts the waits for a core too.
 */
export function timeUs(fn: () => void, iterations: number, rounds = 5): number {
  const samples: number[] = [];
  for (let i = 0; i < Math.min(50, iterations); i++) fn(); // warm up
  for (let r = 0; r < rounds; r++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < iterations; i++) fn();
    const d = process.cpuUsage(t0);
    samples.push((d.user + d.system) / iterations);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

const SIZES = [32, 128, 512, 2048, 8192];
/** Frame MAC sizes: below the transport's MAC_DIGEST_FROM (1 KB), the path short frames take. */
const FRAME_MAC_SIZES = [32, 128, 512, 1000];

function measureLinear(make: (size: number) => () => void, iterations: (size: number) => number, sizes = SIZES): { cost: LinearCost; measuredUs: number[] } {
  const measuredUs = sizes.map((s) => timeUs(make(s), iterations(s)));
  return { cost: fitLine(sizes, measuredUs), measuredUs };
}

/** Frames of a protocol as the simulator produces them, with their messages, for codec timing. */
function sampleFrames(protocol: string, n: number): { msg: WireMessage; frame: Buffer }[] {
  const base = getProtocol(protocol);
  const samples: { msg: WireMessage; frame: Buffer }[] = [];
  const module: ProtocolModule<WireMessage> = {
    ...base,
    codec: {
      encode: (m) => {
        const frame = base.codec.encode(m);
        if (samples.length < 4000) samples.push({ msg: m, frame });
        return frame;
      },
      decode: (f) => base.codec.decode(f),
    },
  };
  new Simulation({ protocol, n, seed: 1, batches: 60, batchSize: 100, clients: 8, valueBytes: 64, module }).run();
  return samples;
}

/** Codec cost per frame over every protocol's frames, fitted by frame size. */
function measureCodec(protocols: readonly string[]): { encode: LinearCost; decode: LinearCost; sizes: number[]; encodeUs: number[]; decodeUs: number[] } {
  const sizes: number[] = [];
  const encodeUs: number[] = [];
  const decodeUs: number[] = [];
  for (const p of protocols) {
    const codec = getProtocol(p).codec;
    // Group the frames by type and size: one measurement per group.
    const groups = new Map<string, { msg: WireMessage; frame: Buffer }[]>();
    for (const s of sampleFrames(p, 4)) {
      const key = `${s.msg.type}/${Math.round(Math.log2(s.frame.length))}`;
      const g = groups.get(key) ?? [];
      g.push(s);
      groups.set(key, g);
    }
    for (const g of groups.values()) {
      const items = g.slice(0, 50);
      const size = items.reduce((a, s) => a + s.frame.length, 0) / items.length;
      const iters = Math.max(500, Math.round(5_000_000 / (size + 200)));
      let i = 0;
      sizes.push(size);
      encodeUs.push(timeUs(() => codec.encode(items[i++ % items.length]!.msg), iters));
      decodeUs.push(timeUs(() => codec.decode(items[i++ % items.length]!.frame), iters));
    }
  }
  return { encode: fitLine(sizes, encodeUs), decode: fitLine(sizes, decodeUs), sizes, encodeUs, decodeUs };
}

/** Executing one YCSB write with undo (speculative protocols keep undo; the cheaper path is not separated). */
function measureExecution(valueBytes: number): number {
  const records = 600_000;
  const store = new YcsbStore(records, valueBytes);
  const batch = 100;
  let k = 0;
  let seed = 1;
  const writesFor = (): { key: number; value: Buffer }[] =>
    Array.from({ length: batch }, () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return { key: seed % records, value: Buffer.alloc(valueBytes, seed & 0xff) };
    });
  const batches = Array.from({ length: 64 }, writesFor);
  const perBatchUs = timeUs(() => {
    k++;
    store.apply(k, batches[k % batches.length]!, true);
    if (k % 200 === 0) store.forget(k - 100);
  }, 400);
  return perBatchUs / batch;
}

export interface MicroResult {
  readonly costs: Omit<OpCosts, FittedCost>;
  readonly sources: Omit<CalibrationFile['sources'], FittedCost>;
}

/** Measures every per-operation cost on this machine (a few seconds). */
export function measureOperations(protocols: readonly string[], valueBytes = 64): MicroResult {
  const seed = nodeCrypto.createHash('sha256').update('calibration').digest();
  const priv = nodeCrypto.createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const pub = nodeCrypto.createPublicKey(priv);
  const msg = (size: number): Buffer => Buffer.alloc(size, 7);
  const sign = measureLinear(
    (s) => {
      const m = msg(s);
      return () => nodeCrypto.sign(null, m, priv);
    },
    () => 2000,
  );
  const verify = measureLinear(
    (s) => {
      const m = msg(s);
      const sig = nodeCrypto.sign(null, m, priv);
      return () => nodeCrypto.verify(null, m, pub, sig);
    },
    () => 2000,
  );
  const key = Buffer.alloc(32, 1);
  const hmac = measureLinear(
    (s) => {
      const m = msg(s);
      return () => nodeCrypto.createHmac('sha256', key).update(m).digest();
    },
    (s) => Math.max(2000, Math.round(20_000_000 / (s + 500))),
  );
  // The transport's frame MAC as it runs (FrameMac.into), by the bytes it hashes, as the cost
  // model charges it (mac-bytes.ts). Fitted on payloads below MAC_DIGEST_FROM only: those are
  // MAC'd whole (two SHA-256s over pad and payload), and most frames (votes, replies, a
  // broadcast's later copies) are; a longer payload goes through its own SHA-256 first, a second
  // path that a line through both would blur into the short frames' fixed cost.
  const frameMacer = new FrameMac(key);
  const macOut = Buffer.alloc(32);
  const frameMac = measureLinear(
    (s) => {
      const m = msg(s);
      return () => frameMacer.into(m, macOut, 0);
    },
    (s) => Math.max(2000, Math.round(20_000_000 / (s + 500))),
    FRAME_MAC_SIZES,
  );
  const sha = measureLinear(
    (s) => {
      const m = msg(s);
      return () => nodeCrypto.createHash('sha256').update(m).digest();
    },
    (s) => Math.max(2000, Math.round(20_000_000 / (s + 500))),
  );
  const codec = measureCodec(protocols);
  const executeTxnUs = measureExecution(valueBytes);
  const sized = (what: string, r: { measuredUs: number[] }, sizes = SIZES): CostSource => ({
    source: `${what}: median of 5 loops per size, CPU time (process.cpuUsage) on this machine, least-squares line`,
    sizes,
    measuredUs: r.measuredUs.map((x) => Math.round(x * 1000) / 1000),
  });
  const round3 = (xs: number[]): number[] => xs.map((x) => Math.round(x * 1000) / 1000);
  return {
    costs: {
      ed25519Sign: sign.cost,
      ed25519Verify: verify.cost,
      hmac: hmac.cost,
      frameMac: frameMac.cost,
      sha256: sha.cost,
      encode: codec.encode,
      decode: codec.decode,
      executeTxnUs,
    },
    sources: {
      ed25519Sign: sized('node:crypto sign(null, msg, ed25519 key)', sign),
      ed25519Verify: sized('node:crypto verify(null, msg, ed25519 key, sig)', verify),
      hmac: sized('node:crypto createHmac(sha256) as the cores compute it (their crypto provider)', hmac),
      frameMac: sized('the transport frame MAC (infra/process/transport.ts FrameMac.into) by bytes hashed, payloads below 1 KB', frameMac, FRAME_MAC_SIZES),
      sha256: sized('node:crypto createHash(sha256)', sha),
      encode: {
        source: `the ${protocols.join(', ')} codecs encoding the messages of a short simulation (n=4, batch 100), grouped by type and size, least-squares line by frame bytes`,
        sizes: round3(codec.sizes),
        measuredUs: round3(codec.encodeUs),
      },
      decode: { source: 'the same frames decoded', sizes: round3(codec.sizes), measuredUs: round3(codec.decodeUs) },
      executeTxnUs: { source: `YcsbStore.apply with undo, 600K records of ${valueBytes} bytes, batches of 100 random writes, per write` },
    },
  };
}

export function writeCalibration(path: string, c: CalibrationFile): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(c, null, 2)}\n`);
}

/** Reads and checks a calibration file: every cost present, finite and >= 0, with a source. */
export function readCalibration(path: string): CalibrationFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`calibration ${path}: cannot read (${(err as Error).message}); run \`poe-bench calibrate\` first`);
  }
  return checkCalibration(raw, path);
}

const LINEAR_COSTS = ['ed25519Sign', 'ed25519Verify', 'hmac', 'sha256', 'encode', 'decode'] as const;
const SCALAR_COSTS = ['executeTxnUs', 'perMessageInUs', 'perFrameOutUs', 'perStepUs', 'ioPerByteUs'] as const;
/** Costs added later (LaterCost), absent from older files (the model falls back: frameMac to hmac, the others as LaterCost says). */
const OPTIONAL_LINEAR_COSTS = ['frameMac'] as const;
const OPTIONAL_SCALAR_COSTS = ['ioPerByteOutUs', 'perReadUs', 'perWriteUs'] as const;

export function checkCalibration(raw: unknown, where: string): CalibrationFile {
  const c = raw as CalibrationFile;
  const bad = (what: string): never => {
    throw new RangeError(`calibration ${where}: ${what}`);
  };
  if (typeof c !== 'object' || c === null) bad('not an object');
  if (c.version !== CALIBRATION_VERSION) bad(`version ${String(c.version)}, this build reads ${CALIBRATION_VERSION}`);
  for (const k of ['hostname', 'cpuModel', 'node'] as const) if (typeof c.machine?.[k] !== 'string') bad(`machine.${k} missing`);
  if (typeof c.date !== 'string' || Number.isNaN(Date.parse(c.date))) bad('date missing or not a date');
  const ok = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  const linear = (k: keyof OpCosts): boolean => {
    const v = c.costs?.[k] as { fixedUs?: unknown; perByteUs?: unknown } | undefined;
    return ok(v?.fixedUs) && ok(v?.perByteUs);
  };
  const check = (k: keyof OpCosts, isLinear: boolean, optional: boolean): void => {
    if (optional && c.costs?.[k] === undefined) return;
    if (isLinear ? !linear(k) : !ok(c.costs?.[k])) bad(isLinear ? `costs.${k} must be { fixedUs, perByteUs } >= 0` : `costs.${k} must be a number >= 0`);
    if (typeof c.sources?.[k]?.source !== 'string') bad(`sources.${k}.source missing: every cost says where it came from`);
  };
  for (const k of LINEAR_COSTS) check(k, true, false);
  for (const k of SCALAR_COSTS) check(k, false, false);
  for (const k of OPTIONAL_LINEAR_COSTS) check(k, true, true);
  for (const k of OPTIONAL_SCALAR_COSTS) check(k, false, true);
  if (!Array.isArray(c.fitPoints)) bad('fitPoints must be an array');
  return c;
}
