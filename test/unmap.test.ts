/**
 * An idle server unmaps its directory file (LmdbDirectoryStore.releaseMapping,
 * driven by idle-trim.ts): the pages LISTs and dumps touched stop counting in
 * its RSS, and everything reads and writes as before, on the reopened file.
 */
import test from 'ava';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LmdbDirectoryStore } from '../src/store/lmdb-store.js';
import type { Entry } from '../src/store/types.js';
import { httpGet, metricsPort, sample } from './helpers/metrics-tools.js';
import { runCli } from './helpers/operator-tools.js';
import { RawClient } from './helpers/raw-client.js';
import { showRun } from './helpers/run.js';
import { addUser, removeDir, startMupdated, tempDir } from './helpers/server.js';
import { active, B, plain } from './helpers/store-entries.js';

const put = (entry: Entry) => () => ({ kind: 'put' as const, entry, result: null });

// The contract for every store (snapshots, reads, writes, listeners) is in the store conformance suite.
test('the LMDB store also refuses while a write waits for its commit, and keeps its change log across the reopening', async (t) => {
  const dir = tempDir('unmap-store-');
  const store = LmdbDirectoryStore.open(dir, { order: 'cyrus' });
  t.teardown(async () => {
    await store.close();
    removeDir(dir);
  });
  for (let i = 0; i < 100; i++) await store.mutate(B(`user.u${i}`), put(active(`user.u${i}`, 'b1!p', `u${i}\tlrs\t`)));
  const waiting = store.mutate(B('user.waiting'), put(active('user.waiting', 'b1!p')));
  t.false(await store.releaseMapping(), 'refused: a write waits for its commit');
  await waiting;
  t.true(await store.releaseMapping(), 'done once it has committed');
  await store.mutate(B('user.after'), put(active('user.after', 'b2!p')));
  t.is(store.lastSeq, 102);
  const snapshot = store.snapshot();
  try {
    t.deepEqual(
      [...(snapshot.changesSince(100) ?? [])].map((c) => c.name.toString('latin1')),
      ['user.waiting', 'user.after'],
    );
    t.deepEqual(plain(snapshot.find(B('user.u42'))), plain(active('user.u42', 'b1!p', 'u42\tlrs\t')));
  } finally {
    snapshot.close();
  }
});

/** `"name": {...}` lines of a ctl_mboxlist -d dump. */
function writeDump(path: string, count: number): void {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `user.u${String(i).padStart(6, '0')}`;
    lines.push(
      `"${name}": {"name": "${name}", "mbtype": "e", "server": "backend1", "partition": "p${i % 4}", "acl": {"u${i}": "lrswipkxtecda"}}`,
    );
  }
  writeFileSync(path, `{\n${lines.join(',\n')}\n}\n`);
}

function logged(line: string): Record<string, unknown> {
  return JSON.parse(line) as Record<string, unknown>;
}

test('an idle master unmaps its directory file once its dump workers are gone: the RSS falls, and FIND, ACTIVATE and a stream opened before go on', async (t) => {
  t.timeout(120_000);
  const dataDir = tempDir('unmap-server-');
  const dump = join(dataDir, 'dump.json');
  writeDump(dump, 200_000);
  const load = await runCli(['load', dump, '--data', dataDir]);
  t.is(load.code, 0, showRun(load));
  addUser(dataDir, { name: 'mupdateadmin', admin: true });
  const server = await startMupdated({ dataDir, config: { dump_worker_idle: 1 }, args: ['--metrics-listen', '127.0.0.1:0'] });
  t.teardown(() => server.stop());
  // A stream and a LIST read the whole file (in a dump worker, then the server thread's FINDs).
  const stream = await RawClient.login(server.port);
  stream.send('U01 UPDATE\r\n');
  const dumped = await stream.readUntilTagged('U01', 30_000);
  t.is(dumped[dumped.length - 1], 'U01 OK "streaming starts"');
  const c = await RawClient.login(server.port);
  c.send('L01 LIST\r\n');
  t.is((await c.readUntilTagged('L01', 30_000)).pop(), 'L01 OK "list complete"');

  const line = logged(await server.waitForLog(/"msg":"idle server: directory file unmapped"/, 60_000));
  const before = line.fileRssKbBefore as number;
  const after = line.fileRssKbAfter as number;
  const metrics = await httpGet(await metricsPort(server), '/metrics');
  t.is(sample(metrics.body, 'mupdated_directory_unmaps_total'), 1, 'counted in the metrics');
  const fileKb = statSync(join(dataDir, 'directory.mdb')).size / 1024;
  t.true(before - after > fileKb / 2, `the file's pages (${fileKb} kB) left the RSS: ${before} kB -> ${after} kB`);

  c.send('A02 ACTIVATE "user.after" "backend2!p1" "after lrs"\r\n');
  t.deepEqual(await c.readUntilTagged('A02'), ['A02 OK "done"']);
  c.send('F03 FIND "user.u000042"\r\n');
  const found = await c.readUntilTagged('F03');
  t.true(
    found.some((l) => l.includes('backend1!p2')),
    found.join('\n'),
  );
  t.is(found.pop(), 'F03 OK "Search completed"');
  let heard = '';
  for (let i = 0; i < 5 && !heard.includes('user.after'); i++) heard += `${await stream.readLine(10_000)}\n`;
  t.regex(heard, /user\.after/, 'the stream opened before the unmapping hears the change');
  stream.close();
  c.close();
});
