/**
 * `mupdated slave` following `mupdated master` (spec 6, README "Slave mode"
 * and "Incremental resume (XRESUME)"): real child processes on loopback,
 * some through the fault proxy (test/helpers/fault-proxy.ts) so the wire
 * between slave and master can be read, stalled, cut or injected into.
 *
 * The tests run serially: several compare whole directories.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { command, lit, login, readResponse } from './helpers/directory.js';
import { FaultProxy, dataLinesBetween, type ProxyConn } from './helpers/fault-proxy.js';
import { freePort } from './helpers/ports.js';
import { RawClient } from './helpers/raw-client.js';
import { CLI, addUser, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import {
  ChangeGenerator,
  applyChanges,
  kickThroughSlave,
  listOf,
  namePool,
  readStatus,
  sleep,
  startSlave,
  waitInSync,
  waitUntil,
  type Cmd,
} from './helpers/slave-tools.js';
import { prng } from './helpers/prng.js';
import { acl, DOMAIN_MAILBOX, generatedMailboxes, ODD_BYTE_NAMES, USER_X, ORDER_NAMES } from './helpers/seed-commands.js';

const SEED = Number.parseInt(process.env.SLAVE_SEED ?? '', 10) || Date.now() % 2 ** 31;

let master: RunningMupdated | undefined;
let masterPort = 0;
let masterDir = '';
let slave: RunningMupdated | undefined;
const cleanups: Array<() => Promise<void> | void> = [];

/** Names whose directory order differs from strcmp, 8-bit bytes, quotes, domains, reservations. */
const SEED_CMDS: Cmd[] = [
  ...USER_X,
  ...ORDER_NAMES,
  ...ODD_BYTE_NAMES,
  DOMAIN_MAILBOX,
  ['ACTIVATE', 'user.empty', 'backend1!default', ''],
  ['ACTIVATE', 'user.nobang', 'backend9', ''],
  ['RESERVE', 'user.res', 'backend2!default'],
  ...generatedMailboxes(300),
];

/**
 * The masters here offer PLAIN only, like the Cyrus master of transcript 40,
 * so the slave's login is the one-line PLAIN login the wire checks below
 * expect. The slave's SCRAM-SHA-256 login is tested in scram-login.test.ts.
 */
const PLAIN_ONLY = { sasl_mech_list: 'PLAIN' };

async function startMaster(dataDir?: string): Promise<RunningMupdated> {
  return startMupdated({ ...(dataDir ? { dataDir } : {}), config: PLAIN_ONLY, args: ['--listen', `127.0.0.1:${masterPort}`] });
}

test.before(async () => {
  masterPort = await freePort();
  master = await startMaster();
  masterDir = master.dataDir;
  await applyChanges(masterPort, SEED_CMDS);
  slave = await startSlave({ master: masterPort, retryDelay: 1 });
});

test.after.always(async () => {
  for (const c of cleanups.reverse()) await c();
  await slave?.stop('SIGKILL');
  if (slave) removeDir(slave.dataDir);
  await master?.stop('SIGKILL');
  if (masterDir) removeDir(masterDir);
});

function countLogs(s: RunningMupdated, re: RegExp): number {
  return s.logs.filter((l) => re.test(l)).length;
}

async function proxiedSlave(
  config: Record<string, string | number | boolean> = {},
  retryDelay: number | string = 1,
  target = masterPort,
): Promise<{ proxy: FaultProxy; s: RunningMupdated }> {
  const proxy = await FaultProxy.start({ targetPort: target });
  const s = await startSlave({ master: proxy.port, retryDelay, config });
  cleanups.push(async () => {
    await s.stop('SIGKILL');
    await proxy.close();
    removeDir(s.dataDir);
  });
  return { proxy, s };
}

/** The Cyrus slave's login line (transcript 40): PLAIN, authzid = authcid, a `{44+}` literal. */
const LOGIN_LINE = `A01 AUTHENTICATE "PLAIN" {44+}\r\n${Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64')}`;

// ---------------------------------------------------------------------------
// Following a mupdated master: first sync, streamed changes, master crash

test.serial("C47 C51 mupdated slave following mupdated master: its LIST equals the master's after the first sync", async (t) => {
  await waitUntil(() => readStatus(slave!.dataDir)?.state === 'streaming', 30_000, 'the slave to stream');
  const { slave: mine, master: theirs } = await waitInSync(slave!.port, masterPort);
  t.is(theirs.length, SEED_CMDS.length);
  t.deepEqual(mine, theirs);
  const status = readStatus(slave!.dataDir)!;
  t.is(status.masterKind, 'mupdated');
  t.is(status.lastSyncKind, 'full');
  t.is(status.master, `127.0.0.1:${masterPort}`);
  t.is(countLogs(slave!, /"msg":"full sync applied"/), 1);
});

