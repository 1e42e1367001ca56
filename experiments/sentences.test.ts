import { describe, expect, it } from 'vitest';
import { formatGain, formatPercent, ratioSentence, ratioSentences } from './sentences.js';
import { fixtureData } from '../test/experiments-testing.js';

// All numbers below are invented test inputs, chosen so the expected sentences can be worked out by hand.
describe('ratio sentences in the paper form', () => {
  it('prints percentages as the paper does', () => {
    expect(formatPercent(0.4)).toBe('40%');
    expect(formatPercent(0.025)).toBe('2.5%');
    expect(formatPercent(0.07)).toBe('7%');
    expect(formatPercent(-0.29)).toBe('29%');
    expect(formatGain(1.3)).toBe('130% more');
    expect(formatGain(2.5)).toBe('3.5× more');
    expect(formatGain(1.99)).toBe('199% more');
  });

  it('"PoE attains up to 40% more throughput (incurs 29% less latency) than PBFT"', () => {
    // Reference: paper §5.1, line 433. Gains: 1400/1000 - 1 = 40% at 4, 1100/1000 - 1 = 10% at 32;
    // latency 1 - 71/100 = 29% at 4, 1 - 90/100 = 10% at 32.
    const data = fixtureData('13', {
      poe: { 4: [1400, 71], 32: [1100, 90] },
      pbft: { 4: [1000, 100], 32: [1000, 100] },
    });
    const s = ratioSentence(data, 'poe', 'pbft')!;
    expect(s.text).toBe('PoE attains up to 40% more throughput (incurs 29% less latency) than PBFT.');
    expect(s.detail).toBe('Largest throughput gap at 4 replicas; largest latency gap at 4 replicas; compared at 4 replicas, 32 replicas.');
  });

  it('writes a ratio from a tripling on, as §5.2 writes "3.5× more"', () => {
    const data = fixtureData('12', { poe: { 100: [3500, 26] }, hotstuff: { 100: [1000, 100] } });
    expect(ratioSentence(data, 'poe', 'hotstuff')!.text).toBe('PoE attains up to 3.5× more throughput (incurs 74% less latency) than HS.');
  });

  it('gives the range of a deficit where the subject is behind everywhere, as §5.3 does for ZYZ', () => {
    // 930/1000 - 1 = -7% at 4; 820/1000 - 1 = -18% at 16.
    const data = fixtureData('13', {
      poe: { 4: [930, 50], 16: [820, 60] },
      zyzzyva: { 4: [1000, 40], 16: [1000, 50] },
    });
    // Latency: 1 - 50/40 = -25% at 4, 1 - 60/50 = -20% at 16.
    expect(ratioSentence(data, 'poe', 'zyzzyva')!.text).toBe(
      'PoE attains 7% (4 replicas) to 18% (16 replicas) less throughput (incurs 20% (16 replicas) to 25% (4 replicas) more latency) than ZYZ.',
    );
  });

  it('says where the baseline is ahead when "up to" would hide it', () => {
    const data = fixtureData('13', {
      poe: { 4: [1200, 80], 32: [900, 120] },
      pbft: { 4: [1000, 100], 32: [1000, 100] },
    });
    const s = ratioSentence(data, 'poe', 'pbft')!;
    expect(s.text).toBe('PoE attains up to 20% more throughput (incurs 20% less latency) than PBFT.');
    expect(s.detail).toContain('PBFT has more throughput at 32 replicas');
    expect(s.detail).toContain('PBFT has less latency at 32 replicas');
  });

  it('uses batch sizes as the place of figure 12 comparisons, and "as" for equality', () => {
    const data = fixtureData('12', { poe: { 10: [1000, 50], 300: [1000, 50] }, pbft: { 10: [1000, 50], 300: [1000, 50] } });
    const s = ratioSentence(data, 'poe', 'pbft')!;
    expect(s.text).toBe('PoE attains the same throughput (incurs the same latency) as PBFT.');
    expect(s.detail).toBe('Compared at batch 10, batch 300.');
  });

  it('has no sentence without a shared point, and one per protocol against the baseline', () => {
    const data = fixtureData('13', {
      poe: { 4: [1400, 71] },
      pbft: { 4: [1000, 100] },
      hotstuff: { 8: [500, 200] },
    });
    expect(ratioSentence(data, 'poe', 'hotstuff')).toBeUndefined();
    const all = ratioSentences(data, 'pbft', ['poe', 'pbft', 'zyzzyva', 'hotstuff']);
    expect(all.map((s) => s.subject)).toEqual(['poe']);
    // Baseline PoE: the others are the subjects.
    expect(ratioSentences(data, 'poe', ['poe', 'pbft'])[0]!.text).toBe('PBFT attains 29% less throughput (incurs 41% more latency) than PoE.');
  });
});
