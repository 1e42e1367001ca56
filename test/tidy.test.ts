/** test/tidy.ts's rule on the real harness/, and proof that it reports a long function. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { longFiles, longFunctions, longFunctionsIn, MAX_FUNCTION_LINES, MAX_SOURCE_LINES } from './tidy.js';

const body = (lines: number): string => Array.from({ length: lines }, (_, i) => `  const x${i} = ${i};`).join('\n');

describe('no function in harness/ longer than about 80 lines (issue 9, item 5)', () => {
  it('holds for harness/', () => {
    const long = longFunctionsIn(join(import.meta.dirname, '..', 'harness'));
    expect(long.map((f) => `${f.file}:${f.line} ${f.name}: ${f.lines} lines (at most ${MAX_FUNCTION_LINES})`)).toEqual([]);
  });

  it('reports a function of 81 lines, and not one of 80', () => {
    // 79 body lines + the opening and closing lines = 81.
    const long = `export function tooLong(): void {\n${body(79)}\n}\n`;
    const fits = `export function fits(): void {\n${body(78)}\n}\n`;
    expect(longFunctions('x.ts', long)).toEqual([{ file: 'x.ts', name: 'tooLong', line: 1, lines: 81 }]);
    expect(longFunctions('x.ts', fits)).toEqual([]);
  });

  it('measures arrow functions, methods and nested functions', () => {
    const text = [
      `const arrow = (): void => {\n${body(90)}\n};`,
      `class C {\n  method(): void {\n${body(85)}\n  }\n}`,
      `function outer(): void {\n  const inner = function (): void {\n${body(82)}\n  };\n}`,
    ].join('\n');
    expect(longFunctions('y.ts', text).map((f) => [f.name, f.lines])).toEqual([
      ['arrow', 92],
      ['method', 87],
      ['outer', 86],
      ['inner', 84],
    ]);
  });
});

describe('no source file over about 1,000 lines (issue 9, item 4)', () => {
  const root = join(import.meta.dirname, '..');
  it('holds for every source folder', () => {
    const dirs = ['replica', 'client', 'infra', 'experiments', 'plots', 'harness'].map((d) => join(root, d));
    expect(longFiles(dirs).map((f) => `${f.file}: ${f.lines} lines (at most ${MAX_SOURCE_LINES})`)).toEqual([]);
  });

  it('reports a file over the cap', () => {
    expect(longFiles([join(root, 'replica')], 10).length).toBeGreaterThan(0);
  });
});
