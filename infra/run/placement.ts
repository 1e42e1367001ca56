/**
 * The run flags that choose where processes run and what links they get (DESIGN.md
 * "Backends"): --backend, --link, --hosts, --pin, --cpus, --subnet, --base-image. Parsed here,
 * so infra/run/spec.ts only hands them over and records the result in the spec.
 *
 * Which flag goes with which backend:
 *   --link <profile>       every backend (infra/link.ts)
 *   --hosts <file>         ssh (required)
 *   --pin <auto|cpus>      local, netns, docker: node k runs on CPU cpus[k mod len]
 *   --cpus <n>             docker: CPU limit per container
 *   --subnet <cidr>        netns (default 10.222.0.0/16), docker (default 10.223.0.0/16)
 *   --base-image <image>   docker (default: imported from this machine's Node)
 */
import type { Command } from 'commander';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { formatLinkSpec, LinkSpecError, parseLinkSpec } from '../link.js';
import { HostsFileError, loadHostsFile } from '../ssh/hosts.js';
import { parseSubnet, SubnetError } from '../netns/subnet.js';
import { defineParams, flagName, RUN_BACKENDS } from '../params.js';

export type InfraBackend = (typeof RUN_BACKENDS)[number];
export const INFRA_BACKENDS: readonly InfraBackend[] = RUN_BACKENDS;

/** Backend-specific settings, recorded with the spec (absent ones are not set). */
export interface InfraSpec {
  /** ssh: the hosts file, absolute. */
  readonly hosts?: string;
  /** local, netns, docker: CPUs to pin nodes to, round-robin. */
  readonly pinCpus?: readonly number[];
  /** docker: CPU limit per container. */
  readonly cpus?: number;
  /** netns, docker: the private subnet of the nodes. */
  readonly subnet?: string;
  /** docker: the base image with Node.js. */
  readonly baseImage?: string;
}

export interface InfraFlags {
  readonly link?: string;
  readonly hosts?: string;
  readonly pin?: string;
  readonly cpus?: string;
  readonly subnet?: string;
  readonly baseImage?: string;
}

const INFRA_KEYS: readonly (keyof InfraFlags)[] = ['link', 'hosts', 'pin', 'cpus', 'subnet', 'baseImage'];

/** Their flags (from the table of run parameters, infra/params.ts). */
export const INFRA_FLAG_NAMES = Object.fromEntries(INFRA_KEYS.map((k) => [k, flagName('run', k)])) as Record<keyof InfraFlags, string>;

const ONLY: Record<Exclude<keyof InfraFlags, 'link'>, readonly InfraBackend[]> = {
  hosts: ['ssh'],
  pin: ['local', 'netns', 'docker'],
  cpus: ['docker'],
  subnet: ['netns', 'docker'],
  baseImage: ['docker'],
};

/** `auto` (every CPU this process may use) or a list like 0,1,3 or 0-3. */
export function parsePin(text: string, cpuCount: number = availableParallelism()): number[] {
  if (text === 'auto') return Array.from({ length: cpuCount }, (_, i) => i);
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new RangeError(`'${part}' is not a CPU number or range (e.g. 0,1 or 0-3, or auto)`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw new RangeError(`'${part}': the range runs backwards`);
    for (let c = from; c <= to; c++) {
      if (c >= cpuCount) throw new RangeError(`CPU ${c} does not exist here (CPUs 0-${cpuCount - 1})`);
      out.push(c);
    }
  }
  return out;
}

export interface ParsedInfra {
  readonly link: string;
  readonly infra: InfraSpec;
  readonly issues: readonly string[];
}

/** Validates the infra flags for `backend`; every problem is an issue naming its flag. */
export function parseInfraFlags(backend: string, flags: InfraFlags): ParsedInfra {
  const issues: string[] = [];
  let link = 'none';
  try {
    link = formatLinkSpec(parseLinkSpec(flags.link));
  } catch (err) {
    if (!(err instanceof LinkSpecError)) throw err;
    issues.push(`--link: ${err.message}`);
  }
  const b = backend as InfraBackend;
  if (!INFRA_BACKENDS.includes(b)) return { link, infra: {}, issues };
  for (const key of Object.keys(ONLY) as (keyof typeof ONLY)[]) {
    if (flags[key] !== undefined && !ONLY[key].includes(b))
      issues.push(`${INFRA_FLAG_NAMES[key]}: only for --backend ${ONLY[key].join(' or ')} (this run uses ${b})`);
  }
  const infra: { -readonly [K in keyof InfraSpec]: InfraSpec[K] } = {};
  if (b === 'ssh') {
    if (flags.hosts === undefined) issues.push('--hosts: the ssh backend needs a hosts file (YAML or JSON: user, host, port, key, role)');
    else {
      const path = resolve(flags.hosts);
      try {
        loadHostsFile(path);
        infra.hosts = path;
      } catch (err) {
        if (!(err instanceof HostsFileError)) throw err;
        issues.push(`--hosts: ${err.message}`);
      }
    }
  }
  if (flags.pin !== undefined && ONLY.pin.includes(b)) {
    try {
      infra.pinCpus = parsePin(flags.pin);
    } catch (err) {
      issues.push(`--pin: ${(err as Error).message}`);
    }
  }
  if (flags.cpus !== undefined && b === 'docker') {
    const x = Number(flags.cpus);
    if (!Number.isFinite(x) || x <= 0) issues.push(`--cpus: must be a number > 0 (got '${flags.cpus}')`);
    else if (x > availableParallelism()) issues.push(`--cpus: ${x} is more than the ${availableParallelism()} CPUs here`);
    else infra.cpus = x;
  }
  if (flags.subnet !== undefined && ONLY.subnet.includes(b)) {
    try {
      infra.subnet = parseSubnet(flags.subnet).text;
    } catch (err) {
      if (!(err instanceof SubnetError)) throw err;
      issues.push(`--subnet: ${err.message}`);
    }
  }
  if (flags.baseImage !== undefined && b === 'docker') {
    if (!/^[a-z0-9][a-z0-9._/:@-]*$/i.test(flags.baseImage)) issues.push(`--base-image: '${flags.baseImage}' is not an image reference`);
    else infra.baseImage = flags.baseImage;
  }
  return { link, infra, issues };
}

/** Declares the infra flags on a command that runs specs (figure), from the table of run parameters. */
export function defineInfraRunOptions(cmd: Command): Command {
  return defineParams(cmd, 'figure', INFRA_KEYS);
}
