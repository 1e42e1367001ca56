/**
 * tc for the netns and docker backends: one HTB class per destination with its rate, a netem
 * qdisc under it only where the kernel has netem, nothing at all when nothing is left for tc.
 */
import { describe, expect, it } from 'vitest';
import { NO_LINK } from '../link.js';
import { detectNetem, tcCommands, transportApply } from './tc.js';

const link = (x: Partial<typeof NO_LINK>) => ({ ...NO_LINK, ...x });

describe('tc commands', () => {
  it('nothing for tc without a rate and without netem', () => {
    expect(tcCommands('eth0', [{ ip: '10.0.0.2', link: link({ delayMs: 1 }) }], false)).toEqual([]);
  });

  it('a class with the rate and a filter per destination', () => {
    const cmds = tcCommands(
      'eth0',
      [
        { ip: '10.0.0.2', link: link({ rateBitsPerSec: 1e9 }) },
        { ip: '10.0.0.3', link: link({ rateBitsPerSec: 1e8 }) },
      ],
      false,
    );
    expect(cmds.map((c) => c.join(' '))).toEqual([
      'qdisc add dev eth0 root handle 1: htb default ffff',
      'class add dev eth0 parent 1: classid 1:1 htb rate 1000000000bit ceil 1000000000bit',
      'filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.0.0.2/32 flowid 1:1',
      'class add dev eth0 parent 1: classid 1:2 htb rate 100000000bit ceil 100000000bit',
      'filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.0.0.3/32 flowid 1:2',
    ]);
  });

  it('netem under the class for delay, jitter and loss where the kernel has it', () => {
    const cmds = tcCommands('eth0', [{ ip: '10.0.0.2', link: link({ delayMs: 1, jitterMs: 0.2, lossRate: 0.001 }) }], true);
    expect(cmds.map((c) => c.join(' '))).toContain('qdisc add dev eth0 parent 1:1 handle 2: netem delay 1000us 200us loss 0.1%');
    expect(cmds.map((c) => c.join(' '))).toContain('class add dev eth0 parent 1: classid 1:1 htb rate 100000000000bit ceil 100000000000bit');
  });

  it('the transport applies what tc does not', () => {
    expect(transportApply(false, true)).toEqual({ delay: true, loss: true, rate: false });
    expect(transportApply(true, true)).toEqual({ delay: false, loss: false, rate: false });
    expect(transportApply(false, false)).toEqual({ delay: true, loss: true, rate: true });
  });

  it('detects netem by trying it, and removes the probe', async () => {
    const calls: string[] = [];
    expect(await detectNetem(async (argv) => (calls.push(argv.join(' ')), { ok: false }))).toBe(false);
    expect(calls).toEqual(['tc qdisc add dev lo root netem delay 1ms']);
    calls.length = 0;
    expect(await detectNetem(async (argv) => (calls.push(argv.join(' ')), { ok: true }))).toBe(true);
    expect(calls).toEqual(['tc qdisc add dev lo root netem delay 1ms', 'tc qdisc del dev lo root']);
  });
});
