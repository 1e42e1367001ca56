import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import { renderFigureCharts } from './render.js';
import { panelRows, errorBarNote } from './specs.js';
import { fixtureFigure } from '../test/fixtures.js';
import { FIGURES } from '../experiments/figures.js';
import { aggregate, figureData } from '../experiments/stats.js';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

// Charts drawn from invented fixture records (experiments/fixtures.ts), never from measurements.
describe('rendering charts without a browser', () => {
  it('writes a valid SVG with the paper series names and axis titles, and a PNG', async () => {
    const dir = process.env.POE_BENCH_KEEP_CHARTS ?? mkdtempSync(join(tmpdir(), 'poe-bench-charts-'));
    try {
      const files = await renderFigureCharts('10', fixtureFigure('10', 3), dir);
      expect(files.map((f) => basename(f))).toEqual([
        'fig10a.vl.json',
        'fig10a.svg',
        'fig10a.png',
        'fig10b.vl.json',
        'fig10b.svg',
        'fig10b.png',
        'fig10c.vl.json',
        'fig10c.svg',
        'fig10c.png',
      ]);
      const svg = readFileSync(join(dir, 'fig10a.svg'), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
      expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
      for (const text of ['PoE', 'PBFT', 'ZYZ', 'HS', 'Throughput (txn/s)', 'Number of replicas']) expect(svg).toContain(`>${text}<`);
      // Three repetitions: the subtitle names the Student-t interval.
      expect(svg).toContain('95% confidence interval (Student t)');
      // Figure 10b leaves Zyzzyva out, as the paper does, and draws mean and p99.
      const latency = readFileSync(join(dir, 'fig10b.svg'), 'utf8');
      expect(latency).not.toContain('>ZYZ<');
      expect(latency).toContain('>p99<');
      expect(latency).toContain('>Latency (s)<');
      const png = readFileSync(join(dir, 'fig10a.png'));
      expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      expect(png.length).toBeGreaterThan(5000);
    } finally {
      if (process.env.POE_BENCH_KEEP_CHARTS === undefined) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('draws the view-change timeline of figure 11b and the batch axis of figure 12', async () => {
    const dir = process.env.POE_BENCH_KEEP_CHARTS ?? mkdtempSync(join(tmpdir(), 'poe-bench-charts-'));
    try {
      await renderFigureCharts('11b', fixtureFigure('11b', 1), dir);
      const timeline = readFileSync(join(dir, 'fig11b-time.svg'), 'utf8');
      expect(timeline).toContain('>Time since the start of the measurement (s)<');
      await renderFigureCharts('12', fixtureFigure('12', 2), dir);
      const batching = readFileSync(join(dir, 'fig12a.svg'), 'utf8');
      expect(batching).toContain('>Batch size (requests per batch)<');
      expect(batching).toContain('min–max of the runs');
    } finally {
      if (process.env.POE_BENCH_KEEP_CHARTS === undefined) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('skips panels without a valid point', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'poe-bench-charts-'));
    try {
      const onlyFailed = fixtureFigure('13', 1).map((r) => ({ ...r, valid: false, reason: 'fixture failure', metrics: undefined }));
      expect(await renderFigureCharts('13', onlyFailed, dir)).toEqual([]);
      expect(existsSync(join(dir, 'fig13a.svg'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('chart rows', () => {
  it('plots the mean with its interval, and says which interval', () => {
    const data = figureData(FIGURES['13'], aggregate(fixtureFigure('13', 3)));
    const rows = panelRows(data, FIGURES['13'].panels[0]!);
    expect(rows).toHaveLength(16);
    const r = rows[0]!;
    expect(r.series).toBe('PoE');
    expect(r.lo).toBeLessThan(r.mean);
    expect(r.hi).toBeGreaterThan(r.mean);
    expect(errorBarNote(rows)).toBe('Mean of 3 runs per point; error bars: 95% confidence interval (Student t).');
    const single = panelRows(figureData(FIGURES['13'], aggregate(fixtureFigure('13', 1))), FIGURES['13'].panels[0]!);
    expect(errorBarNote(single)).toBe('Single run per point: no error bars.');
  });
});
