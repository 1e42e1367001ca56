/**
 * What `poe-bench infra aws up|status|down` and `withAwsHosts` accept, validated with zod so a
 * bad value is named by its flag. Numbers may arrive as strings (commander) or numbers (code).
 */
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { flagNames } from '../params.js';
import { CallerAddressMissingError, InvalidAwsOptionsError } from './errors.js';

/** sshd: the harness drives every host over SSH (control channel on stdin/stdout, no extra port). */
export const SSH_PORT = 22;
/**
 * The TCP ports replicas and client machines may listen on when the ssh backend starts them on
 * EC2 hosts: it must pick its listen ports inside this range. The security group opens exactly
 * this range and SSH_PORT, only to the run's own instances and to the caller's address.
 */
export const HARNESS_PORT_RANGE = { fromPort: 7000, toPort: 7999 } as const;

/** Upper bounds against typos (the paper's largest run: 32 replicas, 10 client machines). */
export const MAX_REPLICAS = 64;
export const MAX_CLIENT_MACHINES = 32;
export const MAX_TTL_HOURS = 72;

export const DEFAULT_REGION = 'us-east-1';
/** Paper §5, line 411: replicas on c5.2xlarge, clients on "10 4-core machines". */
export const DEFAULT_REPLICA_TYPE = 'c5.2xlarge';
export const DEFAULT_CLIENT_TYPE = 'c5.xlarge';
export const DEFAULT_TTL_HOURS = 4;
export const DEFAULT_EXPECTED_HOURS = 1;

export const OS_CHOICES = ['debian12', 'al2023'] as const;
export type OsChoice = (typeof OS_CHOICES)[number];

/** The login user of each image family (Debian's cloud images: `admin`; Amazon Linux: `ec2-user`). */
export const SSH_USER_BY_OS: Readonly<Record<OsChoice, string>> = { debian12: 'admin', al2023: 'ec2-user' };

/** Run ids are `pb-YYYYMMDD-HHMMSS-<hex>` (UTC): sortable by creation and valid in every EC2 name. */
export const RUN_ID_PATTERN = /^pb-\d{8}-\d{6}-[0-9a-f]{4,16}$/;

/** Where run directories (private key, hosts.json) live unless --state-dir says otherwise. */
export function defaultStateDir(): string {
  return join(homedir(), '.poe-bench', 'aws');
}

export function makeRunId(nowMs: number, randomHex: string): string {
  const iso = new Date(nowMs).toISOString(); // 2025-01-31T12:34:56.789Z
  return `pb-${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}-${randomHex}`;
}

const region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, "must be a region name like 'us-east-1'");
const instanceType = z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/, "must be an instance type like 'c5.2xlarge'");
const count = (max: number) =>
  z.coerce.number({ invalid_type_error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(max, `must be at most ${max}`);
const hours = z.coerce.number({ invalid_type_error: 'must be a number' }).positive('must be > 0').max(MAX_TTL_HOURS, `must be at most ${MAX_TTL_HOURS}`);
const runId = z.string().regex(RUN_ID_PATTERN, "must be a run id like 'pb-20250131-123456-ab12cd' (see `poe-bench infra aws status`)");

/**
 * The caller's address as a CIDR. A bare address becomes a single-host CIDR; wide ranges are
 * refused because the whole point of the rule is to not open the harness to the internet.
 */
export function parseCallerCidr(value: string): string {
  const [address = '', prefixText, ...rest] = value.trim().split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) throw new Error(`'${value}' is not an IP address or CIDR`);
  const maxPrefix = family === 4 ? 32 : 128;
  const minPrefix = family === 4 ? 16 : 48;
  const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > maxPrefix) throw new Error(`'${value}' has an invalid prefix length`);
  if (prefix < minPrefix) throw new Error(`'${value}' is too wide (prefix shorter than /${minPrefix}): name your own address`);
  return `${address}/${prefix}`;
}

const cidr = z.string().transform((v, ctx) => {
  try {
    return parseCallerCidr(v);
  } catch (err) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
    return z.NEVER;
  }
});

const upSchema = z
  .object({
    replicas: count(MAX_REPLICAS),
    clients: count(MAX_CLIENT_MACHINES),
    region: region.optional(),
    instanceType: instanceType.default(DEFAULT_REPLICA_TYPE),
    clientType: instanceType.default(DEFAULT_CLIENT_TYPE),
    os: z.enum(OS_CHOICES).default('debian12'),
    ami: z
      .string()
      .regex(/^ami-[0-9a-f]{8,17}$/, "must be an AMI id like 'ami-0123456789abcdef0'")
      .optional(),
    sshUser: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a Unix user name')
      .optional(),
    vpc: z
      .string()
      .regex(/^vpc-[0-9a-f]{8,17}$/, "must be a VPC id like 'vpc-0123abcd'")
      .optional(),
    subnet: z
      .string()
      .regex(/^subnet-[0-9a-f]{8,17}$/, "must be a subnet id like 'subnet-0123abcd'")
      .optional(),
    myIp: cidr.optional(),
    ttlHours: hours.default(DEFAULT_TTL_HOURS),
    hours: hours.optional(),
    yes: z.boolean().default(false),
    dryRun: z.boolean().default(false),
    stateDir: z.string().min(1).optional(),
  })
  .strict();

