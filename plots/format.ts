/** Number formats shared by the report's sections (plots/report.ts, plots/sensitivity.ts). */

/** 12345.6 -> "12,346". */
export function formatNumber(v: number): string {
  return Math.round(v).toLocaleString('en-US');
}

/** A relative change with its sign: "+40%", "−29%". */
export function formatChange(fraction: number): string {
  const pct = fraction * 100;
  const text = Math.abs(pct) < 10 ? Math.abs(pct).toFixed(1).replace(/\.0$/, '') : Math.abs(pct).toFixed(0);
  return `${pct >= 0 ? '+' : '−'}${text}%`;
}
