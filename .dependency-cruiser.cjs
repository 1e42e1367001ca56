/**
 * The architecture as rules that fail the build (DESIGN.md "Layout"; issue 9). Imports point
 * down this list only:
 *
 *   harness/ -> plots/ -> experiments/ -> infra/ -> client/ -> replica/
 *
 * replica/ and client/ are pure: no sockets, files, processes or OS queries (their clock,
 * timers and randomness come in as inputs; test/architecture.test.ts checks the calls). No
 * cycles, type-only imports included. Tests (*.test.ts) and test/ may import any layer, but
 * no source file may import test code.
 */
const LAYERS = ['harness', 'plots', 'experiments', 'infra', 'client', 'replica'];

const upward = LAYERS.slice(1).map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `${layer}/ sits below ${LAYERS.slice(0, i + 1).join(', ')}: it may not import them (DESIGN.md "Layout")`,
  severity: 'error',
  from: { path: `^${layer}/`, pathNot: '\\.test\\.ts$' },
  to: { path: `^(${LAYERS.slice(0, i + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'no-cycles',
      comment: 'Import cycles, type-only ones included, hide which module depends on which.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'pure-cores',
      comment: 'replica/ and client/ do no I/O: they run unchanged in the simulator and in processes.',
      severity: 'error',
      from: { path: '^(replica|client)/', pathNot: '\\.test\\.ts$' },
      to: {
        dependencyTypes: ['core'],
        path: '^(node:)?(net|fs|fs/promises|child_process|os|dgram|http|https|tls|worker_threads|cluster|timers|timers/promises|readline)$',
      },
    },
    {
      name: 'no-test-code-in-sources',
      comment: 'Test-only code lives under test/ (or in *.test.ts) and is never shipped.',
      severity: 'error',
      from: { path: '^(harness|plots|experiments|infra|client|replica)/', pathNot: '\\.test\\.ts$' },
      to: { path: '(^test/|\\.test\\.ts$)' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js'] },
  },
};