const statusSchema = z.object({ region: region.optional() }).strict();

const downSchema = z
  .object({
    region: region.optional(),
    run: runId.optional(),
    expired: z.boolean().default(false),
    yes: z.boolean().default(false),
    stateDir: z.string().min(1).optional(),
  })
  .strict();

export type AwsUpInput = z.input<typeof upSchema>;
export type AwsStatusInput = z.input<typeof statusSchema>;
export type AwsDownInput = z.input<typeof downSchema>;

export interface AwsUpOptions {
  readonly replicas: number;
  readonly clients: number;
  readonly region: string;
  readonly instanceType: string;
  readonly clientType: string;
  readonly os: OsChoice;
  readonly ami: string | undefined;
  /** `--ssh-user`, else the login user of `--os` (also with `--ami`: name the user if it differs). */
  readonly sshUser: string;
  readonly vpc: string | undefined;
  readonly subnet: string | undefined;
  /** The caller's address as a CIDR (`--my-ip` or POE_BENCH_MY_IP). */
  readonly callerCidr: string;
  readonly ttlHours: number;
  readonly expectedHours: number;
  readonly yes: boolean;
  readonly dryRun: boolean;
  readonly stateDir: string;
}

export interface AwsStatusOptions {
  readonly region: string;
}

export interface AwsDownOptions {
  readonly region: string;
  readonly runId: string | undefined;
  readonly expiredOnly: boolean;
  readonly yes: boolean;
  readonly stateDir: string;
}

/** Flag names by option key, for error messages: from the table of run parameters (infra/params.ts). */
const FLAG_NAMES: Record<string, string> = flagNames('aws');

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const key = String(i.path[0] ?? '');
      if (i.code === z.ZodIssueCode.unrecognized_keys) return `unknown option(s): ${i.keys.join(', ')}`;
      return `${FLAG_NAMES[key] ?? key}: ${i.message}`;
    })
    .join('\n');
}

function parseWith<S extends z.ZodTypeAny>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new InvalidAwsOptionsError(describeIssues(parsed.error));
  return parsed.data;
}

/** The environment variables the options fall back to. */
export type AwsEnv = Readonly<Record<string, string | undefined>>;

function regionFrom(flag: string | undefined, env: AwsEnv): string {
  const fromEnv = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (flag !== undefined) return flag;
  return fromEnv === undefined || fromEnv === '' ? DEFAULT_REGION : parseWith(z.object({ region }), { region: fromEnv }).region;
}

export function parseUpOptions(input: unknown, env: AwsEnv = process.env): AwsUpOptions {
  const o = parseWith(upSchema, input);
  const problems: string[] = [];
  if (o.hours !== undefined && o.hours > o.ttlHours) problems.push(`--hours: ${o.hours} h is longer than the instances live (--ttl-hours ${o.ttlHours})`);
  if (o.vpc !== undefined && o.subnet === undefined) problems.push('--vpc: needs --subnet (a subnet of that VPC whose instances get public addresses)');
  if (problems.length > 0) throw new InvalidAwsOptionsError(problems.join('\n'));
  let callerCidr = o.myIp;
  if (callerCidr === undefined) {
    const fromEnv = env.POE_BENCH_MY_IP;
    if (fromEnv === undefined || fromEnv === '') throw new CallerAddressMissingError();
    callerCidr = parseWith(z.object({ myIp: cidr }), { myIp: fromEnv }).myIp;
  }
  return {
    replicas: o.replicas,
    clients: o.clients,
    region: regionFrom(o.region, env),
    instanceType: o.instanceType,
    clientType: o.clientType,
    os: o.os,
    ami: o.ami,
    sshUser: o.sshUser ?? SSH_USER_BY_OS[o.os],
    vpc: o.vpc,
    subnet: o.subnet,
    callerCidr,
    ttlHours: o.ttlHours,
    expectedHours: o.hours ?? Math.min(DEFAULT_EXPECTED_HOURS, o.ttlHours),
    yes: o.yes,
    dryRun: o.dryRun,
    stateDir: o.stateDir ?? defaultStateDir(),
  };
}

export function parseStatusOptions(input: unknown, env: AwsEnv = process.env): AwsStatusOptions {
  const o = parseWith(statusSchema, input);
  return { region: regionFrom(o.region, env) };
}

export function parseDownOptions(input: unknown, env: AwsEnv = process.env): AwsDownOptions {
  const o = parseWith(downSchema, input);
  if (o.run !== undefined && o.expired) throw new InvalidAwsOptionsError('--expired: cannot be combined with --run');
  return { region: regionFrom(o.region, env), runId: o.run, expiredOnly: o.expired, yes: o.yes, stateDir: o.stateDir ?? defaultStateDir() };
}
