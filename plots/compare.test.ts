import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeComparison, NothingToCompareError } from './compare.js';
import { fixtureFigure } from '../test/fixtures.js';
import type { RunRecord } from '../infra/run/records.js';

// Two invented result directories (experiments/fixtures.ts): B has half of A's throughput and twice its latency.
function halve(r: RunRecord): RunRecord {
  if (r.metrics === undefined) return r;
  const l = r.metrics.latencyMs;
  return {
    ...r,
    metrics: {
      ...r.metrics,
      throughputTxnPerSec: r.metrics.throughputTxnPerSec / 2,
      latencyMs: { mean: l.mean * 2, p50: l.p50 * 2, p99: l.p99 * 2, max: l.max * 2 },
    },
  };
}

function write(dir: string, records: readonly RunRecord[], manifest: unknown): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'runs.jsonl'), records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
}

describe('writeComparison', () => {
  it('sets two runs of a figure side by side: charts with both, B against A, claims for each', async () => {
    const root = mkdtempSync(join(tmpdir(), 'poe-bench-compare-'));
    try {
      write(join(root, 'local'), fixtureFigure('13', 1), { backend: 'local' });
      write(join(root, 'aws'), fixtureFigure('13', 1).map(halve), { backend: 'aws', cpuModel: 'Xeon Platinum', cpuCores: 8 });
      const out = await writeComparison(join(root, 'local'), join(root, 'aws'), join(root, 'cmp'));
      expect(out.figures).toEqual(['13']);
      const md = readFileSync(out.markdown, 'utf8');
      expect(md).toContain('| Backend | local | aws |');
      expect(md).toContain('| CPU | unknown | Xeon Platinum, 8 cores |');
      expect(md).toMatch(/\| PoE \| 4 \| 26,000 \| 13,000 \| −50% \| 0\.3 \| 0\.6 \| \+100% \|/);
      expect(md).toContain('| Figure | Claim (the paper) | Paper | Measured A | Verdict A | Measured B | Verdict B |');
      const svg = readFileSync(join(root, 'cmp', 'compare-fig13a.svg'), 'utf8');
      for (const text of ['A (local)', 'B (aws)', 'PoE', 'HS', 'Run']) expect(svg).toContain(`>${text}<`);
      const html = readFileSync(out.html, 'utf8');
      expect((html.match(/<svg/g) ?? []).length).toBe(2);
      expect(html).not.toMatch(/<script|<link|<img|src=|href="http/i);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses directories that share no figure', async () => {
    const root = mkdtempSync(join(tmpdir(), 'poe-bench-compare-'));
    try {
      write(join(root, 'a'), fixtureFigure('13', 1), {});
      write(join(root, 'b'), fixtureFigure('12', 1), {});
      await expect(writeComparison(join(root, 'a'), join(root, 'b'), join(root, 'cmp'))).rejects.toThrow(NothingToCompareError);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
