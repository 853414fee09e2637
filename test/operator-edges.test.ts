/**
 * Smaller hardening (issue 11, finding 10): the admin socket checks what it
 * is asked; a client that half-closes after its commands (`printf ... | nc`)
 * still gets every answer, on the MUPDATE port and on the admin socket;
 * `mupdated dump` by a user who may not open the folder says so in a line;
 * a timeout is recognised by its error class.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { adminSocketPath } from '../src/admin/socket-server.js';
import { MupdateConnection } from '../src/mupdate/client/connection.js';
import { MalformedResponseError, TimeoutError } from '../src/mupdate/client/errors.js';
import { literalCommand, runCli, writeAs } from './helpers/operator-tools.js';
import { RawClient } from './helpers/raw-client.js';
import { serversForFile } from './helpers/file-servers.js';
import { BACKEND_ADMINS, addUser, CLI, type RunningMupdated } from './helpers/server.js';
import { showRun } from './helpers/run.js';
import { readUntilClose } from './helpers/unix-socket.js';

const files = serversForFile();
let server: RunningMupdated;

test.before(async () => {
  server = await files.start({ users: BACKEND_ADMINS });
});

/** Sends `text` on the admin socket, shuts the sending side, and returns everything the server answered. */
function adminAsk(dataDir: string, text: string): Promise<string> {
  return readUntilClose(adminSocketPath(dataDir), {
    send: text,
    end: true,
    encoding: 'utf8',
    timeoutMs: 10_000,
    timeoutText: 'no answer on the admin socket within 10 s',
  });
}

test('the admin socket refuses keep "bogus" (and other malformed requests) and saves nothing; a half-closed request is answered', async (t) => {
  t.is(await writeAs(server, 'backend1', 'ACTIVATE', 'user.edge', 'b1!default', 'a\tlrs\t'), 'X1 OK "done"');
  const refused = await writeAs(server, 'backend2', 'ACTIVATE', 'user.edge', 'b2!default', 'a\tlrs\t');
  const id = Number(/conflict #(\d+)/.exec(refused)?.[1]);
  t.true(id > 0, refused);

  const bogus: unknown = JSON.parse(
    await adminAsk(server.dataDir, `${JSON.stringify({ op: 'resolve', id, keep: 'bogus', by: 'x@cli' })}\n`),
  );
  t.deepEqual(bogus, { ok: false, error: 'bad request: keep: expected current or claimant' });
  for (const [req, why] of [
    [{ op: 'resolve', id: String(id), keep: 'current', by: 'x@cli' }, 'id: expected a conflict number'],
    [{ op: 'dismiss', id, by: '' }, 'by: expected a name (1 to 256 printable characters)'],
    [{ op: 'list', status: 'gone' }, 'status: expected open, resolved, dismissed or none'],
    [{ op: 'drop' }, 'op: expected list, show, resolve or dismiss'],
    [[1, 2], 'expected a JSON object'],
  ] as const) {
    t.deepEqual(JSON.parse(await adminAsk(server.dataDir, `${JSON.stringify(req)}\n`)), { ok: false, error: `bad request: ${why}` });
  }
  const shown = JSON.parse(await adminAsk(server.dataDir, JSON.stringify({ op: 'show', id }))) as {
    ok: boolean;
    conflicts: Array<{ status: string }>;
  };
  t.true(shown.ok, 'a request without its newline is taken when the client shuts its side');
  t.is(shown.conflicts[0].status, 'open', 'the refused requests changed nothing');
  t.false(existsSync(join(server.dataDir, 'audit.log')), 'and audited nothing');
});

test('a client that sends its commands and half-closes (printf ... | nc) gets every answer, then the server closes', async (t) => {
  const c = await RawClient.connect(server.port);
  await c.readBanner();
  const ir = Buffer.from('\0mupdateadmin\0secret').toString('base64');
  c.send(
    `A01 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\n` +
      literalCommand('W1', 'ACTIVATE', 'user.halfclose', 'b1!default', 'a\tlrs\t') +
      'F1 FIND "user.halfclose"\r\nN1 NOOP\r\n',
  );
  c.socket.end();
  t.true(await c.waitClosed(10_000), 'the server closes once it has answered');
  const text = c.takeBuffered().toString('latin1');
  t.regex(text, /^A01 OK "Authenticated"\r\n/m);
  t.regex(text, /^W1 OK "done"\r\n/m);
  t.regex(text, /^F1 MAILBOX \{14\+\}\r\nuser\.halfclose /m);
  t.regex(text, /^F1 OK "Search completed"\r\nN1 OK "Noop done"\r\n$/m);
});

test('a client that half-closes in the middle of a SASL exchange is closed without an answer', async (t) => {
  const c = await RawClient.connect(server.port);
  await c.readBanner();
  c.send('A01 AUTHENTICATE "PLAIN"\r\n');
  t.is(await c.readLine(), '', 'the empty challenge');
  c.socket.end();
  t.true(await c.waitClosed(10_000));
  t.is(c.takeBuffered().length, 0);
});

test('mupdated dump run by a user who cannot open the folder says so in one line (no TypeError)', async (t) => {
  if (process.getuid?.() !== 0) {
    t.log('needs root to run the CLI as another user: not checked');
    t.pass();
    return;
  }
  const outer = files.folder('edges-perm-');
  const data = join(outer, 'data');
  addUser(data, { name: 'mupdateadmin', admin: true });
  const load = await runCli(['load', '-', '--data', data], { input: '{\n}\n' });
  t.is(load.code, 0, showRun(load));
  // Others may look into the folders but not open the LMDB files (0600) to set up their locks.
  chmodSync(outer, 0o755);
  chmodSync(data, 0o755);
  const r = spawnSync(process.execPath, [CLI, 'dump', '--data', data], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 60_000 });
  t.is(r.status, 1, r.stderr);
  t.is(
    r.stderr,
    `mupdated: cannot open ${data}/directory.mdb: permission denied (run mupdated as the user that owns the data folder ${data})\n`,
  );
  t.notRegex(r.stderr, /TypeError/);
});

