/**
 * Subnets of the netns and docker backends: parsing (private only, no host bits), addresses,
 * and the collision check against this machine's routes (`ip -j route` output).
 */
import { describe, expect, it } from 'vitest';
import { addressAt, collidingRoutes, DOCKER_SUBNET, NETNS_SUBNET, overlaps, parseSubnet, SubnetError } from './subnet.js';

describe('subnets', () => {
  it('parses private subnets and hands out addresses from .1 up', () => {
    const s = parseSubnet(NETNS_SUBNET);
    expect(s).toMatchObject({ text: '10.222.0.0/16', prefix: 16 });
    expect(addressAt(s, 1)).toBe('10.222.0.1');
    expect(addressAt(s, 300)).toBe('10.222.1.44');
    expect(() => addressAt(parseSubnet('192.168.7.0/28'), 15)).toThrow(/no room/);
    expect(parseSubnet('172.20.0.0/16').text).toBe('172.20.0.0/16');
    expect(overlaps(parseSubnet(NETNS_SUBNET), parseSubnet(DOCKER_SUBNET))).toBe(false);
  });

  it('refuses what is not a private network without host bits', () => {
    expect(() => parseSubnet('8.8.8.0/24')).toThrow(/not a private/);
    expect(() => parseSubnet('10.222.0.1/16')).toThrow(/host bits are set \(did you mean 10.222.0.0\/16\?\)/);
    expect(() => parseSubnet('10.0.0.0/30')).toThrow(/prefix/);
    expect(() => parseSubnet('10.0.0/16')).toThrow(SubnetError);
    expect(() => parseSubnet('banana')).toThrow(/not a subnet/);
  });

  it('finds routes that overlap, ignoring the default route', () => {
    const routes = [
      { dst: 'default', dev: 'eth0' },
      { dst: '192.0.2.0/24', dev: 'eth0' },
      { dst: '10.222.5.0/24', dev: 'wg0' },
      { dst: '10.0.0.0/8', dev: 'tun0', table: 'vpn' },
      { dst: '10.223.0.7', dev: 'x', table: 'local', type: 'local' },
    ];
    expect(collidingRoutes(parseSubnet('10.222.0.0/16'), routes)).toEqual(['10.222.5.0/24 dev wg0', '10.0.0.0/8 dev tun0 table vpn']);
    expect(collidingRoutes(parseSubnet('192.168.0.0/16'), routes)).toEqual([]);
    expect(collidingRoutes(parseSubnet('10.223.0.0/24'), routes)).toEqual(['10.0.0.0/8 dev tun0 table vpn', '10.223.0.7 dev x table local']);
  });
});
