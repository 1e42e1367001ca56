import { describe, expect, it } from 'vitest';
import { CLAIMS, claimContextOf, evaluateClaims } from './claims.js';

describe('claims of modelled runs (issue 12 item 3)', () => {
  it('a model manifest gives the testbed the predictions are for', () => {
    expect(claimContextOf({ backend: 'model', raw: { testbed: 'c5.2xlarge' } }).modelledFor).toBe('c5.2xlarge');
    expect(claimContextOf({ backend: 'local', raw: { testbed: 'c5.2xlarge' } }).modelledFor).toBeUndefined();
    expect(claimContextOf({ backend: 'sim' }).simulated).toBe(true);
  });

  it('never judges a modelled result as measured: its verdict goes to the predicted column', () => {
    const plain = evaluateClaims({}, CLAIMS);
    const modelled = evaluateClaims({}, CLAIMS, { modelledFor: 'c5.2xlarge' });
    expect(modelled).toHaveLength(plain.length);
    modelled.forEach((r, i) => {
      expect(r.verdict).toBe('not measured');
      expect(r.measured).toBe('not measured (modelled runs)');
      expect(r.predicted).toEqual({ testbed: 'c5.2xlarge', verdict: plain[i]!.verdict, value: plain[i]!.measured });
    });
    expect(plain.every((r) => r.predicted === undefined)).toBe(true);
  });
});
