/**
 * What the command layer (`poe-bench figure`, `report`, `compare`) calls: loading runs.jsonl,
 * aggregating repetitions, rendering a figure's charts, and writing reports and comparisons.
 */
export { loadRuns, loadManifest, parseRuns } from '../experiments/runs.js';
export { aggregate } from '../experiments/stats.js';
export { FIGURES, FIGURE_IDS, PROFILES, planRuns, parseProtocol, figureOfExperiment } from '../experiments/figures.js';
export { renderFigureCharts } from './render.js';
export { writeReport, DEFAULT_BASELINE, REPORT_MD, REPORT_HTML } from './report.js';
export { writeComparison, NothingToCompareError, COMPARE_MD, COMPARE_HTML } from './compare.js';