test('a response that does not come in time is an TimeoutError (the class says it, not the message)', async (t) => {
  // A server that sends a banner and then never answers.
  const silent = createServer((s) => s.write('* AUTH "PLAIN"\r\n* OK MUPDATE "silent" "test" "0" "(master)"\r\n'));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as { port: number }).port;
  try {
    const conn = await MupdateConnection.open({ host: '127.0.0.1', port, user: 'u', password: 'p', timeoutMs: 5000, noLogin: true });
    conn.send('N1', 'NOOP');
    const err = await t.throwsAsync(conn.next(100));
    t.true(err instanceof TimeoutError, String(err));
    t.is((err as TimeoutError).phase, 'response');
    conn.close();
  } finally {
    silent.close();
  }
});

test('a server that goes silent in the TLS handshake, or sends a banner without end, is given up on within the timeout', async (t) => {
  // One answers STARTTLS with OK and then says nothing more; the other sends capability lines forever.
  let flooding = true;
  const stalls = createServer((s) => {
    s.write('* AUTH "PLAIN"\r\n* STARTTLS\r\n* OK MUPDATE "stall" "test" "0" "(master)"\r\n');
    s.on('data', (d: Buffer) => void (/STARTTLS/.test(d.toString()) && s.write('S01 OK "Begin TLS negotiation now"\r\n')));
    s.on('error', () => {});
  });
  const floods = createServer((s) => {
    let n = 0;
    const more = () => {
      while (flooding && !s.destroyed && s.write(`* X${n++} "${'x'.repeat(100)}"\r\n`));
      if (flooding && !s.destroyed) s.once('drain', more);
    };
    more();
    s.on('error', () => {});
  });
  await Promise.all([stalls, floods].map((srv) => new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))));
  const portOf = (srv: typeof stalls) => (srv.address() as { port: number }).port;
  try {
    const tls = await t.throwsAsync(
      MupdateConnection.open({ host: '127.0.0.1', port: portOf(stalls), user: 'u', password: 'p', timeoutMs: 1000, starttls: 'required' }),
    );
    t.true(tls instanceof TimeoutError, String(tls));
    t.regex(tls.message, /TLS handshake/);
    const banner = await t.throwsAsync(
      MupdateConnection.open({ host: '127.0.0.1', port: portOf(floods), user: 'u', password: 'p', timeoutMs: 1000, noLogin: true }),
    );
    t.regex(banner.message, /banner is longer than 65536 bytes/);
  } finally {
    flooding = false;
    stalls.close();
    floods.close();
  }
});

test("a server line that is not a MUPDATE response is a MalformedResponseError that says what the line was (not the server's BAD text)", async (t) => {
  // The n-th connection's first command is answered with the n-th broken line.
  const answers = ['garbage', 'N1 ', 'N1 RESERVE "a" "b!c" "d" "e"', 'N1 MAILBOX "a"', 'N1 MAILBOX'];
  let connections = 0;
  const broken = createServer((s) => {
    const answer = answers[connections++];
    s.write('* AUTH "PLAIN"\r\n* OK MUPDATE "broken" "test" "0" "(master)"\r\n');
    s.once('data', () => s.write(`${answer}\r\n`));
  });
  await new Promise<void>((r) => broken.listen(0, '127.0.0.1', r));
  const port = (broken.address() as { port: number }).port;
  const seen: string[] = [];
  try {
    for (let i = 0; i < answers.length; i++) {
      const conn = await MupdateConnection.open({ host: '127.0.0.1', port, user: 'u', password: 'p', timeoutMs: 5000, noLogin: true });
      try {
        conn.send('N1', 'NOOP');
        const err = await t.throwsAsync(conn.next(5000));
        t.true(err instanceof MalformedResponseError, String(err));
        seen.push(err.message);
      } finally {
        conn.close();
      }
    }
  } finally {
    broken.close();
  }
  t.deepEqual(seen, [
    'malformed response from the server: a line that does not start with a tag and a space',
    'malformed response from the server: a tag without a response word (tag "N1")',
    'malformed response from the server: a response with too many strings, or bytes after them (tag "N1")',
    'malformed response from the server: a response with too few strings (tag "N1")',
    'malformed response from the server: a response with too few strings (tag "N1")',
  ]);
});

test('SIGTERM with an admin-socket connection open and silent still shuts down cleanly', async (t) => {
  const s = await files.start();
  await s.waitForLog(/"msg":"ready to serve"/);
  const silent = connect(adminSocketPath(s.dataDir));
  await new Promise<void>((resolve, reject) => {
    silent.once('connect', resolve);
    silent.once('error', reject);
  });
  silent.on('error', () => {});
  t.is(await s.stop('SIGTERM'), 0);
  t.true(
    s.logs.some((l) => l.includes('"msg":"stopped"')),
    s.logs.slice(-5).join('\n'),
  );
  silent.destroy();
});
