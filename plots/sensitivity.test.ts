/**
 * The sensitivity section's blame (issue 12 item 5, "for each that does not [hold], which
 * resource the sensitivity runs blame"), on stand-in rows: a claim the model predicts does not
 * hold is re-judged under every one-resource change, and the changes under which it would hold
 * name the resource blamed. The claim is the paper's §5.3 line 471: "On 32 replicas HotStuff
 * outperforms PBFT".
 */
import { describe, expect, it } from 'vitest';
import { CLAIMS, evaluateClaims } from '../experiments/claims.js';
import type { SensitivityFile } from '../experiments/model-figure.js';
import type { SensitivityRow } from '../experiments/sensitivity.js';
import { claimBlame, variantFigureData } from './sensitivity.js';

const LABELS = ['pipeline, 8 cores', 'bandwidth x10'] as const;

function row(protocol: string, base: number, variants: Record<(typeof LABELS)[number], number>): SensitivityRow {
  return {
    protocol,
    replicas: 32,
    baseTxnPerSec: base,
    baseLatencyMs: 20,
    variants,
    variantLatencyMs: { 'pipeline, 8 cores': 20, 'bandwidth x10': 20 },
    decidedBy: 'none',
    decidedByResource: 'none',
    swingPercent: 0,
    relievedBy: 'none',
    gainPercent: 0,
    invalid: [],
  };
}

function file(rows: SensitivityRow[]): SensitivityFile {
  return {
    testbed: 'c5.2xlarge',
    calibration: 'cal.json',
    batches: { pbft: 300, hotstuff: 1000 },
    clients: 24,
    seed: 1,
    records: 1000,
    variants: [
      { label: 'pipeline, 8 cores', resource: 'replica threads/cores', more: true },
      { label: 'bandwidth x10', resource: 'bandwidth', more: true },
    ],
    rows,
    runSec: 1,
  };
}

const hsOverPbft = (s: SensitivityFile) => {
  const claims = evaluateClaims({ '13': variantFigureData(s.rows, 'base') }, CLAIMS, { modelledFor: 'c5.2xlarge' });
  const c = claims.find((x) => x.claim.id === '13-hs-above-pbft-32')!;
  expect(c.predicted?.verdict).toBe('does not hold');
  return claimBlame(claims, s).find((item) => item.includes('On 32 replicas HotStuff outperforms PBFT'));
};

describe('claimBlame', () => {
  it('blames the resource under whose change the model predicts the claim would hold', () => {
    // HotStuff is bound by its one thread: the pipeline's 8 cores lift it above PBFT, which bandwidth binds.
    const s = file([
      row('pbft', 127_000, { 'pipeline, 8 cores': 127_500, 'bandwidth x10': 170_000 }),
      row('hotstuff', 92_000, { 'pipeline, 8 cores': 210_000, 'bandwidth x10': 92_000 }),
    ]);
    const item = hsOverPbft(s);
    expect(item).toContain("The sensitivity's base runs agree");
    expect(item).toContain('The model predicts it holds with more of replica threads/cores (pipeline, 8 cores): the sensitivity blames replica threads/cores.');
    expect(item).not.toContain('bandwidth x10;');
  });

  it('says when no single change makes the model predict the claim holds', () => {
    const s = file([
      row('pbft', 127_000, { 'pipeline, 8 cores': 127_500, 'bandwidth x10': 170_000 }),
      row('hotstuff', 92_000, { 'pipeline, 8 cores': 115_000, 'bandwidth x10': 92_000 }),
    ]);
    expect(hsOverPbft(s)).toContain('With none of the 2 one-resource changes does the model predict it holds');
  });
});
