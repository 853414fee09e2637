/**
 * Interop: the real Debian Cyrus `mupdatetest` (imtest in MUPDATE mode)
 * against `mupdated master`: a single master, or every node of a cluster.
 * Its output after login is the server's byte stream, printed raw (CRLF
 * kept), so the responses are checked byte for byte.
 */
import test from 'ava';
import { RawClient } from '../helpers/raw-client.js';
import { removeDir, type RunningMupdated } from '../helpers/server.js';
import { cyrusAvailable, interopTest, listDirectory, runMupdatetest, type DirEntry } from '../helpers/cyrus.js';
import { waitInSync } from '../helpers/slave-tools.js';

/** How a data response looks in the output: each literal body joined with the next `{n+}`. */
function responseLines(tag: string, e: DirEntry): string[] {
  const fields = e.state === 'ACTIVE' ? [e.name, e.location, e.acl] : [e.name, e.location];
  const out = [`${tag} ${e.state === 'ACTIVE' ? 'MAILBOX' : 'RESERVE'} {${fields[0].length}+}`];
  for (let i = 0; i < fields.length; i++) {
    const next = fields[i + 1];
    out.push(next === undefined ? fields[i] : `${fields[i]} {${next.length}+}`);
  }
  return out;
}

const BANNER_AND_LOGIN = [
  'S: * AUTH "SCRAM-SHA-256" "PLAIN"',
  'S: * PARTIAL-UPDATE',
  /^S: \* OK MUPDATE "[^"]*" "mupdated" "[^"]*" "\(master\)"$/,
  'C: A01 AUTHENTICATE "PLAIN" {44+}',
  Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64'),
  'S: A01 OK "Authenticated"',
  'Authenticated.',
  'Security strength factor: 0',
];

function loginPart(lines: string[]): Array<string | RegExp> {
  return BANNER_AND_LOGIN.map((want, i) => (typeof want === 'string' ? lines[i] : want.test(lines[i] ?? '') ? want : lines[i]));
}

/** Server lines end in CRLF in mupdatetest's output; its own `Connection closed.` in LF. */
function rawTail(serverLines: string[]): string {
  return `${serverLines.map((l) => `${l}\r\n`).join('')}C: Q01 LOGOUT\r\nQ01 OK "bye-bye"\r\nConnection closed.\n`;
}

function afterLoginRaw(output: string): string {
  const marker = 'Security strength factor: 0\n';
  const at = output.indexOf(marker);
  return at < 0 ? `(no "${marker.trim()}" in output)\n${output}` : output.slice(at + marker.length);
}

/**
 * Registers the tests. `startServers` gives the servers: one single master,
 * or several nodes of one cluster; every test runs on each of them in turn,
 * and a change "from another client" goes through the next server.
 */
