/**
 * Rendering without a browser: vega-lite compiles a spec to vega, vega's View with the 'none'
 * renderer draws it to an SVG string (server-side, no canvas), and resvg rasterises the SVG to
 * PNG with the system's fonts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import { FIGURES, type FigureDef, type PanelDef } from '../experiments/figures.js';
import { aggregate, figureData, type FigureData } from '../experiments/stats.js';
import type { FigureId, RunRecord } from '../infra/run/records.js';
import { errorBarNote, panelRows, panelSpec } from './specs.js';

/** Advance widths of DejaVu Sans in em, roughly, by character class. */
function charEm(ch: string): number {
  if (ch === ' ') return 0.32;
  if ("il.,:;'|!".includes(ch)) return 0.28;
  if ('()[]/-fjrt'.includes(ch)) return 0.4;
  if (ch >= '0' && ch <= '9') return 0.64;
  if ('mwMW%–—'.includes(ch)) return 0.95;
  if (ch >= 'a' && ch <= 'z') return 0.62;
  if (ch >= 'A' && ch <= 'Z') return 0.72;
  return 0.62;
}

const BOLD_FACTOR = 1.2;

interface TextItem {
  readonly text?: unknown;
  readonly fontSize?: number;
  readonly fontWeight?: string | number;
}

let textMetricsInstalled = false;

/**
 * Without a canvas, vega guesses every character at 0.8 em, which leaves titles and legends
 * far wider than drawn (a 100-character subtitle reserves 800 px). The charts are drawn in
 * DejaVu Sans (resvg's default here), so estimate with its widths instead. vega exposes the
 * estimator as a mutable object (vega-scenegraph textMetrics), untyped, hence the cast.
 */
function installTextMetrics(): void {
  if (textMetricsInstalled) return;
  const metrics = (vega as unknown as { textMetrics?: { width: (item: TextItem, text?: unknown) => number } }).textMetrics;
  if (metrics === undefined) return;
  metrics.width = (item: TextItem, text?: unknown): number => {
    const value = text ?? item.text;
    const str = Array.isArray(value) ? value.map(String).reduce((a, b) => (a.length >= b.length ? a : b), '') : String(value ?? '');
    const size = item.fontSize ?? 11;
    const bold = item.fontWeight === 'bold' || (typeof item.fontWeight === 'number' && item.fontWeight >= 600);
    let em = 0;
    for (const ch of str) em += charEm(ch);
    return Math.ceil(em * size * (bold ? BOLD_FACTOR : 1));
  };
  textMetricsInstalled = true;
}

/** SVG text of a vega-lite spec. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  installTextMetrics();
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** PNG bytes of an SVG, at twice its size for sharp text. */
export function renderPng(svg: string, scale = 2): Buffer {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}

/** A chart of one panel: its spec, its SVG and the files written for it. */
export interface RenderedChart {
  readonly figure: FigureId;
  readonly panel: PanelDef;
  readonly spec: TopLevelSpec;
  readonly svg: string;
  /** File stem inside the output directory, e.g. "fig10a". */
  readonly stem: string;
  readonly files: readonly string[];
  /** The subtitle lines: how the error bars were computed, and the panel's note. */
  readonly notes: readonly string[];
}

export function chartStem(panel: PanelDef, prefix = ''): string {
  return `${prefix}fig${panel.id}`;
}

/** Writes <stem>.vl.json, <stem>.svg and <stem>.png; returns the paths. */
export async function writeChart(spec: TopLevelSpec, outDir: string, stem: string): Promise<{ svg: string; files: string[] }> {
  mkdirSync(outDir, { recursive: true });
  const svg = await renderSvg(spec);
  const files = [join(outDir, `${stem}.vl.json`), join(outDir, `${stem}.svg`), join(outDir, `${stem}.png`)];
  writeFileSync(files[0]!, `${JSON.stringify(spec, null, 2)}\n`);
  writeFileSync(files[1]!, svg);
  writeFileSync(files[2]!, renderPng(svg));
  return { svg, files };
}

/** Renders every panel of a figure that has data; panels without a valid point are skipped. */
export async function renderFigureData(data: FigureData, outDir: string): Promise<RenderedChart[]> {
  const out: RenderedChart[] = [];
  for (const panel of data.figure.panels) {
    const rows = panelRows(data, panel);
    if (rows.length === 0) continue;
    const notes = [errorBarNote(rows), ...(panel.note === undefined ? [] : [panel.note])].filter((n) => n !== '');
    const spec = panelSpec(data.figure, panel, rows, notes);
    const stem = chartStem(panel);
    const { svg, files } = await writeChart(spec, outDir, stem);
    out.push({ figure: data.figure.id, panel, spec, svg, stem, files, notes });
  }
  return out;
}

function figureDef(figure: FigureId | FigureDef): FigureDef {
  return typeof figure === 'string' ? FIGURES[figure] : figure;
}

/**
 * The charts of one figure from runs.jsonl records (of this figure or of several: the
 * figure's own are selected). Returns the paths written: a .vl.json, .svg and .png per panel.
 */
export async function renderFigureCharts(figure: FigureId | FigureDef, records: readonly RunRecord[], outDir: string): Promise<string[]> {
  const data = figureData(figureDef(figure), aggregate(records));
  const charts = await renderFigureData(data, outDir);
  return charts.flatMap((c) => [...c.files]);
}
