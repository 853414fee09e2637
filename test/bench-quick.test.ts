/**
 * Issue 6: `npm run bench -- --quick` works end to end: it exits 0, prints the
 * comparison table and writes a JSON-lines results file whose records all say
 * the answers were correct. No timing is asserted (CI machines vary).
 */
import test from 'ava';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runProgram } from './helpers/run.js';
import { PROJECT_ROOT, tempDir } from './helpers/server.js';

test('bench --quick runs both servers, checks every answer and writes its results', async (t) => {
  // Bounded, with room for a machine where other test files run at the same time (ava runs two at once).
  t.timeout(250_000);
  const results = tempDir('bench-quick-');
  t.teardown(() => rmSync(results, { recursive: true, force: true }));
  // (the bench bounds its own loops; SIGKILL after 240 s if it does not end)
  const { code, stdout, stderr } = await runProgram(
    process.execPath,
    ['--expose-gc', join(PROJECT_ROOT, 'dist/bench/run.js'), '--quick', '--results', results],
    {
      timeoutMs: 240_000,
    },
  );
  t.is(code, 0, `bench exited ${code}\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-4000)}`);
  t.regex(stdout, /\| workload +\| mupdated \| +Cyrus \| +ratio \| +target \| met\? \|/);
  for (const row of [
    'durable ACTIVATE, 16 conns x 8 pipelined',
    'FIND, 16 conns x 8 pipelined',
    'LIST of 20k entries',
    'propagation to 10 listeners, p99',
    'idle authenticated connections held',
    'RSS with 20k entries',
  ]) {
    t.true(stdout.includes(row), `table row ${row} missing:\n${stdout}`);
  }
  const files = readdirSync(results).filter((f) => f.endsWith('.jsonl'));
  t.is(files.length, 1);
  const records = readFileSync(join(results, files[0]), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.true(records.length > 10);
  t.is(records[0].workload, 'run');
  for (const r of records) t.is(r.correct, true, `record not correct: ${JSON.stringify(r).slice(0, 2000)}`);
  const workloads = new Set(records.map((r) => r.workload));
  for (const w of [
    'activate_1x1',
    'activate_16x8',
    'churn_8',
    'find_16x8',
    'list_all',
    'dump_all',
    'propagation_p99',
    'activate_during_dumps_p99',
    'mixed_8',
    'idle_connections',
    'rss',
    'push',
    'create_1x1',
    'list_small',
    'resync_writer_p99',
    'resync_all_dumps',
    'anon_after_suite',
    'rss_after_suite',
  ]) {
    t.true(workloads.has(w), `no record for ${w}`);
  }
  // with the Cyrus programs installed, every comparable row has both figures; CI must have them
  if (process.env.CI) t.notRegex(stdout, /Cyrus not measured/, 'CI runs the benchmark against the real Cyrus mupdate');
  if (!/Cyrus not measured/.test(stdout)) {
    const list = records.find((r) => r.workload === 'list_all')!;
    t.is(typeof list.cyrus, 'number');
    t.is(typeof list.mupdated, 'number');
  }
});
