/**
 * The private IPv4 subnet a backend gives its nodes (netns: 10.222.0.0/16; docker:
 * 10.223.0.0/16; both changeable with --subnet), the node addresses in it, and the check that
 * it collides with no route this machine already has: a collision would make some of the
 * machine's own traffic, or the run's, go where it should not.
 */
import { execa } from 'execa';

export const NETNS_SUBNET = '10.222.0.0/16';
export const DOCKER_SUBNET = '10.223.0.0/16';

export interface Subnet {
  readonly text: string;
  /** Network address as an unsigned 32-bit number. */
  readonly base: number;
  readonly prefix: number;
}

export class SubnetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SubnetError';
  }
}

export function ipToNumber(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new SubnetError(`'${ip}' is not an IPv4 address`);
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0) >>> 0;
}

export function numberToIp(x: number): string {
  return [x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255].join('.');
}

const PRIVATE: readonly [string, number][] = [
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
];

/** Parses a.b.c.d/p: a private (RFC 1918) network with room for at least 14 nodes. */
export function parseSubnet(text: string): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text.trim());
  if (!m) throw new SubnetError(`'${text}' is not a subnet like 10.222.0.0/16`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 28) throw new SubnetError(`${text}: the prefix must be between /8 and /28`);
  const ip = ipToNumber(m[1]!);
  const mask = prefix === 0 ? 0 : (0xffff_ffff << (32 - prefix)) >>> 0;
  if ((ip & mask) >>> 0 !== ip) throw new SubnetError(`${text}: host bits are set (did you mean ${numberToIp((ip & mask) >>> 0)}/${prefix}?)`);
  const subnet = { text: `${m[1]}/${prefix}`, base: ip, prefix };
  if (!PRIVATE.some(([b, p]) => contains(parseRange(b, p), subnet)))
    throw new SubnetError(`${text} is not a private (RFC 1918) subnet: use one inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16`);
  return subnet;
}

function parseRange(ip: string, prefix: number): Subnet {
  return { text: `${ip}/${prefix}`, base: ipToNumber(ip), prefix };
}

function size(s: Subnet): number {
  return 2 ** (32 - s.prefix);
}

function contains(outer: Subnet, inner: Subnet): boolean {
  return inner.prefix >= outer.prefix && inner.base >= outer.base && inner.base + size(inner) <= outer.base + size(outer);
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  return a.base < b.base + size(b) && b.base < a.base + size(a);
}

/** The k-th usable address (k >= 1; .0 is the network), e.g. for node k. */
export function addressAt(s: Subnet, k: number): string {
  if (k < 1 || k >= size(s) - 1) throw new SubnetError(`${s.text} has no room for node address #${k}`);
  return numberToIp(s.base + k);
}

interface IpRoute {
  readonly dst?: string;
  readonly dev?: string;
  readonly type?: string;
  readonly table?: string;
}

/** Routes of this machine (every table) that overlap `s`; the default route is ignored. */
export function collidingRoutes(s: Subnet, routes: readonly IpRoute[]): string[] {
  const out: string[] = [];
  for (const r of routes) {
    if (!r.dst || r.dst === 'default') continue;
    const [ip, p] = r.dst.split('/');
    let route: Subnet;
    try {
      route = { text: r.dst, base: ipToNumber(ip!), prefix: p === undefined ? 32 : Number(p) };
    } catch {
      continue;
    }
    if (overlaps(s, route)) out.push(`${r.dst}${r.dev ? ` dev ${r.dev}` : ''}${r.table && r.table !== 'main' ? ` table ${r.table}` : ''}`);
  }
  return out;
}

/** Throws SubnetError naming the routes `s` would collide with. */
export async function checkSubnetFree(s: Subnet, flag = '--subnet'): Promise<void> {
  const { stdout } = await execa('ip', ['-j', '-4', 'route', 'show', 'table', 'all'], { timeout: 10_000 });
  const clash = collidingRoutes(s, JSON.parse(stdout || '[]') as IpRoute[]);
  if (clash.length > 0) {
    throw new SubnetError(
      `the subnet ${s.text} collides with existing routes on this machine: ${[...new Set(clash)].join('; ')}. ` +
        `Choose another private subnet with ${flag}, or remove leftovers of an earlier run (poe-bench infra netns clean, poe-bench infra docker clean).`,
    );
  }
}