test.serial(
  "C48 C51 after 200 streamed ACTIVATE/RESERVE/DEACTIVATE/DELETE changes the slave's LIST equals the master's (no resync)",
  async (t) => {
    const gen = new ChangeGenerator(prng(SEED), namePool('s', 60));
    gen.seed([]);
    const syncsBefore = countLogs(slave!, /"msg":"(full sync|incremental resume) applied"/);
    const cmds = gen.batch(200);
    const verbs = new Set(cmds.map((c) => c[0]));
    t.deepEqual([...verbs].sort(), ['ACTIVATE', 'DEACTIVATE', 'DELETE', 'RESERVE'], `mixed changes (SLAVE_SEED=${SEED})`);
    await applyChanges(masterPort, cmds);
    // A NOOP on the slave's UPDATE stream is answered once the slave has NOOPed its master (spec 3.10).
    const kick = await kickThroughSlave(slave!.port);
    t.is(kick.status, 'K2 OK "Noop done"');
    t.deepEqual(await listOf(slave!.port), await listOf(masterPort), `SLAVE_SEED=${SEED}`);
    t.is(countLogs(slave!, /"msg":"(full sync|incremental resume) applied"/), syncsBefore, 'the changes came by streaming');
  },
);

test.serial(
  "C47 C51 after the master is SIGKILLed and restarted on the same port, the slave serves meanwhile, reconnects, and its LIST equals the master's",
  async (t) => {
    const before = await listOf(slave!.port);
    const resumesBefore = countLogs(slave!, /"msg":"incremental resume applied"/);
    await master!.stop('SIGKILL');
    await waitUntil(() => readStatus(slave!.dataDir)?.state !== 'streaming', 15_000, 'the slave to notice the master is gone');
    // Meanwhile the slave keeps serving its copy.
    t.deepEqual(await listOf(slave!.port), before);
    master = await startMaster(masterDir);
    t.is(master.port, masterPort);
    await applyChanges(masterPort, [
      ['ACTIVATE', 'user.after.crash', 'backend1!default', acl(['a', 'lrs'])],
      ['DELETE', 'user.gen7'],
      ['RESERVE', 'user.after.res', 'backend2!default'],
    ]);
    await waitUntil(() => countLogs(slave!, /"msg":"incremental resume applied"/) > resumesBefore, 30_000, 'the slave to resume');
    const { slave: mine, master: theirs } = await waitInSync(slave!.port, masterPort);
    t.deepEqual(mine, theirs);
    t.true(theirs.some((l) => l.startsWith('"user.after.crash"')));
    t.false(theirs.some((l) => l.startsWith('"user.gen7"')));
    await waitUntil(() => readStatus(slave!.dataDir)?.state === 'streaming', 10_000, 'status streaming');
    t.is(readStatus(slave!.dataDir)!.lastSyncKind, 'incremental');
  },
);

// ---------------------------------------------------------------------------
// What the slave answers its own clients

test.serial('C2 the slave\'s banner ends with "mupdate://<configured master>" instead of "(master)"', async (t) => {
  const c = await RawClient.connect(slave!.port);
  try {
    const banner = await c.readBanner();
    t.deepEqual(banner.slice(0, -1), ['* AUTH "SCRAM-SHA-256" "PLAIN"', '* PARTIAL-UPDATE']);
    t.regex(
      banner[banner.length - 1],
      new RegExp(`^\\* OK MUPDATE "mupdated" "mupdated" "[^"]*" "mupdate://127\\.0\\.0\\.1:${masterPort}"$`),
    );
  } finally {
    c.close();
  }
});

test.serial(
  'C50 ACTIVATE, RESERVE, DEACTIVATE and DELETE get BAD "read-only session"; FIND, LIST and UPDATE are answered from the copy',
  async (t) => {
    const c = await login(slave!.port);
    const m = await login(masterPort);
    try {
      const writes = [
        `X02 ACTIVATE "user.ro" "backend1!default" ""`,
        `X03 RESERVE "user.ro" "backend1!default"`,
        `X04 DELETE "user.x"`,
        `X05 DEACTIVATE "user.x" "backend1!default"`,
        `X06 ACTIVATE ${lit('user.x')} ${lit('backend2!default')} ${lit('')}`,
      ];
      for (const w of writes) {
        const tag = w.slice(0, 3);
        const r = await command(c, tag, w.slice(4));
        t.deepEqual(r, { records: [], status: `${tag} BAD "read-only session"` }, w);
      }
      // FIND and LIST: the same answer as the master's, byte for byte.
      for (const cmd of ['FIND "user.x"', 'FIND "user.res"', 'FIND "user.none"', 'LIST', 'LIST "backend2!"']) {
        t.deepEqual(await command(c, 'X07', cmd), await command(m, 'X07', cmd), cmd);
      }
      // UPDATE: a dump of the copy, then streaming.
      c.send('X08 UPDATE\r\n');
      const dump = await readResponse(c, 'X08', 'X08', 30_000);
      t.is(dump.status, 'X08 OK "streaming starts"');
      const list = await command(m, 'L1', 'LIST');
      const key = (r: { kind: string; args: string[] }) => JSON.stringify([r.kind, ...r.args]);
      t.deepEqual(dump.records.map(key).sort(), list.records.map(key).sort());
      c.send('X09 NOOP\r\n');
      t.is((await readResponse(c, 'X08', 'X09')).status, 'X09 OK "Noop done"');
    } finally {
      c.close();
      m.close();
    }
    // Nothing was written anywhere.
    const mine = await listOf(slave!.port);
    t.false(mine.some((l) => l.startsWith('"user.ro"')));
    t.true(mine.some((l) => l === '"user.x" => MAILBOX "backend1!default" "x\\tlrswipkxtecdan\\t"'));
    t.deepEqual(mine, await listOf(masterPort));
  },
);

// ---------------------------------------------------------------------------
// Through the proxy: plain UPDATE resync, streamed changes, keep-alive

