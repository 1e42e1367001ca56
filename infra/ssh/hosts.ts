/**
 * The ssh backend's hosts file (`--hosts`), YAML or JSON, validated with zod so every bad
 * field is named with its place in the file:
 *
 *   defaults:                  # optional, for every host below
 *     user: root
 *     port: 22
 *     key: ~/.ssh/id_ed25519   # private key (OpenSSH or PEM); no passphrase
 *     node: node               # the Node.js (>= 20) binary on the hosts
 *     workDir: ~/.poe-bench    # where builds are unpacked on the hosts
 *     installNode: true        # no Node.js there? ship this machine's (same OS and CPU)
 *   hosts:
 *     - { host: 203.0.113.10, address: 10.0.0.10, role: replica }
 *     - { host: 203.0.113.11, role: client, user: admin }
 *
 * `host` is where the harness connects; `address` (default: host) is where the other nodes
 * reach this one. Replica ids go to the replica hosts round-robin in file order, client
 * machines likewise, so one host can carry several processes. `hostKeySha256` (the base64
 * SHA256 fingerprint `ssh-keygen -lf` prints, without "SHA256:") pins a host key; without it
 * the host key is not checked (fresh cloud machines have keys nobody knows yet).
 *
 * `poe-bench infra aws up` writes hosts.json in its own format (ProvisionedHosts); this loader
 * accepts that too, so `--hosts <run dir>/hosts.json` drives the machines it created.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { ProvisionedHosts } from '../aws/create.js';

export type HostRole = 'replica' | 'client';

/** One login to one machine. */
export interface SshHost {
  /** user@host:port, for messages. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly keyPath: string;
  /** Where the other nodes reach this machine. */
  readonly address: string;
  readonly role: HostRole;
  readonly node: string;
  /** Absolute, or starting with `~/` (the remote home). */
  readonly workDir: string;
  /** Where Node.js is missing, ship this machine's (same OS and architecture only). */
  readonly installNode: boolean;
  readonly hostKeySha256?: string;
}

export interface SshHosts {
  readonly replicas: readonly SshHost[];
  readonly clients: readonly SshHost[];
  /** Ports replicas must listen in (a cloud firewall opens only these); absent: any. */
  readonly portRange?: { readonly fromPort: number; readonly toPort: number };
  /** Where the hosts came from, for messages. */
  readonly source: string;
}

export class HostsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostsFileError';
  }
}

const DEFAULTS = { user: 'root', port: 22, key: '~/.ssh/id_ed25519', node: 'node', workDir: '~/.poe-bench', installNode: true } as const;

const hostName = z
  .string()
  .min(1, 'must not be empty')
  .regex(/^[A-Za-z0-9.:_-]+$/, 'must be a host name or an IP address');
const common = {
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_.-]{0,31}$/i, 'must be a Unix user name')
    .optional(),
  port: z.number({ invalid_type_error: 'must be a number' }).int('must be an integer').min(1).max(65_535).optional(),
  key: z.string().min(1).optional(),
  node: z
    .string()
    .regex(/^[A-Za-z0-9_./~-]+$/, 'must be a command name or a path (no spaces or shell characters)')
    .optional(),
  workDir: z
    .string()
    .regex(/^(\/|~\/)[A-Za-z0-9_./-]*$/, 'must be an absolute path or start with ~/ (no spaces or shell characters)')
    .optional(),
  installNode: z.boolean({ invalid_type_error: 'must be true or false' }).optional(),
  hostKeySha256: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=?$/, 'must be a base64 SHA256 fingerprint (as ssh-keygen -lf prints it, without "SHA256:")')
    .optional(),
};
const hostSchema = z
  .object({
    host: hostName,
    address: hostName.optional(),
    role: z.enum(['replica', 'client'], { errorMap: () => ({ message: "must be 'replica' or 'client'" }) }),
    ...common,
  })
  .strict();
const fileSchema = z
  .object({
    defaults: z.object(common).strict().optional(),
    hosts: z.array(hostSchema).min(1, 'must list at least one host'),
  })
  .strict();

