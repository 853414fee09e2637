/**
 * A slave's list of masters (`--master A:P,B:P`, or the same in
 * mupdate_server): parsed strictly, tried in order at every connect, the
 * first that answers used. Real masters on loopback; the failover between
 * cluster nodes with an incremental resume is in cluster-failures-nodes.
 */
import test from 'ava';
import pino from 'pino';
import { ConfigError, parseMasterList } from '../src/config.js';
import { connectFirst } from '../src/resync/masters.js';
import { MupdateClientError } from '../src/mupdate/client/errors.js';
import { freePort } from './helpers/ports.js';
import { login } from './helpers/directory.js';
import { readStatus, waitUntil } from './helpers/slave-tools.js';
import { removeDir, startMupdated } from './helpers/server.js';

const quiet = pino({ level: 'silent' });

test('parseMasterList: one or several HOST:PORT, a /suffix ignored, IPv6 in brackets', (t) => {
  t.deepEqual(parseMasterList('127.0.0.1:3905'), [{ host: '127.0.0.1', port: 3905 }]);
  t.deepEqual(parseMasterList('a.example:1, b.example:2/x,[::1]:3'), [
    { host: 'a.example', port: 1 },
    { host: 'b.example', port: 2 },
    { host: '::1', port: 3 },
  ]);
  t.throws(() => parseMasterList(' , '), { instanceOf: ConfigError });
  t.throws(() => parseMasterList('a:1,b:99999'), { instanceOf: ConfigError });
});

test('connectFirst skips a master that does not answer and names every failure when none does', async (t) => {
  const master = await startMupdated();
  t.teardown(async () => {
    await master.stop();
    removeDir(master.dataDir);
  });
  const dead = await freePort();
  const login = { user: 'mupdateadmin', password: 'secret', timeoutMs: 5_000 };
  const { conn, master: used } = await connectFirst(
    [
      { host: '127.0.0.1', port: dead },
      { host: '127.0.0.1', port: master.port },
    ],
    login,
    quiet,
  );
  conn.close();
  t.is(used.port, master.port);
  const err = await t.throwsAsync(
    connectFirst(
      [
        { host: '127.0.0.1', port: dead },
        { host: '127.0.0.1', port: dead },
      ],
      login,
      quiet,
    ),
    { instanceOf: MupdateClientError },
  );
  t.regex(err.message, new RegExp(`no master answered \\(127\\.0\\.0\\.1:${dead}: .*; 127\\.0\\.0\\.1:${dead}: `));
});

test('a slave whose mupdate_server lists a dead master first follows the next one', async (t) => {
  const master = await startMupdated();
  const dead = await freePort();
  const c = await login(master.port);
  c.send('S1 ACTIVATE "user.ml.a" "b1!default" ""\r\n');
  t.is(await c.readLine(10_000), 'S1 OK "done"');
  c.close();
  const slave = await startMupdated({
    mode: 'slave',
    config: {
      mupdate_server: `127.0.0.1:${dead},127.0.0.1:${master.port}`,
      mupdate_authname: 'mupdateadmin',
      mupdate_password: 'secret',
      mupdate_retry_delay: 1,
    },
  });
  t.teardown(async () => {
    await slave.stop();
    await master.stop();
    removeDir(slave.dataDir);
    removeDir(master.dataDir);
  });
  await waitUntil(() => readStatus(slave.dataDir)?.state === 'streaming', 30_000, 'the slave to stream');
  t.is(readStatus(slave.dataDir)?.master, `127.0.0.1:${master.port}`);
});