/** Waits until the master's UPDATE answer says streaming starts; the slave's first two lines on `conn`. */
async function openingLines(conn: ProxyConn): Promise<string[]> {
  await conn.waitForLine('S', /^U01 OK "streaming starts"$/, 30_000);
  return conn.firstClientTexts(2);
}

test.serial(
  'C47 with slave_resume: no it logs in and sends U01 UPDATE on start and after every reconnect; entries only local are removed and changed ones overwritten',
  async (t) => {
    const { proxy, s } = await proxiedSlave({ slave_resume: false });
    const first = await proxy.waitForConnection(0);
    t.deepEqual(await openingLines(first), [LOGIN_LINE, 'U01 UPDATE']);
    t.deepEqual(await listOf(s.port), await listOf(masterPort));

    // The master changes while the slave is cut off.
    proxy.refusing = true;
    proxy.cutAll();
    await waitUntil(() => readStatus(s.dataDir)?.state !== 'streaming', 10_000, 'the slave to notice');
    await applyChanges(masterPort, [
      ['DELETE', 'user.x.Sent'],
      ['DELETE', 'user.res'],
      ['DELETE', 'user.gen1'],
      ['ACTIVATE', 'user.x', 'backend1!default', acl(['x', 'lr'], ['anyone', 'p'])],
      ['DEACTIVATE', 'user.x-y', 'backend2!default'],
      ['ACTIVATE', 'user.c47.new', 'backend2!default', acl(['n', 'lrs'])],
      ['RESERVE', 'user.c47.res', 'backend1!default'],
    ]);
    const stale = await listOf(s.port);
    t.true(stale.includes('"user.x.Sent" => MAILBOX "backend1!default" "x\\tlrswipkxtecdan\\t"'));
    proxy.refusing = false;
    const second = await proxy.nextForwarded(30_000);
    t.deepEqual(await openingLines(second), [LOGIN_LINE, 'U01 UPDATE']);
    const { slave: mine, master: theirs } = await waitInSync(s.port, masterPort);
    t.deepEqual(mine, theirs);
    for (const gone of ['"user.x.Sent"', '"user.res"', '"user.gen1"'])
      t.false(
        mine.some((l) => l.startsWith(`${gone} `)),
        gone,
      );
    t.true(mine.includes('"user.x" => MAILBOX "backend1!default" "x\\tlr\\tanyone\\tp\\t"'));
    t.true(mine.includes('"user.x-y" => RESERVE "backend2!default" ""'));
    t.true(mine.includes('"user.c47.res" => RESERVE "backend1!default" ""'));
    // status.json is written just after the sync is applied; wait (bounded) for that write.
    await waitUntil(() => readStatus(s.dataDir)?.state === 'streaming', 10_000, 'status.json says streaming');
    t.is(readStatus(s.dataDir)?.lastSyncKind, 'full');
  },
);

test.serial(
  'C48 streamed MAILBOX, RESERVE and DELETE are applied, and a streamed DELETE of an unknown name is ignored (no reconnect)',
  async (t) => {
    const { proxy, s } = await proxiedSlave({ slave_resume: false });
    const conn = await proxy.waitForConnection(0);
    await conn.waitForLine('S', /^U01 OK "streaming starts"$/, 30_000);
    await applyChanges(masterPort, [['ACTIVATE', 'user.c48.k', 'backend1!default', acl(['k', 'lrs'])]]);
    await kickThroughSlave(s.port);
    t.deepEqual(await listOf(s.port), await listOf(masterPort));
    // Two DELETEs as if from the master: one of a name nobody has, one of a name the slave has.
    const unknown = 'user.c48.never.existed';
    conn.inject(`U01 DELETE {${unknown.length}+}\r\n${unknown}\r\nU01 DELETE {10+}\r\nuser.c48.k\r\n`);
    await applyChanges(masterPort, [
      ['ACTIVATE', 'user.c48.a', 'backend1!default', acl(['a', 'lrs'])],
      ['RESERVE', 'user.c48.r', 'backend2!default'],
      ['ACTIVATE', 'user.c48.d', 'backend1!default', ''],
    ]);
    await applyChanges(masterPort, [
      ['DELETE', 'user.c48.d'],
      ['DEACTIVATE', 'user.c48.a', 'backend1!default'],
    ]);
    t.is((await kickThroughSlave(s.port)).status, 'K2 OK "Noop done"');
    // The injected DELETE of a known name was applied (so the unknown one reached the slave too) ...
    const masterNow = await listOf(masterPort);
    t.deepEqual(
      await listOf(s.port),
      masterNow.filter((l) => !l.startsWith('"user.c48.k"')),
    );
    // ... and all of it arrived on the one connection, streamed (no resync, no reconnect).
    t.false(conn.isClosed, 'still the first connection');
    t.is(proxy.conns.length, 1);
    t.is(countLogs(s, /connection to the master lost/), 0);
    const afterDump = conn.serverLines().findIndex((l) => /^U01 OK /.test(l.text));
    const streamed = conn
      .serverLines()
      .slice(afterDump + 1)
      .filter((l) => l.tag === 'U01' && !l.injected)
      .map((l) => `${l.word} ${l.text.split('\r\n')[1]?.replace(/ \{\d+\+\}$/, '')}`);
    t.deepEqual(streamed, [
      'MAILBOX user.c48.k',
      'MAILBOX user.c48.a',
      'RESERVE user.c48.r',
      'MAILBOX user.c48.d',
      'DELETE user.c48.d',
      'RESERVE user.c48.a',
    ]);
    const mine = await listOf(s.port);
    t.true(mine.includes('"user.c48.a" => RESERVE "backend1!default" ""'));
    t.true(mine.includes('"user.c48.r" => RESERVE "backend2!default" ""'));
    t.false(mine.some((l) => l.startsWith('"user.c48.d"')));
    // The master's next change of that name brings it back.
    await applyChanges(masterPort, [['ACTIVATE', 'user.c48.k', 'backend1!default', acl(['k', 'lr'])]]);
    await kickThroughSlave(s.port);
    t.deepEqual(await listOf(s.port), await listOf(masterPort));
  },
);