const provisionedHost = z.object({ publicIp: z.string().min(1), privateIp: z.string().min(1), instanceId: z.string() });
const provisionedSchema = z.object({
  runId: z.string(),
  region: z.string(),
  replicas: z.array(provisionedHost).min(1),
  clients: z.array(provisionedHost).min(1),
  sshUser: z.string(),
  sshPort: z.number().int(),
  privateKeyPath: z.string(),
  portRange: z.object({ fromPort: z.number().int(), toPort: z.number().int() }),
  expiresAt: z.string(),
});

function expandHome(path: string, base: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return isAbsolute(path) ? path : resolve(base, path);
}

function describeZod(error: z.ZodError, source: string): string {
  return error.issues.map((i) => `${source}: ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`).join('\n');
}

function checkKey(path: string, where: string): void {
  if (!existsSync(path)) throw new HostsFileError(`${where}: the key ${path} does not exist`);
  try {
    readFileSync(path);
  } catch (err) {
    throw new HostsFileError(`${where}: cannot read the key ${path}: ${(err as Error).message}`);
  }
}

/** Parses hosts-file text (YAML or JSON; JSON is YAML). `base` resolves relative key paths. */
export function parseHostsText(text: string, source: string, base: string): SshHosts {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new HostsFileError(`${source} does not parse as YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (raw !== null && typeof raw === 'object' && 'runId' in raw && 'sshUser' in raw) {
    const p = provisionedSchema.safeParse(raw);
    if (!p.success) throw new HostsFileError(describeZod(p.error, source));
    return hostsFromProvisioned(p.data, source);
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) throw new HostsFileError(describeZod(parsed.error, source));
  const d = { ...DEFAULTS, ...parsed.data.defaults };
  const hosts: SshHost[] = parsed.data.hosts.map((h, i) => {
    const user = h.user ?? d.user;
    const port = h.port ?? d.port;
    const keyPath = expandHome(h.key ?? d.key, base);
    checkKey(keyPath, `${source}: hosts.${i}`);
    const hostKeySha256 = h.hostKeySha256 ?? parsed.data.defaults?.hostKeySha256;
    return {
      name: `${user}@${h.host}:${port}`,
      host: h.host,
      port,
      user,
      keyPath,
      address: h.address ?? h.host,
      role: h.role,
      node: h.node ?? d.node,
      workDir: h.workDir ?? d.workDir,
      installNode: h.installNode ?? d.installNode,
      ...(hostKeySha256 ? { hostKeySha256 } : {}),
    };
  });
  const replicas = hosts.filter((h) => h.role === 'replica');
  const clients = hosts.filter((h) => h.role === 'client');
  if (replicas.length === 0) throw new HostsFileError(`${source}: no host has role replica`);
  if (clients.length === 0) throw new HostsFileError(`${source}: no host has role client`);
  return { replicas, clients, source };
}

/** Reads and validates a hosts file; every error names the file and the field. */
export function loadHostsFile(path: string): SshHosts {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new HostsFileError(`cannot read the hosts file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseHostsText(text, path, resolve(path, '..'));
}

/**
 * The aws backend's hand-off (infra/aws ProvisionedHosts) as ssh hosts: log in to the public
 * address, let nodes reach each other on the private one, listen inside the opened port range.
 */
export function hostsFromProvisioned(p: ProvisionedHosts | z.infer<typeof provisionedSchema>, source = `aws run ${p.runId}`): SshHosts {
  checkKey(p.privateKeyPath, source);
  const make = (h: { publicIp: string; privateIp: string }, role: HostRole): SshHost => ({
    name: `${p.sshUser}@${h.publicIp}:${p.sshPort}`,
    host: h.publicIp,
    port: p.sshPort,
    user: p.sshUser,
    keyPath: p.privateKeyPath,
    address: h.privateIp,
    role,
    node: DEFAULTS.node,
    workDir: DEFAULTS.workDir,
    installNode: DEFAULTS.installNode,
  });
  return {
    replicas: p.replicas.map((h) => make(h, 'replica')),
    clients: p.clients.map((h) => make(h, 'client')),
    portRange: { fromPort: p.portRange.fromPort, toPort: p.portRange.toPort },
    source,
  };
}

/** The host that runs replica `id` / client machine `origin`: round-robin over the role's hosts. */
export function hostFor(hosts: SshHosts, role: HostRole, index: number): SshHost {
  const list = role === 'replica' ? hosts.replicas : hosts.clients;
  return list[index % list.length]!;
}
