import { describe, expect, it } from 'vitest';
import { fixtureCalibrationFile, fixtureCosts } from '../../test/model-fixtures.js';
import { type CalibrationFile, checkCalibration, fitLine, machineInfo } from './calibration.js';

const lin = { fixedUs: 1, perByteUs: 0.01 };
const src = { source: 'test' };

function file(): CalibrationFile {
  const costs = fixtureCosts({
    ed25519Sign: lin,
    ed25519Verify: lin,
    hmac: lin,
    sha256: lin,
    encode: lin,
    decode: lin,
    executeTxnUs: 0.2,
    perMessageInUs: 3,
    perFrameOutUs: 3,
    ioPerByteUs: 0.001,
  });
  return fixtureCalibrationFile(costs, { source: src, date: '2026-12-04T16:00:00.000Z' });
}

describe('calibration file', () => {
  it('accepts a complete file, also after a JSON round trip', () => {
    const f = file();
    expect(checkCalibration(JSON.parse(JSON.stringify(f)), 'x')).toEqual(f);
  });

  it('records the machine it was measured on', () => {
    const m = machineInfo();
    expect(m.cores).toBeGreaterThan(0);
    expect(m.node).toBe(process.version);
    expect(typeof m.cpuModel).toBe('string');
  });

  it('refuses a file with a cost missing, negative, without its source, or of another version', () => {
    const f = file();
    const { hmac: _h, ...noHmac } = f.costs;
    expect(() => checkCalibration({ ...f, costs: noHmac }, 'x')).toThrow(/costs.hmac/);
    expect(() => checkCalibration({ ...f, costs: { ...f.costs, perMessageInUs: -1 } }, 'x')).toThrow(/perMessageInUs/);
    const { decode: _d, ...noDecodeSource } = f.sources;
    expect(() => checkCalibration({ ...f, sources: noDecodeSource }, 'x')).toThrow(/sources.decode/);
    expect(() => checkCalibration({ ...f, version: 99 }, 'x')).toThrow(/version/);
    expect(() => checkCalibration({ ...f, date: 'yesterday' }, 'x')).toThrow(/date/);
  });

  it('reads a file with the per-read and per-write costs, and refuses them negative or without a source', () => {
    const f = file();
    const g = { ...f, costs: { ...f.costs, perReadUs: 4, perWriteUs: 9 }, sources: { ...f.sources, perReadUs: src, perWriteUs: src } };
    expect(checkCalibration(JSON.parse(JSON.stringify(g)), 'x')).toEqual(g);
    expect(() => checkCalibration({ ...g, costs: { ...g.costs, perWriteUs: -1 } }, 'x')).toThrow(/perWriteUs/);
    expect(() => checkCalibration({ ...g, sources: f.sources }, 'x')).toThrow(/sources.perReadUs/);
  });

  it('reads a file with the frame MAC measured apart, and refuses it negative or without a source', () => {
    const f = file();
    const g = { ...f, costs: { ...f.costs, frameMac: { fixedUs: 0.5, perByteUs: 0.0005 } }, sources: { ...f.sources, frameMac: src } };
    expect(checkCalibration(JSON.parse(JSON.stringify(g)), 'x')).toEqual(g);
    expect(() => checkCalibration({ ...g, costs: { ...g.costs, frameMac: { fixedUs: -1, perByteUs: 0 } } }, 'x')).toThrow(/frameMac/);
    expect(() => checkCalibration({ ...g, sources: f.sources }, 'x')).toThrow(/sources.frameMac/);
  });
});

describe('fitLine', () => {
  it('recovers a line exactly', () => {
    const sizes = [32, 128, 512, 2048];
    const c = fitLine(
      sizes,
      sizes.map((s) => 5 + 0.25 * s),
    );
    expect(c.fixedUs).toBeCloseTo(5, 9);
    expect(c.perByteUs).toBeCloseTo(0.25, 9);
  });

  it('never returns a negative cost', () => {
    const c = fitLine([10, 20, 30], [3, 2, 1]);
    expect(c.perByteUs).toBe(0);
    expect(c.fixedUs).toBeCloseTo(2, 9);
    const d = fitLine([100, 200], [1, 3]);
    expect(d.fixedUs).toBe(0);
    expect(d.perByteUs).toBeGreaterThan(0);
  });
});