/** Lines a broken master (or something between it and the slave) might send on the UPDATE stream. */
const MANGLED: Array<[what: string, bytes: Buffer, log: RegExp]> = [
  ['a line without a tag', Buffer.from('garbage\r\n'), /malformed response from the server: a line that does not start with a tag/],
  ['a MAILBOX with one string', Buffer.from('U01 MAILBOX {9+}\r\nuser.junk\r\n'), /a response with too few strings/],
  ['a RESERVE with four strings', Buffer.from('U01 RESERVE "user.junk" "b!c" "d" "e"\r\n'), /a response with too many strings/],
  ['binary junk', Buffer.from([0x00, 0xff, 0x7b, 0x0d, 0x20, 0x80, 0x0d, 0x0a]), /malformed response from the server/],
  ['a literal over the size cap', Buffer.from('U01 MAILBOX {99999999999+}\r\n'), /unreadable response from the server/],
];

test.serial(
  "a master's malformed lines on the UPDATE stream (no tag, wrong string counts, binary junk, a huge literal) make the slave drop that connection and say what it got; it serves its copy meanwhile, applies nothing of them, and ends equal to the master",
  async (t) => {
    const { proxy, s } = await proxiedSlave({ slave_resume: false });
    for (const [i, [what, bytes, log]] of MANGLED.entries()) {
      const conn = await proxy.waitForConnection(i, 30_000);
      await conn.waitForLine('S', /^U01 OK "streaming starts"$/, 30_000);
      await kickThroughSlave(s.port);
      const before = await listOf(s.port);
      t.deepEqual(before, await listOf(masterPort), `${what}: in sync before`);
      const logged = countLogs(s, log);
      conn.inject(bytes);
      t.is(await conn.closed(), 'client', `${what}: the slave dropped the connection`);
      await waitUntil(() => countLogs(s, log) > logged, 10_000, `${what}: logged`);
      t.deepEqual(await listOf(s.port), before, `${what}: still serving its copy, nothing of the line applied`);
      await applyChanges(masterPort, [['ACTIVATE', `user.mangled.${i}`, 'backend1!default', acl([`m${i}`, 'lrs'])]]);
    }
    const last = await proxy.waitForConnection(MANGLED.length, 30_000);
    await last.waitForLine('S', /^U01 OK "streaming starts"$/, 30_000);
    await kickThroughSlave(s.port);
    const mine = await listOf(s.port);
    t.deepEqual(mine, await listOf(masterPort));
    t.false(mine.some((l) => l.includes('user.junk')));
    t.is(s.child.exitCode, null, 'the slave still runs');
    t.false(
      s.logs.some((l) => l.includes('Need command')),
      "no server-side BAD text in the slave's log",
    );
  },
);

/** The NOOP lines the slave sent on a connection (keep-alives and kicks alike). */
function noops(conn: ProxyConn) {
  return conn.clientLines().filter((l) => l.word === 'NOOP');
}

test.serial(
  'C49 after retry-delay seconds of silence the slave sends NOOP, tagged N0, N1, ... and from N0 again on each new connection',
  async (t) => {
    const { proxy } = await proxiedSlave({}, 1);
    const first = await proxy.waitForConnection(0);
    await first.waitForLine('S', /^N1 OK /, 20_000);
    proxy.cutAll();
    const second = await proxy.nextForwarded(20_000);
    await second.waitForLine('S', /^N1 OK /, 20_000);
    for (const conn of [first, second]) {
      const tags = noops(conn).map((l) => l.text);
      t.deepEqual(tags.slice(0, 2), ['N0 NOOP', 'N1 NOOP']);
      // Each NOOP follows at least retry-delay seconds without input (and is answered with OK).
      for (const n of noops(conn).slice(0, 2)) {
        const lastInput = conn.lines
          .slice(0, conn.lines.indexOf(n))
          .filter((l) => l.dir === 'S')
          .pop()!;
        t.true(
          n.at - lastInput.at >= 900,
          `${n.text} ${n.at - lastInput.at} ms after the previous input; wire: ${JSON.stringify(
            conn.lines.slice(-14).map((l) => `${l.at - conn.opened} ${l.dir}: ${l.text.slice(0, 60)}`),
          )}`,
        );
      }
      t.truthy(conn.serverLines().find((l) => l.text === 'N1 OK "Noop done"'));
    }
    t.is(proxy.forwarded.length, 2);
  },
);

