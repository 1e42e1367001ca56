/**
 * The purity rule that dependency-cruiser cannot see (DESIGN.md "Layout"): replica/ and client/
 * read no clock, set no timer and draw no randomness of their own. Time and timers come in as
 * inputs (`step(input, nowMs)`, timer outputs), randomness as a seeded Rng. Checked on the
 * syntax tree, so comments and strings that mention Date.now do not count.
 */
import { readFileSync } from 'node:fs';
import ts from 'typescript';

/** Calls and reads a pure core may not make, as `object.member` or a bare global name. */
export const FORBIDDEN_MEMBERS: readonly string[] = [
  'Date.now',
  'Math.random',
  'performance.now',
  'process.hrtime',
  'crypto.randomBytes',
  'crypto.getRandomValues',
];
export const FORBIDDEN_GLOBALS: readonly string[] = [
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'queueMicrotask',
  'process',
  'randomBytes',
  'randomUUID',
];

export interface PurityViolation {
  readonly file: string;
  readonly line: number;
  readonly what: string;
}

/** Every forbidden clock, timer or randomness use in `source` (`new Date()` included). */
export function purityViolations(file: string, source = readFileSync(file, 'utf8')): PurityViolation[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.ES2022, true);
  const out: PurityViolation[] = [];
  const at = (node: ts.Node, what: string): void => {
    out.push({ file, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1, what });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isPropertyAccessExpression(node)) {
      const text = `${node.expression.getText(sf)}.${node.name.text}`;
      if (FORBIDDEN_MEMBERS.includes(text)) at(node, text);
    } else if (ts.isNewExpression(node) && node.expression.getText(sf) === 'Date') {
      at(node, 'new Date');
    } else if (ts.isIdentifier(node) && FORBIDDEN_GLOBALS.includes(node.text)) {
      const parent = node.parent;
      // A property name (`x.process`, `{ process: 1 }`) or a declaration of our own is not the global.
      const isMemberName = ts.isPropertyAccessExpression(parent) && parent.name === node;
      const isKey =
        (ts.isPropertyAssignment(parent) ||
          ts.isPropertyDeclaration(parent) ||
          ts.isMethodDeclaration(parent) ||
          ts.isPropertySignature(parent) ||
          ts.isMethodSignature(parent)) &&
        parent.name === node;
      if (!isMemberName && !isKey) at(node, node.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}
