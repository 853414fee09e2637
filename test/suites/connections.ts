/**
 * Connection handling (spec 5.5, 5.6, 8.3): the connection limit, many
 * simultaneous connections, and the idle timeout's lower bound.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { RawClient } from '../helpers/raw-client.js';
import { removeDir, tempDir } from '../helpers/server.js';
import { inBatches, login, readResponse, status } from '../helpers/directory.js';
import { serverScope, type ServerFactory } from '../helpers/server-factory.js';

/** Everything a connection receives until the server closes it. */
async function bytesUntilClose(c: RawClient, timeoutMs = 30_000): Promise<{ bytes: Buffer; closed: boolean }> {
  const closed = await c.waitClosed(timeoutMs);
  return { bytes: c.takeBuffered(), closed };
}

/** Registers the tests on servers made by `start` (a single master, or a cluster node). */
export function connectionTests(start: ServerFactory): void {
  const withServer = serverScope(start);

  test('C64 with max_connections N, connection N+1 gets only * BYE "<text>" CRLF and is closed; the N others keep working', async (t) => {
    await withServer({ config: { max_connections: 5 } }, async (s) => {
      // the limit counts connections that have not logged in yet
      const logged = await Promise.all([1, 2, 3].map(() => login(s.port)));
      const fresh = await Promise.all([1, 2].map(() => RawClient.connectWithBanner(s.port)));
      // one of the logged-in ones becomes an UPDATE listener
      const listener = logged[0];
      listener.send('U1 UPDATE\r\n');
      t.is((await readResponse(listener, 'U1')).status, 'U1 OK "streaming starts"');
      for (let round = 0; round < 2; round++) {
        const extra = await RawClient.connect(s.port);
        const { bytes, closed } = await bytesUntilClose(extra);
        t.true(closed, 'the extra connection is closed by the server');
        const text = bytes.toString('latin1');
        t.regex(text, /^\* BYE "[^"\r\n]*"\r\n$/, `exactly one BYE line, no banner: ${JSON.stringify(text)}`);
        t.false(bytes.includes(0), 'no NUL byte');
      }
      // the five others are unaffected
      t.is(await status(logged[1], 'N1', 'NOOP'), 'N1 OK "Noop done"');
      t.is(await status(logged[2], 'W1', 'ACTIVATE "user.c64.a" "backend1!default" ""'), 'W1 OK "done"');
      listener.send('N2 NOOP\r\n');
      t.deepEqual(await readResponse(listener, 'U1', 'N2'), {
        records: [{ kind: 'MAILBOX', args: ['user.c64.a', 'backend1!default', ''] }],
        status: 'N2 OK "Noop done"',
      });
      for (const f of fresh) {
        f.send('L1 LOGOUT\r\n');
        t.is(await f.readLine(30_000), 'L1 OK "bye-bye"');
        t.true(await f.waitClosed(30_000));
      }
      // two places are free again: the next two connections get the banner and log in
      const again = await Promise.all([1, 2].map(() => login(s.port)));
      t.is(await status(again[0], 'N3', 'NOOP'), 'N3 OK "Noop done"');
      // and the limit holds again
      const extra = await RawClient.connect(s.port);
      const { bytes } = await bytesUntilClose(extra);
      t.regex(bytes.toString('latin1'), /^\* BYE "[^"\r\n]*"\r\n$/);
      t.is(s.child.exitCode, null);
      for (const c of [...logged, ...again]) c.close();
    });
  });

  test('C64 with max_connections 2000, 1100 simultaneous authenticated connections all get their NOOP answered', async (t) => {
    const COUNT = 1100;
    const limit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
    t.true(
      limit === Infinity || Number.isNaN(limit) || limit >= COUNT + 200,
      `this test needs ${COUNT + 200} file descriptors in the test process and in the server, but 'ulimit -n' is ${limit}; raise it (ulimit -n 4096) and run again`,
    );
    await withServer({ config: { max_connections: 2000 } }, async (s) => {
      const clients = await inBatches(
        Array.from({ length: COUNT }, (_, i) => i),
        50,
        () => login(s.port, 'mupdateadmin', 'secret', 60_000),
      );
      t.is(clients.length, COUNT);
      // every one sends a NOOP at once; every one is answered
      clients.forEach((c, i) => c.send(`N${i} NOOP\r\n`));
      const answers = await Promise.all(clients.map((c) => c.readLine(60_000).catch((e: Error) => e.message)));
      const wrong = answers.map((a, i) => [i, a] as const).filter(([i, a]) => a !== `N${i} OK "Noop done"`);
      t.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of ${COUNT} NOOPs not answered`);
      // and the server still takes new work
      t.is(await status(clients[COUNT - 1], 'W1', 'ACTIVATE "user.c64.many" "backend1!default" ""'), 'W1 OK "done"');
      t.is(s.child.exitCode, null);
      for (const c of clients) c.close();
    });
  });

  test('idle_timeout below 15 minutes (RFC 3656) is refused at startup', async (t) => {
    const dataDir = tempDir();
    try {
      await t.throwsAsync(start({ dataDir, config: { idle_timeout: 60 } }), { message: /exited/ });
      // the boundary itself is accepted
      const ok = await start({ dataDir, config: { idle_timeout: 900 } });
      try {
        const c = await RawClient.connect(ok.port);
        t.regex(await c.readLine(30_000), /^\* AUTH /);
        c.close();
      } finally {
        await ok.stop();
      }
    } finally {
      removeDir(dataDir);
    }
  });

  test('with idle_timeout 900, idle connections and idle UPDATE listeners are not closed early', async (t) => {
    await withServer({ config: { idle_timeout: 900 } }, async (s) => {
      const idle = await login(s.port);
      const listener = await login(s.port);
      listener.send('U1 UPDATE\r\n');
      t.is((await readResponse(listener, 'U1')).status, 'U1 OK "streaming starts"');
      const unauth = await RawClient.connectWithBanner(s.port);
      t.true(await idle.expectSilence(3000), 'nothing sent to an idle connection');
      t.false(idle.ended || listener.ended || unauth.ended);
      t.is(await status(idle, 'N1', 'NOOP'), 'N1 OK "Noop done"');
      t.is(await status(listener, 'N2', 'NOOP'), 'N2 OK "Noop done"');
      unauth.send('N3 NOOP\r\n');
      t.is(await unauth.readLine(30_000), 'N3 BAD "Please login first"');
      idle.close();
      listener.close();
      unauth.close();
    });
  });
}