test.serial('C49 a NOOP not answered within another retry-delay makes the slave drop the connection and reconnect', async (t) => {
  const { proxy, s } = await proxiedSlave({}, 1);
  const first = await proxy.waitForConnection(0);
  await first.waitForLine('S', /^U01 OK /, 20_000);
  first.s2c.stall(); // the master's answers never reach the slave
  const noop = await first.waitForLine('C', /^N0 NOOP$/, 20_000);
  t.is(await first.closed(20_000), 'client', 'the slave closed the silent connection');
  t.true(first.closedAt! - noop.line.at >= 900, 'it waited about a retry-delay for the answer');
  const second = await proxy.nextForwarded(20_000);
  await second.waitForLine('S', /^U01 OK /, 20_000);
  t.deepEqual(second.firstClientTexts(1), [LOGIN_LINE]);
  await second.waitForLine('C', /^N0 NOOP$/, 20_000);
  await second.waitForLine('S', /^N0 OK "Noop done"$/, 20_000);
  await waitUntil(() => readStatus(s.dataDir)?.state === 'streaming', 10_000, 'streaming again');
  t.deepEqual(await listOf(s.port), await listOf(masterPort));
});

test.serial('C49 --retry-delay 0 and 1 neither crash the slave nor make it spin (reconnects and keep-alives counted)', async (t) => {
  const runs = await Promise.all(
    ['0', '1'].map(async (delay) => {
      const proxy = await FaultProxy.start({ targetPort: masterPort });
      proxy.refusing = true;
      const s = await startSlave({ master: proxy.port, retryDelay: delay });
      cleanups.push(async () => {
        await s.stop('SIGKILL');
        await proxy.close();
        removeDir(s.dataDir);
      });
      return { delay, proxy, s };
    }),
  );
  const windowMs = 4000;
  await sleep(windowMs);
  for (const { delay, proxy, s } of runs) {
    const attempts = proxy.conns.length;
    t.true(attempts >= 2, `--retry-delay ${delay}: it keeps retrying (${attempts} attempts in ${windowMs} ms)`);
    t.true(attempts <= 8, `--retry-delay ${delay}: no spinning (${attempts} attempts in ${windowMs} ms)`);
    t.is(s.child.exitCode, null, `--retry-delay ${delay}: still running`);
    proxy.refusing = false;
  }
  await Promise.all(
    runs.map(async ({ delay, proxy, s }) => {
      await waitUntil(() => proxy.forwarded.length > 0, 20_000, `--retry-delay ${delay}: a connection once the master is reachable`);
      const conn = proxy.forwarded[0];
      await conn.waitForLine('S', /^U01 OK /, 20_000);
      const synced = Date.now();
      await sleep(3000);
      const n = noops(conn).filter((l) => l.at >= synced).length;
      t.true(n >= 1 && n <= 6, `--retry-delay ${delay}: ${n} keep-alive NOOPs in 3 s`);
      t.false(conn.isClosed, `--retry-delay ${delay}: the connection stays up`);
      t.is(proxy.forwarded.length, 1, `--retry-delay ${delay}: no reconnects while the master answers`);
      t.deepEqual(await listOf(s.port), await listOf(masterPort), `--retry-delay ${delay}`);
      t.is(s.child.exitCode, null);
    }),
  );
});

// ---------------------------------------------------------------------------
// A fresh slave whose master is unreachable

let freshSlave: RunningMupdated | undefined;
let freshMasterPort = 0;
let freshCopy: string[] = [];

test.serial(
  'C65 C2 a fresh slave whose master is unreachable accepts connections but sends no banner and answers nothing; after its first sync it sends the banner and serves',
  async (t) => {
    freshMasterPort = await freePort(); // nothing listens there yet
    freshSlave = await startSlave({ master: freshMasterPort, retryDelay: 1 });
    const s = freshSlave;
    cleanups.push(async () => {
      await s.stop('SIGKILL');
      removeDir(s.dataDir);
    });
    const c = await RawClient.connect(s.port);
    try {
      c.send('X1 NOOP\r\n');
      t.true(await c.expectSilence(2500), 'no banner, no answer');
      await waitUntil(() => /cannot connect/.test(readStatus(s.dataDir)?.lastError ?? ''), 10_000, 'a failed connection attempt');
      t.false(readStatus(s.dataDir)!.connected);
      t.true(await c.expectSilence(500));

      // The master becomes reachable (a proxy on the configured port).
      const proxy = await FaultProxy.start({ listenPort: freshMasterPort, targetPort: masterPort });
      cleanups.push(() => proxy.close());
      const banner: string[] = [];
      for (let i = 0; i < 10; i++) {
        const l = await c.readLine(30_000);
        banner.push(l);
        if (l.startsWith('* OK')) break;
      }
      t.deepEqual(banner.slice(0, -1), ['* AUTH "SCRAM-SHA-256" "PLAIN"', '* PARTIAL-UPDATE']);
      t.regex(
        banner[banner.length - 1],
        new RegExp(`^\\* OK MUPDATE "[^"]*" "[^"]*" "[^"]*" "mupdate://127\\.0\\.0\\.1:${freshMasterPort}"$`),
      );
      // The sync completed before the banner: the proxy saw the dump's OK.
      t.true(proxy.latest!.serverLines().some((l) => /^U01 OK /.test(l.text)));
      // The command sent before the banner is answered only now, after it.
      t.regex(await c.readLine(10_000), /^X1 /);
      const ir = Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64');
      c.send(`A01 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\n`);
      t.is(await c.readLine(10_000), 'A01 OK "Authenticated"');
      const list = await command(c, 'L1', 'LIST');
      t.is(list.status, 'L1 OK "list complete"');
    } finally {
      c.close();
    }
    const { slave: mine, master: theirs } = await waitInSync(s.port, masterPort);
    t.deepEqual(mine, theirs);
    freshCopy = mine;
    const other = await RawClient.connect(s.port);
    try {
      t.regex((await other.readBanner()).pop()!, /^\* OK MUPDATE /);
    } finally {
      other.close();
    }
  },
);

