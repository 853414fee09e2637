/**
 * A master without etcd loads none of the etcd client (etcd3, gRPC,
 * protobufjs): at start-up they cost about a quarter of the time to the
 * first answer, and memory the master never uses.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PROJECT_ROOT } from './helpers/server.js';

test('the master and the directory opener load no etcd client modules until a cluster is configured', (t) => {
  const modules = ['dist/src/cli/master.js', 'dist/src/cli/open-directory.js'].map((m) => pathToFileURL(join(PROJECT_ROOT, m)).href);
  const script = [
    "import { createRequire } from 'node:module';",
    ...modules.map((m) => `await import(${JSON.stringify(m)});`),
    'const loaded = Object.keys(createRequire(import.meta.url).cache);',
    'console.log(JSON.stringify({ total: loaded.length, etcd: loaded.filter((k) => /[\\\\/](etcd3|@grpc|protobufjs)[\\\\/]/.test(k)) }));',
  ].join('\n');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: PROJECT_ROOT, timeout: 30_000 });
  t.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { total: number; etcd: string[] };
  t.true(out.total > 0, 'CommonJS modules were loaded (lmdb, pino): the check sees them');
  t.deepEqual(out.etcd, []);
});