export function mupdatetestTests(startServers: () => Promise<RunningMupdated[]>): void {
  const interop = interopTest('serial');

  let servers: RunningMupdated[] = [];

  test.before(async () => {
    if (!cyrusAvailable()) return;
    servers = await startServers();
    const c = await RawClient.login(servers[0].port);
    const seed = [
      'S1 ACTIVATE "user.mt.zoe" "mtback!default" "zoe\tlrswipkxtecdan\t"',
      'S2 ACTIVATE "user.mt.zoe.Sent" "mtback!default" "zoe\tlrswipkxtecdan\t"',
      'S3 ACTIVATE "user.mt.zoe-x" "mtback!default" "zoe\tlrs\tanyone\tp\t"',
      'S4 ACTIVATE "user.mt.bob" "mtback!default" ""',
      'S5 RESERVE "user.mt.res" "mtback!ssd"',
      'S6 ACTIVATE "user.other" "otherback!default" "other\tlrs\t"',
    ];
    c.send(seed.map((l) => `${l}\r\n`).join(''));
    for (let i = 1; i <= seed.length; i++) {
      const answer = await c.readUntilTagged(`S${i}`);
      if (answer.join('|') !== `S${i} OK "done"`) throw new Error(`seeding failed: ${answer.join('|')}`);
    }
    c.close();
    // Every server lists the seed before the tests compare listings.
    for (const other of servers.slice(1)) {
      const r = await waitInSync(other.port, servers[0].port, 10_000);
      if (r.slave.join('\n') !== r.master.join('\n')) throw new Error(`server on port ${other.port} does not list the seed`);
    }
  });

  test.after.always(async () => {
    for (const server of servers) {
      await server.stop();
      removeDir(server.dataDir);
    }
  });

  interop(
    'C57 the real mupdatetest logs in with PLAIN and runs ACTIVATE, FIND, LIST, DELETE; LOGOUT at end of input gets "bye-bye", the server closes, "Connection closed."',
    async (t) => {
      for (const server of servers) {
        const port = server.port;
        const name = 'user.mt.n\xe4u x'; // a space and an 8-bit byte
        const r = await runMupdatetest(port, [
          `X1 ACTIVATE "${name}" "mtback!default" "n\xe4u\tlrswipkxtecdan\t"`,
          { waitFor: 'X1 OK "done"\r\n' },
          `X2 FIND "${name}"`,
          { waitFor: 'X2 OK "Search completed"\r\n' },
          'X3 LIST "mtback!"',
          { waitFor: 'X3 OK "list complete"\r\n' },
          `X4 DELETE "${name}"`,
          { waitFor: 'X4 OK "done"\r\n' },
          `X5 FIND "${name}"`,
          { waitFor: 'X5 OK "Search completed"\r\n' },
        ]);
        t.is(r.code, 0, r.stderr);
        t.deepEqual(loginPart(r.lines), BANNER_AND_LOGIN);
        const mine: DirEntry = { name, state: 'ACTIVE', location: 'mtback!default', acl: 'n\xe4u\tlrswipkxtecdan\t' };
        const listed: DirEntry[] = [
          { name: 'user.mt.bob', state: 'ACTIVE', location: 'mtback!default', acl: '' },
          mine,
          { name: 'user.mt.res', state: 'RESERVED', location: 'mtback!ssd', acl: '' },
          { name: 'user.mt.zoe', state: 'ACTIVE', location: 'mtback!default', acl: 'zoe\tlrswipkxtecdan\t' },
          { name: 'user.mt.zoe.Sent', state: 'ACTIVE', location: 'mtback!default', acl: 'zoe\tlrswipkxtecdan\t' },
          { name: 'user.mt.zoe-x', state: 'ACTIVE', location: 'mtback!default', acl: 'zoe\tlrs\tanyone\tp\t' },
        ];
        t.is(
          afterLoginRaw(r.output),
          rawTail([
            'X1 OK "done"',
            ...responseLines('X2', mine),
            'X2 OK "Search completed"',
            ...listed.flatMap((e) => responseLines('X3', e)), // 3.6 order: zoe.Sent before zoe-x
            'X3 OK "list complete"',
            'X4 OK "done"',
            'X5 OK "Search completed"',
          ]),
        );
        t.deepEqual(r.afterLogin.slice(-3), ['C: Q01 LOGOUT', 'Q01 OK "bye-bye"', 'Connection closed.']);
      }
    },
  );

  interop(
    "C57 C40 C42 UPDATE and NOOP typed by hand into the real mupdatetest: the dump, a pushed change before the NOOP's OK, BAD while streaming, LOGOUT",
    async (t) => {
      for (const [i, server] of servers.entries()) {
        const port = server.port;
        const before = await listDirectory(port);
        const live: DirEntry = { name: `user.mt.live${i || ''}`, state: 'ACTIVE', location: 'mtback!default', acl: 'live\tlrs\t' };
        const r = await runMupdatetest(port, [
          'U1 UPDATE',
          { waitFor: 'U1 OK "streaming starts"\r\n' },
          'U2 FIND "user.mt.bob"',
          { waitFor: 'U2 BAD "not legal when streaming"\r\n' },
          {
            run: async () => {
              // Through the next server: a node must stream changes made through any node.
              const c = await RawClient.login(servers[(i + 1) % servers.length].port);
              c.send(`W1 ACTIVATE "${live.name}" "${live.location}" "${live.acl}"\r\n`);
              const answer = await c.readUntilTagged('W1');
              c.close();
              if (answer.join('|') !== 'W1 OK "done"') throw new Error(`ACTIVATE from another client failed: ${answer.join('|')}`);
            },
          },
          'N1 NOOP',
          { waitFor: 'N1 OK "Noop done"\r\n' },
          'N2 NOOP',
          { waitFor: 'N2 OK "Noop done"\r\n' },
        ]);
        t.is(r.code, 0, r.stderr);
        t.deepEqual(loginPart(r.lines), BANNER_AND_LOGIN);
        t.true(before.length >= 6, 'the seeded entries are listed');
        t.is(
          afterLoginRaw(r.output),
          rawTail([
            ...before.flatMap((e) => responseLines('U1', e)),
            'U1 OK "streaming starts"',
            'U2 BAD "not legal when streaming"',
            ...responseLines('U1', live),
            'N1 OK "Noop done"',
            'N2 OK "Noop done"',
          ]),
        );
      }
    },
  );

  interop('C59 the real mupdatetest without -u (empty authzid) logs in', async (t) => {
    for (const server of servers) {
      const r = await runMupdatetest(server.port, ['X1 NOOP', { waitFor: 'X1 OK "Noop done"\r\n' }], { authzid: null });
      t.is(r.code, 0, r.stderr);
      const ir = Buffer.from('\0mupdateadmin\0secret').toString('base64');
      t.true(r.lines.includes(`C: A01 AUTHENTICATE "PLAIN" {${ir.length}+}`), r.output);
      t.true(r.lines.includes(ir), r.output);
      t.true(r.lines.includes('S: A01 OK "Authenticated"'), r.output);
      t.deepEqual(r.afterLogin, ['X1 OK "Noop done"', 'C: Q01 LOGOUT', 'Q01 OK "bye-bye"', 'Connection closed.']);
    }
  });

  interop(
    'C18 the real mupdatetest with a wrong password gets NO "authentication failure", prints "Authentication failed." and its commands get BAD "Please login first"',
    async (t) => {
      for (const server of servers) {
        const r = await runMupdatetest(server.port, ['X1 NOOP', { waitFor: 'X1 BAD "Please login first"\r\n' }], { password: 'wrong' });
        t.is(r.code, 0, r.stderr);
        t.true(r.lines.includes('S: A01 NO "authentication failure"'), r.output);
        const at = r.lines.findIndex((l) => l.startsWith('Authentication failed.')); // "Authentication failed. generic failure"
        t.true(at > 0, r.output);
        t.false(r.lines.includes('Authenticated.'), r.output);
        t.deepEqual(
          r.lines.slice(at + 1).filter((l) => !l.startsWith('Security strength factor')),
          ['X1 BAD "Please login first"', 'C: Q01 LOGOUT', 'Q01 OK "bye-bye"', 'Connection closed.'],
        );
      }
    },
  );
}