test.serial(
  'C65 a slave restarted with a copy from an earlier complete sync serves it at once while its master is unreachable',
  async (t) => {
    if (!freshSlave) return t.fail('needs the previous test');
    const dataDir = freshSlave.dataDir;
    await freshSlave.stop();
    // Nothing forwards to the master now: close the proxy on the configured port.
    const proxyCleanup = cleanups.pop();
    await proxyCleanup?.();
    freshSlave = await startSlave({ master: freshMasterPort, retryDelay: 1, dataDir });
    const s = freshSlave;
    cleanups.push(async () => {
      await s.stop('SIGKILL');
    });
    const c = await RawClient.connect(s.port);
    try {
      const banner = await c.readBanner();
      t.regex(banner[banner.length - 1], /^\* OK MUPDATE .* "mupdate:\/\/127\.0\.0\.1:\d+"$/);
    } finally {
      c.close();
    }
    t.deepEqual(await listOf(s.port), freshCopy);
    await waitUntil(() => /cannot connect/.test(readStatus(dataDir)?.lastError ?? ''), 10_000, 'a failed connection attempt');
  },
);

// ---------------------------------------------------------------------------
// XRESUME bookkeeping

test.serial('XRESUME: a stream cut right after the first of several changes committed together loses none of them', async (t) => {
  const { proxy, s } = await proxiedSlave({}, 1);
  const conn = await proxy.waitForConnection(0);
  await conn.waitForLine('S', /^U01 OK "streaming starts"$/, 30_000);
  const streamedFrom = conn.serverLines().length;
  // Cut at the end of the first line the master streams after this point.
  proxy.arm(conn, { atServerByte: conn.s2c.forwarded + 1, action: 'cut', atLineEnd: true });
  // Pipelined: committed together, and user.seq.a changes twice.
  await applyChanges(masterPort, [
    ['ACTIVATE', 'user.seq.a', 'backend1!default', ''],
    ['ACTIVATE', 'user.seq.b', 'backend1!default', acl(['b', 'lrs'])],
    ['ACTIVATE', 'user.seq.a', 'backend1!default', acl(['a', 'lrs'])],
    ['RESERVE', 'user.seq.c', 'backend2!default'],
  ]);
  await conn.closed(20_000);
  const delivered = conn
    .serverLines()
    .slice(streamedFrom)
    .map((l) => l.text.replace(/\r\n/g, ' '));
  const second = await proxy.nextForwarded(20_000);
  await second.waitForLine('S', /^U01 OK /, 20_000);
  const { slave: mine, master: theirs } = await waitInSync(s.port, masterPort, 10_000);
  t.deepEqual(
    mine,
    theirs,
    `the slave got only ${JSON.stringify(delivered)} before the cut, then resumed with ${JSON.stringify(second.clientLines()[1]?.text)}`,
  );
});

test.serial(
  "XRESUME: when the master's change log no longer reaches back (change_log_retention) the slave gets a FULL dump and equals the master",
  async (t) => {
    const small = await startMupdated({ config: { ...PLAIN_ONLY, change_log_retention: 5 } });
    cleanups.push(async () => {
      await small.stop('SIGKILL');
      removeDir(small.dataDir);
    });
    await applyChanges(
      small.port,
      Array.from({ length: 20 }, (_, i): Cmd => ['ACTIVATE', `user.ret${i}`, 'backend1!default', '']),
    );
    const { proxy, s } = await proxiedSlave({}, 1, small.port);
    const first = await proxy.waitForConnection(0);
    await first.waitForLine('S', /^U01 OK /, 20_000);
    proxy.refusing = true;
    proxy.cutAll();
    await applyChanges(small.port, [
      ...Array.from({ length: 8 }, (_, i): Cmd => ['DELETE', `user.ret${i}`]),
      ...Array.from({ length: 4 }, (_, i): Cmd => ['ACTIVATE', `user.ret.new${i}`, 'backend2!default', acl(['n', 'lrs'])]),
    ]);
    proxy.refusing = false;
    const second = await proxy.nextForwarded(20_000);
    await second.waitForLine('S', /^U01 OK /, 20_000);
    t.regex(second.clientLines()[1].text, /^U01 XRESUME "[^"]+" "20" "[^"]+"$/);
    const answer = dataLinesBetween(second, 'U01', /^U01 XSYNC /);
    t.regex(answer.head!.text, /^U01 XSYNC \{4\+\}\r\nFULL /);
    t.is(answer.data.length, 16);
    const { slave: mine, master: theirs } = await waitInSync(s.port, small.port);
    t.deepEqual(mine, theirs);
    t.is(theirs.length, 16);
    await waitUntil(() => readStatus(s.dataDir)?.state === 'streaming', 10_000, 'streaming');
    t.is(readStatus(s.dataDir)!.lastSyncKind, 'full');
  },
);

