/**
 * Tidiness rules the type checker and the linter do not know (issue 9, item 5): no function in
 * harness/ (the CLI) longer than about 80 lines, so a command reads as a few named steps.
 * Measured with the TypeScript compiler API: every function declaration, method, accessor,
 * constructor, function expression and arrow function, from its first line to its last
 * (nested functions count in their parent too).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

export const MAX_FUNCTION_LINES = 80;

export interface LongFunction {
  readonly file: string;
  readonly name: string;
  readonly line: number;
  readonly lines: number;
}

function nameOf(node: ts.Node): string {
  const named = node as ts.Node & { name?: ts.Node };
  if (named.name && ts.isIdentifier(named.name)) return named.name.text;
  if (ts.isArrowFunction(node) || ts.isFunctionExpression(node)) {
    const parent = node.parent;
    if (parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
    if (parent && ts.isPropertyAssignment(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
    return '(anonymous)';
  }
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  return '(anonymous)';
}

/** The functions of one source text longer than `max` lines. */
export function longFunctions(file: string, text: string, max = MAX_FUNCTION_LINES): LongFunction[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: LongFunction[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body !== undefined) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = end - start + 1;
      if (lines > max) out.push({ file, name: nameOf(node), line: start + 1, lines });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** The long functions of every source file (not tests) directly in `dir`. */
export function longFunctionsIn(dir: string, max = MAX_FUNCTION_LINES): LongFunction[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .sort()
    .flatMap((f) => longFunctions(join(dir, f), readFileSync(join(dir, f), 'utf8'), max));
}

/**
 * A source file's length cap (issue 9 item 4: "no source file over about 1,000 lines"; raft
 * keeps raft.go near 2,200 by moving state with its own invariants out). Tests may run longer.
 */
export const MAX_SOURCE_LINES = 1_100;

/** Source files (not *.test.ts) under `dirs` longer than `max` lines. */
export function longFiles(dirs: readonly string[], max = MAX_SOURCE_LINES): { file: string; lines: number }[] {
  const out: { file: string; lines: number }[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) {
        const lines = readFileSync(p, 'utf8').split('\n').length;
        if (lines > max) out.push({ file: p, lines });
      }
    }
  };
  for (const d of dirs) walk(d);
  return out;
}
