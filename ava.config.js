// ava's settings (moved here from package.json: a sort order is a function).
//
// Three files run at a time. Files are started longest first, so the last
// minutes of `npm test` are not one long file running alone after the short
// ones are done: the files named in LONG_FIRST (the slowest, measured) start
// first in this order, every other file after them in name order.
const LONG_FIRST = [
  'cluster-failures-storm',
  'crash',
  'conflicts',
  'cluster-tools',
  'bench-quick',
  'crash-cluster',
  'cluster-failures-nodes',
  'cluster-failures-cyrus',
  'dump-load',
  // mostly waits (for the idle trim): started early, it overlaps the others
  'unmap',
].map((name) => `/test/${name}.test.ts`);

function rank(file) {
  const i = LONG_FIRST.findIndex((suffix) => file.endsWith(suffix));
  return i === -1 ? LONG_FIRST.length : i;
}

export default {
  files: ['test/**/*.test.ts'],
  typescript: {
    rewritePaths: { 'test/': 'dist/test/' },
    compile: false,
  },
  timeout: '120s',
  concurrency: 3,
  workerThreads: false,
  sortTestFiles: (a, b) => rank(a) - rank(b) || a.localeCompare(b, [], { numeric: true }),
};
