import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatChange, formatNumber } from './format.js';
import { writeReport, formatSummary } from './report.js';
import { inlineSvg, toMarkdown } from './document.js';
import { fixtureFigure } from '../test/fixtures.js';
import { summarize } from '../experiments/stats.js';
import { CLAIMS } from '../experiments/claims.js';
import type { RunRecord } from '../infra/run/records.js';

// Reports built from invented fixture records (experiments/fixtures.ts) in temporary directories.
function resultsDir(records: readonly RunRecord[], manifest?: unknown, tail = ''): string {
  const dir = process.env.POE_BENCH_KEEP_REPORT ?? mkdtempSync(join(tmpdir(), 'poe-bench-report-'));
  writeFileSync(join(dir, 'runs.jsonl'), records.map((r) => `${JSON.stringify(r)}\n`).join('') + tail);
  if (manifest !== undefined) writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

function cleanup(dir: string): void {
  if (process.env.POE_BENCH_KEEP_REPORT === undefined) rmSync(dir, { recursive: true, force: true });
}

describe('writeReport', () => {
  it('writes report.md and a self-contained report.html with charts, numbers, sentences and claims', async () => {
    const manifest = { figure: '13', profile: 'quick', commit: 'abc1234', dirty: true, node: 'v20.20.2', backend: 'local', spec: { clients: 8 } };
    const dir = resultsDir(fixtureFigure('13', 3), manifest, '{"experiment":"figure-13","poin');
    try {
      const out = await writeReport(dir);
      expect(out.figures).toEqual(['13']);
      const md = readFileSync(out.markdown, 'utf8');
      expect(md).toContain('# poe-bench report: figure 13');
      expect(md).toContain('| Commit | abc1234 (dirty: uncommitted changes) |');
      expect(md).toContain('| Backend | local |');
      expect(md).toContain('| OS | unknown |');
      expect(md).toContain('![Figure 13a: throughput, no failures](fig13a.svg)');
      // The fixture gives PoE 1.3x PBFT's throughput and 0.75x its latency at every point.
      expect(md).toContain('PoE attains up to 30% more throughput (incurs 25% less latency) than PBFT.');
      expect(md).toContain('| Figure | Claim (the paper) | Source | Paper | Measured | Verdict | Why (what bound the points) | How it is judged |');
      expect(md).toMatch(
        /\| 13 \| PoE attains up to 47% more throughput than PBFT \| §5\.3, line 471 \| up to 47% more \| 30% more throughput at all 4 points \| holds \|/,
      );
      expect(md).toMatch(/\| 10 \| [^|]* \| §5\.1, line 433 \| up to 40% more \| figure 10 is not in these results \| not measured \|/);
      for (const c of CLAIMS) expect(md).toContain(c.statement);

      const html = readFileSync(out.html, 'utf8');
      expect(html.startsWith('<!doctype html>')).toBe(true);
      expect((html.match(/<svg/g) ?? []).length).toBe(2);
      expect(html).not.toMatch(/<script|<link|<img|<iframe|src=|@import|href="http|url\(http/i);
      expect(html).toContain('<td class="good">holds</td>');
      expect(html).toContain('<td class="muted">not measured</td>');
      expect(existsSync(join(dir, 'fig13a.png'))).toBe(true);
      expect(existsSync(join(dir, 'fig13b.svg'))).toBe(true);
    } finally {
      cleanup(dir);
    }
  });

  it("says per point what bound it, and gives every claim that does not hold its points' bottlenecks (issue 11)", async () => {
    const detail = 'CPU-bound: the machine at 197% of 200% (33 processes of the run on 2 cores, together 190%)';
    const records = fixtureFigure('13', 1).map((r) => ({
      ...r,
      bottleneck: { kind: 'cpu', machineCpuPercent: 197, cores: 2, busiestProcess: 'replica 0', busiestCpuPercent: 60, detail },
      load: { closedLoopTxns: 4800 },
    }));
    const dir = resultsDir(records, { figure: '13', profile: 'quick', backend: 'local' });
    try {
      const out = await writeReport(dir);
      const md = readFileSync(out.markdown, 'utf8');
      expect(md).toContain('| Load (txns outstanding) | Bound by | Notes |');
      expect(md).toContain(`| 4,800 | cpu: ${detail} |`);
      const failing = out.claims.filter((c) => c.verdict === 'does not hold');
      expect(failing.length).toBeGreaterThan(0);
      for (const c of failing) expect(c.reason, c.claim.id).toMatch(/^CPU-bound at \d+ of \d+ points .*8-core machine/);
    } finally {
      cleanup(dir);
    }
  });

  it('a claim groups its points by the verdict the probe made, never calling a flat-probe point load-bound (issue 11 item 3)', async () => {
    const flat =
      'client-bound, not load-bound: a probe at 2x the outstanding transactions: double load gained 3.6% (< 5%); machine 156% of 200% CPU, no process at a full core (the busiest at 36%), the 1 client process at 23%, and no waiting on links or timers: the processes waited on one another';
    const rising =
      'client-bound: machine 150% of 200% CPU and no waiting on links or timers, and a probe at 2x the outstanding transactions: double load gained 13%: more outstanding transactions would raise throughput';
    const cpu = 'CPU-bound: the machine at 197% of 200% (33 processes of the run on 2 cores, together 190%)';
    const records = fixtureFigure('13', 1).map((r) => ({
      ...r,
      bottleneck: {
        kind: r.point.replicas >= 16 ? 'cpu' : 'clients',
        machineCpuPercent: 156,
        cores: 2,
        busiestProcess: 'replica 0',
        busiestCpuPercent: 36,
        detail: r.point.replicas >= 16 ? cpu : r.point.replicas === 4 ? flat : rising,
      },
      load: { closedLoopTxns: 2400 },
    }));
    const dir = resultsDir(records, { figure: '13', profile: 'quick', backend: 'local' });
    try {
      const out = await writeReport(dir);
      const failing = out.claims.filter((c) => c.verdict === 'does not hold' && /client-/.test(c.reason ?? ''));
      expect(failing.length).toBeGreaterThan(0);
      for (const c of failing) {
        expect(c.reason, c.claim.id).toMatch(/client-bound, not load-bound at \d+ of \d+ points \(e\.g\. \w+ at 4 replicas: a probe at 2x/);
        expect(c.reason, c.claim.id).toMatch(/client-bound at \d+ of \d+ points \(e\.g\. \w+ at 8 replicas: machine 150%/);
        // Only the points whose probe gained are said to want more load.
        expect(c.reason!.match(/more outstanding transactions would raise throughput/g)?.length ?? 0, c.claim.id).toBeLessThanOrEqual(1);
      }
    } finally {
      cleanup(dir);
    }
  });

  it('figure 11b: says how the primary failure was placed and what 900 transactions was taken to mean', async () => {
    const primaryFailure = { fault: 'the view-0 primary crashes 2000 ms after its start', paper900: 'read as the place after the first checkpoint' };
    const dir = resultsDir(fixtureFigure('11b', 1), { figure: '11b', profile: 'quick', backend: 'local', spec: { primaryFailure } });
    try {
      const md = readFileSync((await writeReport(dir)).markdown, 'utf8');
      expect(md).toContain('The primary failure: the view-0 primary crashes 2000 ms after its start; read as the place after the first checkpoint.');
    } finally {
      cleanup(dir);
    }
  });

  it('evaluates the cross-figure claims when figures 10 and 11a share a results directory, and honours --baseline', async () => {
    const dir = resultsDir([...fixtureFigure('10', 1), ...fixtureFigure('11a', 1)]);
    try {
      const out = await writeReport(dir, { baseline: 'hotstuff' });
      expect(out.figures).toEqual(['10', '11a']);
      const verdict = (id: string): string | undefined => out.claims.find((c) => c.claim.id === id)?.verdict;
      // The fixture is the same shape for both figures, so 11a is not lower where the failure models differ.
      expect(verdict('11a-lower-than-10')).toBe('does not hold');
      expect(verdict('11a-same-trends')).toBe('holds');
      expect(verdict('10-poe-pbft-throughput')).toBe('holds');
      const md = readFileSync(out.markdown, 'utf8');
      expect(md).toContain('### Compared with HS');
      expect(md).toContain('PoE attains up to 117% more throughput');
      expect(md).toContain('No readable manifest.json in this directory: environment unknown.');
    } finally {
      cleanup(dir);
    }
  });

  it('lists failed runs with their reasons and still reports the rest', async () => {
    const records = fixtureFigure('13', 1).map((r) =>
      r.point.protocol === 'hotstuff' && r.point.replicas === 32 ? { ...r, valid: false, reason: 'clients accepted nothing', metrics: undefined } : r,
    );
    const dir = resultsDir(records);
    try {
      const out = await writeReport(dir);
      const md = readFileSync(out.markdown, 'utf8');
      expect(md).toContain('hotstuff/n=32/crashed=0/batch=100: 1 run(s): clients accepted nothing');
      expect(md).toMatch(/\| HS \| 32 \| 0 of 1 \| — \|/);
      expect(out.claims.find((c) => c.claim.id === '13-hs-above-pbft-32')?.verdict).toBe('not measured');
    } finally {
      cleanup(dir);
    }
  });

  it('writes a report for an empty directory without failing', async () => {
    const dir = resultsDir([]);
    try {
      const out = await writeReport(dir);
      expect(out.figures).toEqual([]);
      expect(out.claims.every((c) => c.verdict === 'not measured')).toBe(true);
    } finally {
      cleanup(dir);
    }
  });
});

describe('report formatting', () => {
  it('prints means with their intervals and signed changes', () => {
    expect(formatSummary(summarize([10, 12, 14]), formatNumber)).toBe('12 [7–17]');
    expect(formatSummary(summarize([1234.4]), formatNumber)).toBe('1,234');
    expect(formatSummary(undefined, formatNumber)).toBe('—');
    expect(formatChange(0.4)).toBe('+40%');
    expect(formatChange(-0.025)).toBe('−2.5%');
  });

  it('escapes table cells in Markdown and prefixes SVG ids for inlining', () => {
    expect(toMarkdown([{ kind: 'table', header: ['a'], rows: [['x | y']] }])).toContain('| x \\| y |');
    expect(inlineSvg('<?xml version="1.0"?><svg><clipPath id="clip1"/><g clip-path="url(#clip1)"/></svg>', 'c2-')).toBe(
      '<svg><clipPath id="c2-clip1"/><g clip-path="url(#c2-clip1)"/></svg>',
    );
  });
});