test.serial(
  'XRESUME: a slave whose master is replaced by another directory (another id) takes a FULL dump and drops what only the old one had',
  async (t) => {
    const other = await startMupdated({ config: PLAIN_ONLY });
    cleanups.push(async () => {
      await other.stop('SIGKILL');
      removeDir(other.dataDir);
    });
    await applyChanges(other.port, [
      ['ACTIVATE', 'user.x', 'backend7!default', acl(['seven', 'lrs'])],
      ['ACTIVATE', 'user.other.only', 'backend7!default', ''],
      ['RESERVE', 'user.other.res', 'backend7!default'],
    ]);
    const { proxy, s } = await proxiedSlave({}, 1);
    const first = await proxy.waitForConnection(0);
    await first.waitForLine('S', /^U01 OK /, 20_000);
    t.deepEqual(await listOf(s.port), await listOf(masterPort));
    proxy.retarget(other.port);
    proxy.cutAll();
    const second = await proxy.nextForwarded(20_000);
    await second.waitForLine('S', /^U01 OK /, 20_000);
    t.regex(dataLinesBetween(second, 'U01', /^U01 XSYNC /).head!.text, /^U01 XSYNC \{4\+\}\r\nFULL /);
    const { slave: mine, master: theirs } = await waitInSync(s.port, other.port);
    t.deepEqual(mine, theirs);
    t.is(mine.length, 3);
  },
);

test.serial(
  'XRESUME: a master restored from a file backup (same directory id, sequence numbers reused) is followed to the same directory',
  async (t) => {
    const dir = tempDir('mupdated-slave-restore-');
    const live = join(dir, 'live');
    const backup = join(dir, 'backup');
    let m = await startMupdated({ config: PLAIN_ONLY });
    const originalDir = m.dataDir;
    cleanups.push(async () => {
      await m.stop('SIGKILL');
      removeDir(dir);
      removeDir(originalDir);
    });
    await applyChanges(
      m.port,
      Array.from({ length: 10 }, (_, i): Cmd => ['ACTIVATE', `user.hist${i}`, 'backend1!default', '']),
    );
    await m.stop();
    // A file-level backup of the stopped master, and a copy to run from.
    const copy = (to: string) => cpSync(m.dataDir, to, { recursive: true, filter: (src) => !src.endsWith('.sock') });
    copy(live);
    copy(backup);
    m = await startMupdated({ dataDir: live, config: PLAIN_ONLY });
    const { proxy, s } = await proxiedSlave({}, 1, m.port);
    const first = await proxy.waitForConnection(0);
    await first.waitForLine('S', /^U01 OK /, 20_000);
    // History A after the backup: the slave follows it.
    await applyChanges(
      m.port,
      Array.from({ length: 5 }, (_, i): Cmd => ['ACTIVATE', `user.lost${i}`, 'backend1!default', '']),
    );
    await kickThroughSlave(s.port);
    t.deepEqual(await listOf(s.port), await listOf(m.port));
    // The master dies and is restored from the backup; history B reuses the same sequence numbers.
    proxy.refusing = true;
    proxy.cutAll();
    await m.stop('SIGKILL');
    m = await startMupdated({ dataDir: backup, config: PLAIN_ONLY });
    proxy.retarget(m.port);
    await applyChanges(
      m.port,
      Array.from({ length: 5 }, (_, i): Cmd => ['ACTIVATE', `user.repushed${i}`, 'backend2!default', '']),
    );
    proxy.refusing = false;
    const second = await proxy.nextForwarded(20_000);
    await second.waitForLine('S', /^U01 OK /, 20_000);
    const { slave: mine, master: theirs } = await waitInSync(s.port, m.port, 10_000);
    t.deepEqual(
      mine,
      theirs,
      `resumed with ${JSON.stringify(second.clientLines()[1]?.text)}, answered ${JSON.stringify(dataLinesBetween(second, 'U01', /^U01 XSYNC /).head?.text)}`,
    );
  },
);

test.serial(
  'C50 C51 a mupdated slave can follow a mupdated slave: streamed changes, NOOP fan-out through both levels, XRESUME from the middle one',
  async (t) => {
    const leaf = await startSlave({ master: slave!.port, retryDelay: 1 });
    const leafDir = leaf.dataDir;
    let current = leaf;
    cleanups.push(async () => {
      await current.stop('SIGKILL');
      removeDir(leafDir);
    });
    const { slave: first, master: top } = await waitInSync(leaf.port, masterPort);
    t.deepEqual(first, top);
    await applyChanges(masterPort, [
      ['ACTIVATE', 'user.leaf.a', 'backend1!default', acl(['a', 'lrs'])],
      ['RESERVE', 'user.leaf.r', 'backend1!default'],
      ['DELETE', 'user.gen20'],
    ]);
    // The leaf's NOOP reaches the top master through the middle slave.
    t.is((await kickThroughSlave(leaf.port)).status, 'K2 OK "Noop done"');
    t.deepEqual(await listOf(leaf.port), await listOf(masterPort));
    await leaf.stop();
    await applyChanges(masterPort, [
      ['ACTIVATE', 'user.leaf.b', 'backend2!default', ''],
      ['DELETE', 'user.gen21'],
    ]);
    current = await startSlave({ master: slave!.port, retryDelay: 1, dataDir: leafDir });
    await waitUntil(() => current.logs.some((l) => /"msg":"incremental resume applied"/.test(l)), 20_000, 'the leaf to resume');
    const { slave: mine, master: theirs } = await waitInSync(current.port, masterPort);
    t.deepEqual(mine, theirs);
    t.true(mine.some((l) => l.startsWith('"user.leaf.b"')));
  },
);

