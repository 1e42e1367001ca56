/**
 * TEST DATA ONLY: builds a figure's aggregated data from a small table of invented numbers,
 * for the tests of sentences, claims and reports. Nothing built here is a measurement.
 */
import type { ProtocolName } from '../replica/types.js';
import { FIGURES, crashedForF, crashedForThreeF, BATCHING_REPLICAS, DEFAULT_BATCH, PRIMARY_STOPS_AFTER } from '../experiments/figures.js';
import { fixtureRecord } from './fixtures.js';
import { aggregate, figureData, type FigureData } from '../experiments/stats.js';
import type { FigureId, RunRecord, SweepPoint } from '../infra/run/records.js';

/** Per protocol, per x value: [throughput txn/s, mean latency ms, messages/s?]. */
export type FixtureTable = Partial<Record<ProtocolName, Record<number, readonly [number, number, number?]>>>;

export function fixturePoint(figure: FigureId, protocol: ProtocolName, x: number): SweepPoint {
  switch (figure) {
    case '10':
      return { protocol, replicas: x, crashed: crashedForThreeF(x), batch: DEFAULT_BATCH };
    case '11a':
      return { protocol, replicas: x, crashed: crashedForF(x), batch: DEFAULT_BATCH };
    case '11b':
      return { protocol, replicas: x, crashed: 0, batch: DEFAULT_BATCH, primaryStopsAfter: PRIMARY_STOPS_AFTER };
    case '12':
      return { protocol, replicas: BATCHING_REPLICAS, crashed: crashedForThreeF(BATCHING_REPLICAS), batch: x };
    case '13':
      return { protocol, replicas: x, crashed: 0, batch: DEFAULT_BATCH };
  }
}

/** One repetition per cell of the table. */
export function fixtureTableRecords(figure: FigureId, table: FixtureTable): RunRecord[] {
  const out: RunRecord[] = [];
  for (const [protocol, cells] of Object.entries(table) as [ProtocolName, Record<number, readonly [number, number, number?]>][]) {
    for (const [x, [tput, latMs, msgs]] of Object.entries(cells)) {
      out.push(
        fixtureRecord(FIGURES[figure].experiment, fixturePoint(figure, protocol, Number(x)), 0, {
          throughputTxnPerSec: tput,
          latencyMeanMs: latMs,
          ...(msgs === undefined ? {} : { messagesPerSec: msgs }),
        }),
      );
    }
  }
  return out;
}

export function fixtureData(figure: FigureId, table: FixtureTable): FigureData {
  return figureData(FIGURES[figure], aggregate(fixtureTableRecords(figure, table)));
}
