/**
 * Links below the transport, with `tc`, where a backend has interfaces of its own (netns,
 * docker). One HTB class per destination on the node's interface, so every link gets its own
 * rate, and where the kernel has sch_netem, a netem qdisc under each class for the delay,
 * jitter and loss. Without netem (this machine's kernel) the transport applies delay, jitter
 * and loss itself (infra/process/link-shaper.ts) and `tc` only the rate.
 *
 * Everything here lives inside the node's own network namespace, so it disappears with it.
 */
import { execa } from 'execa';
import type { LinkApply, LinkParams } from '../link.js';

export interface TcPeer {
  readonly ip: string;
  readonly link: LinkParams;
}

/** HTB needs a rate on every class; a link without a rate limit gets one no NIC reaches. */
const UNLIMITED_BITS = 100e9;

/**
 * The tc commands (argv after `tc`) that shape `dev`'s egress per destination. Empty when
 * nothing is left for tc: no rate and no netem.
 */
export function tcCommands(dev: string, peers: readonly TcPeer[], netem: boolean): string[][] {
  const shaped = peers.filter((p) => p.link.rateBitsPerSec > 0 || (netem && (p.link.delayMs > 0 || p.link.lossRate > 0)));
  if (shaped.length === 0) return [];
  // Unclassified traffic (ARP, anything to an address not listed) goes to a class that does
  // not exist, which HTB sends on unshaped.
  const cmds: string[][] = [['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', 'ffff']];
  shaped.forEach((p, i) => {
    const minor = (i + 1).toString(16);
    const rate = `${Math.round(p.link.rateBitsPerSec > 0 ? p.link.rateBitsPerSec : UNLIMITED_BITS)}bit`;
    cmds.push(['class', 'add', 'dev', dev, 'parent', '1:', 'classid', `1:${minor}`, 'htb', 'rate', rate, 'ceil', rate]);
    if (netem && (p.link.delayMs > 0 || p.link.lossRate > 0)) {
      const args = ['qdisc', 'add', 'dev', dev, 'parent', `1:${minor}`, 'handle', `${(i + 2).toString(16)}:`, 'netem'];
      if (p.link.delayMs > 0) args.push('delay', `${p.link.delayMs * 1000}us`, ...(p.link.jitterMs > 0 ? [`${p.link.jitterMs * 1000}us`] : []));
      if (p.link.lossRate > 0) args.push('loss', `${p.link.lossRate * 100}%`);
      cmds.push(args);
    }
    cmds.push(['filter', 'add', 'dev', dev, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dst', `${p.ip}/32`, 'flowid', `1:${minor}`]);
  });
  return cmds;
}

/** What the transport must still apply, given what tc does. */
export function transportApply(netem: boolean, tcAvailable: boolean): LinkApply {
  return { delay: !netem, loss: !netem, rate: !tcAvailable };
}

/**
 * Whether this kernel has sch_netem: try a netem qdisc on the loopback of a namespace the
 * backend owns (`run` runs a command inside it) and remove it again.
 */
export async function detectNetem(run: (argv: readonly string[]) => Promise<{ ok: boolean }>): Promise<boolean> {
  const added = await run(['tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
  if (!added.ok) return false;
  await run(['tc', 'qdisc', 'del', 'dev', 'lo', 'root']);
  return true;
}

/** Runs tc commands with `prefix` (e.g. ['ip', 'netns', 'exec', ns]); throws naming the command. */
export async function applyTc(prefix: readonly string[], cmds: readonly string[][], timeoutMs = 10_000): Promise<void> {
  for (const c of cmds) {
    const argv = [...prefix, 'tc', ...c];
    const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: timeoutMs });
    if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} failed: ${(r.stderr || r.stdout || `exit ${r.exitCode}`).trim()}`);
  }
}