// ---------------------------------------------------------------------------
// XRESUME on a large directory

const BIG = 100_000;

/** A data folder loaded offline from a `ctl_mboxlist -d` style dump of `count` active mailboxes on four servers. */
function loadBigDirectory(count: number): string {
  const dir = tempDir('mupdated-slave-big-');
  cleanups.push(() => removeDir(dir));
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const server = `backend${i % 4}`;
    lines.push(
      `"user.big${i}": {"name": "user.big${i}", "mtime": "1700000000", "uidvalidity": "0", "createdmodseq": "0", ` +
        `"foldermodseq": "0", "mbtype": "e", "partition": "default", "server": "${server}", "acl": {"big${i}": "lrswipkxtecdan"}, "name_history": []}`,
    );
  }
  const dumpFile = join(dir, 'dump.json');
  writeFileSync(dumpFile, `{\n${lines.join(',\n')}\n}\n`);
  const dataDir = join(dir, 'data');
  const load = spawnSync(process.execPath, [CLI, 'load', dumpFile, '--data', dataDir], { encoding: 'utf8' });
  if (load.status !== 0) throw new Error(`load failed: ${load.stderr}`);
  return dataDir;
}

test.serial(
  'XRESUME: on a 100k-entry directory a slave that was down while 10 changes happened receives exactly those 10 records',
  async (t) => {
    t.timeout(180_000);
    const dataDir = loadBigDirectory(BIG);
    addUser(dataDir, { name: 'mupdateadmin', admin: true });
    const big = await startMupdated({ dataDir, config: PLAIN_ONLY });
    cleanups.push(async () => {
      await big.stop('SIGKILL');
    });
    const proxy = await FaultProxy.start({ targetPort: big.port });
    cleanups.push(() => proxy.close());
    let s = await startSlave({ master: proxy.port, retryDelay: 1 });
    const slaveDir = s.dataDir;
    cleanups.push(async () => {
      await s.stop('SIGKILL');
      removeDir(slaveDir);
    });
    const first = await proxy.waitForConnection(0);
    await first.waitForLine('S', /^U01 OK /, 120_000);
    t.regex(first.clientLines()[1].text, /^U01 XRESUME "" "0" ""$/);
    const full = dataLinesBetween(first, 'U01', /^U01 XSYNC /);
    t.regex(full.head!.text, /^U01 XSYNC \{4\+\}\r\nFULL /);
    t.is(full.data.length, BIG);
    await waitUntil(
      () => readStatus(slaveDir)?.lastSyncKind === 'full' && readStatus(slaveDir)?.state === 'streaming',
      60_000,
      'the full sync',
    );

    await s.stop(); // the slave is down
    await applyChanges(big.port, [
      ['ACTIVATE', 'user.big.new1', 'backend1!default', acl(['n1', 'lrs'])],
      ['ACTIVATE', 'user.big.new2', 'backend2!default', ''],
      ['ACTIVATE', 'user.big5', 'backend1!default', acl(['big5', 'lr'])],
      ['ACTIVATE', 'user.big6', 'backend2!default', acl(['big6', 'lrswipkxtecdan'], ['anyone', 'l'])],
      ['RESERVE', 'user.big.res1', 'backend3!default'],
      ['RESERVE', 'user.big.res2', 'backend0!default'],
      ['DEACTIVATE', 'user.big9', 'backend1!default'],
      ['DELETE', 'user.big10'],
      ['DELETE', 'user.big99999'],
      ['DELETE', 'user.big.new2'],
    ]);
    s = await startSlave({ master: proxy.port, retryDelay: 1, dataDir: slaveDir });
    const second = await proxy.nextForwarded(30_000);
    await second.waitForLine('S', /^U01 OK /, 60_000);
    const resume = dataLinesBetween(second, 'U01', /^U01 XSYNC /);
    t.regex(second.clientLines()[1].text, /^U01 XRESUME "[^"]+" "\d+" "[^"]+"$/);
    t.regex(resume.head!.text, /^U01 XSYNC \{11\+\}\r\nINCREMENTAL /);
    t.is(resume.data.length, 10, resume.data.map((l) => l.text.replace(/\r\n/g, ' ')).join('\n'));
    t.deepEqual(
      resume.data.map((l) => l.word),
      ['MAILBOX', 'MAILBOX', 'MAILBOX', 'MAILBOX', 'RESERVE', 'RESERVE', 'RESERVE', 'DELETE', 'DELETE', 'DELETE'],
    );
    await waitUntil(
      () => readStatus(slaveDir)?.lastSyncKind === 'incremental' && readStatus(slaveDir)?.state === 'streaming',
      30_000,
      'the resume in status.json',
    );
    const status = readStatus(slaveDir)!;
    t.is(status.lastSyncKind, 'incremental');
    t.is(status.lastResumeRecords, 10);
    const [mine, theirs] = await Promise.all([listOf(s.port), listOf(big.port)]);
    t.is(theirs.length, BIG + 1);
    t.true(mine.length === theirs.length && mine.every((l, i) => l === theirs[i]), 'the slave equals the master');
  },
);
