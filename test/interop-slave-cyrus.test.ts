/**
 * Interop for `mupdated slave` with the REAL Cyrus 3.6 programs:
 * - it follows a real Cyrus master (`mupdate -m`) through a logging/fault
 *   proxy: first sync, 200 streamed changes, a streamed DELETE of an unknown
 *   name, `* BYE`, and a SIGKILL + restart of the Cyrus master;
 * - real `mupdatetest` against it: FIND and LIST work, writes are refused;
 * - a real Cyrus slave follows it while it follows `mupdated master`
 *   (cascade), and the Cyrus slave's `ctl_mboxlist -d` equals the top
 *   master's LIST.
 *
 * Without the Cyrus programs these tests fail when CI is set and are skipped
 * otherwise (test/helpers/cyrus.ts).
 */
import { FaultProxy } from './helpers/fault-proxy.js';
import {
  canonicalEntries,
  cyrusAvailable,
  interopTest,
  isUtf8,
  listDirectory,
  parseDataResponses,
  runMupdatetest,
  startCyrusMaster,
  startCyrusSlave,
  type CyrusServer,
  type DirEntry,
} from './helpers/cyrus.js';
import { removeDir, startMupdated, type RunningMupdated } from './helpers/server.js';
import * as slaveTools from './helpers/slave-tools.js';
import { prng } from './helpers/prng.js';
import test from 'ava';
import { acl, generatedMailboxes, USER_X } from './helpers/seed-commands.js';

const interop = interopTest('serial');
const SEED = Number.parseInt(process.env.SLAVE_SEED ?? '', 10) || Date.now() % 2 ** 31;

let cyrus: CyrusServer | undefined;
let proxy: FaultProxy | undefined;
let slave: RunningMupdated | undefined;

const LOGIN_LINE = `A01 AUTHENTICATE "PLAIN" {44+}\r\n${Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64')}`;

const SEED_CMDS: slaveTools.Cmd[] = [
  ...USER_X,
  ['ACTIVATE', 'user.x-y', 'backend2!default', acl(['x-y', 'lrswipkxtecdan'])],
  ['ACTIVATE', 'user.x y', 'backend2!default', acl(['x y', 'lrs'])],
  ['ACTIVATE', 'user.\xe4\xff', 'backend1!default', acl(['anyone', 'lr'])],
  ['ACTIVATE', 'shared.news', 'backend2!default', acl(['anyone', 'lrs'], ['group:staff', 'lrswipkxtecdan'])],
  ['ACTIVATE', 'user.empty', 'backend1!default', ''],
  ['RESERVE', 'user.res', 'backend2!default'],
  ...generatedMailboxes(60),
];

test.before(async () => {
  if (!cyrusAvailable()) return;
  cyrus = await startCyrusMaster();
  await slaveTools.applyChanges(cyrus.port, SEED_CMDS, false);
  proxy = await FaultProxy.start({ targetPort: cyrus.port });
  slave = await slaveTools.startSlave({ master: proxy.port, retryDelay: 1 });
});

test.after.always(async () => {
  await slave?.stop('SIGKILL');
  if (slave) removeDir(slave.dataDir);
  await proxy?.close();
  await cyrus?.cleanup();
});

function countLogs(s: RunningMupdated, re: RegExp): number {
  return s.logs.filter((l) => re.test(l)).length;
}

// ---------------------------------------------------------------------------
// Following a real Cyrus master

interop(
  "C47 C51 mupdated slave following a real Cyrus master logs in like a Cyrus slave, sends U01 UPDATE, and its LIST equals the master's after the first sync",
  async (t) => {
    const conn = await proxy!.waitForConnection(0);
    await conn.waitForLine('S', /^U01 OK "streaming starts"$/, 30_000);
    t.deepEqual(conn.firstClientTexts(2), [LOGIN_LINE, 'U01 UPDATE']);
    const { slave: mine, master: theirs } = await slaveTools.waitInSync(slave!.port, cyrus!.port);
    t.is(theirs.length, SEED_CMDS.length);
    t.deepEqual(mine, theirs);
    await slaveTools.waitUntil(() => slaveTools.readStatus(slave!.dataDir)?.state === 'streaming', 10_000, 'status streaming');
    const status = slaveTools.readStatus(slave!.dataDir)!;
    t.is(status.masterKind, 'cyrus');
    t.is(status.lastSyncKind, 'full');
  },
);

interop(
  "C51 a NOOP on the slave's UPDATE stream reaches through to the Cyrus master, which otherwise sends changes in 5 s batches",
  async (t) => {
    await slaveTools.applyChanges(cyrus!.port, [['ACTIVATE', 'user.kick', 'backend1!default', acl(['kick', 'lrs'])]], false);
    const kick = await slaveTools.kickThroughSlave(slave!.port);
    t.is(kick.status, 'K2 OK "Noop done"');
    t.is(kick.streamed, 1, "the change was streamed to the slave's client before the NOOP's OK");
    t.true((await slaveTools.listOf(slave!.port)).includes('"user.kick" => MAILBOX "backend1!default" "kick\\tlrs\\t"'));
  },
);

interop(
  "C48 C51 after 200 streamed ACTIVATE/RESERVE/DEACTIVATE/DELETE changes on the Cyrus master the slave's LIST equals the master's (no resync)",
  async (t) => {
    const gen = new slaveTools.ChangeGenerator(prng(SEED), slaveTools.namePool('c', 50));
    // The Cyrus master streams each changed name's state at its next send, so what the random
    // changes leave decides the words streamed: one name left reserved and one deleted, whatever the seed.
    const cmds: slaveTools.Cmd[] = [...gen.batch(200), ['RESERVE', 'user.c-left-reserved', 'backend1!default'], ['DELETE', 'user.gen59']];
    t.deepEqual([...new Set(cmds.map((c) => c[0]))].sort(), ['ACTIVATE', 'DEACTIVATE', 'DELETE', 'RESERVE'], `SLAVE_SEED=${SEED}`);
    const connsBefore = proxy!.conns.length;
    await slaveTools.applyChanges(cyrus!.port, cmds, false);
    t.is((await slaveTools.kickThroughSlave(slave!.port)).status, 'K2 OK "Noop done"');
    t.deepEqual(await slaveTools.listOf(slave!.port), await slaveTools.listOf(cyrus!.port), `SLAVE_SEED=${SEED}`);
    t.is(proxy!.conns.length, connsBefore, 'the changes came by streaming on the same connection');
    const streamedWords = new Set(
      proxy!
        .latest!.serverLines()
        .filter((l) => l.tag === 'U01')
        .map((l) => l.word),
    );
    t.deepEqual(
      [...streamedWords].filter((w) => ['DELETE', 'RESERVE', 'MAILBOX'].includes(w)).sort(),
      ['DELETE', 'MAILBOX', 'RESERVE'],
      `SLAVE_SEED=${SEED}`,
    );
  },
);

interop("C48 a DELETE of an unknown name in the Cyrus master's stream is ignored and the stream goes on", async (t) => {
  const conn = proxy!.latest!;
  const connsBefore = proxy!.conns.length;
  const name = 'user.never.was';
  // As if from the master: a DELETE of a name nobody has, then one of a name the slave has.
  conn.inject(`U01 DELETE {${name.length}+}\r\n${name}\r\nU01 DELETE {9+}\r\nuser.gen5\r\n`);
  await slaveTools.applyChanges(cyrus!.port, [['ACTIVATE', 'user.after.unknown.delete', 'backend2!default', acl(['a', 'lrs'])]], false);
  t.is((await slaveTools.kickThroughSlave(slave!.port)).status, 'K2 OK "Noop done"');
  t.false(conn.isClosed);
  t.is(proxy!.conns.length, connsBefore);
  const masterNow = await slaveTools.listOf(cyrus!.port);
  t.true(masterNow.some((l) => l.startsWith('"user.gen5"')));
  t.deepEqual(
    await slaveTools.listOf(slave!.port),
    masterNow.filter((l) => !l.startsWith('"user.gen5"')),
    'only the known name was deleted',
  );
  await slaveTools.applyChanges(
    cyrus!.port,
    [['ACTIVATE', 'user.gen5', slaveTools.ChangeGenerator.locationOf('user.gen5'), acl(['gen5', 'lr'])]],
    false,
  );
  await slaveTools.kickThroughSlave(slave!.port);
  t.deepEqual(await slaveTools.listOf(slave!.port), await slaveTools.listOf(cyrus!.port));
});

interop(
  'C51 "* BYE" from the master mid-dump changes nothing, and on a stream makes the slave reconnect and resync with U01 UPDATE',
  async (t) => {
    // BYE on the stream.
    const streaming = proxy!.latest!;
    const resyncs = countLogs(slave!, /"msg":"full sync applied"/);
    streaming.inject('* BYE "shutting down"\r\n');
    t.is(await streaming.closed(20_000), 'client', 'the slave ends the connection after BYE');
    const next = await proxy!.nextForwarded(20_000);
    await next.waitForLine('S', /^U01 OK /, 30_000);
    t.deepEqual(next.firstClientTexts(2), [LOGIN_LINE, 'U01 UPDATE']);
    await slaveTools.waitUntil(() => countLogs(slave!, /"msg":"full sync applied"/) > resyncs, 20_000, 'the resync');

    // BYE in the middle of a dump: nothing of it is applied.
    proxy!.refusing = true;
    proxy!.cutAll();
    await slaveTools.waitUntil(() => slaveTools.readStatus(slave!.dataDir)?.state !== 'streaming', 10_000, 'the slave to notice the cut');
    await slaveTools.applyChanges(
      cyrus!.port,
      [
        ['DELETE', 'user.gen1'],
        ['DELETE', 'user.gen2'],
        ['ACTIVATE', 'user.bye.new', 'backend1!default', ''],
      ],
      false,
    );
    const before = await slaveTools.listOf(slave!.port);
    proxy!.nextPlan = { atServerByte: 2000, action: 'bye', thenRefuse: true };
    proxy!.refusing = false;
    const cut = await proxy!.nextForwarded(20_000);
    await cut.fault(30_000);
    t.false(
      cut.serverLines().some((l) => /^U01 OK /.test(l.text)),
      "the BYE came before the dump's OK",
    );
    await slaveTools.waitUntil(() => cut.isClosed, 10_000, 'the cut connection to close');
    t.deepEqual(await slaveTools.listOf(slave!.port), before, 'a dump ended by BYE changes nothing (a Cyrus slave would apply it)');
    proxy!.refusing = false;
    const { slave: mine, master: theirs } = await slaveTools.waitInSync(slave!.port, cyrus!.port);
    t.deepEqual(mine, theirs);
    t.false(mine.some((l) => l.startsWith('"user.gen1"')));
  },
);

interop(
  "C47 C51 after the Cyrus master is SIGKILLed and restarted the slave serves meanwhile, reconnects with U01 UPDATE, and its LIST equals the master's",
  async (t) => {
    const before = await slaveTools.listOf(slave!.port);
    const connsBefore = proxy!.forwarded.length;
    await cyrus!.kill();
    await slaveTools.waitUntil(() => slaveTools.readStatus(slave!.dataDir)?.state !== 'streaming', 15_000, 'the slave to notice');
    t.deepEqual(await slaveTools.listOf(slave!.port), before, 'it keeps serving its copy');
    await cyrus!.start();
    await slaveTools.applyChanges(
      cyrus!.port,
      [
        ['ACTIVATE', 'user.after.kill', 'backend1!default', acl(['k', 'lrs'])],
        ['DELETE', 'user.gen3'],
        ['RESERVE', 'user.after.kill.res', 'backend2!default'],
      ],
      false,
    );
    await slaveTools.waitUntil(
      () => proxy!.forwarded.slice(connsBefore).some((c) => c.serverLines().some((l) => /^U01 OK /.test(l.text))),
      30_000,
      'a resync with the restarted master',
    );
    const resynced = proxy!.forwarded.slice(connsBefore).find((c) => c.serverLines().some((l) => /^U01 OK /.test(l.text)))!;
    t.deepEqual(resynced.firstClientTexts(2), [LOGIN_LINE, 'U01 UPDATE']);
    await slaveTools.kickThroughSlave(slave!.port);
    const { slave: mine, master: theirs } = await slaveTools.waitInSync(slave!.port, cyrus!.port);
    t.deepEqual(mine, theirs);
    t.true(mine.some((l) => l.startsWith('"user.after.kill"')));
    t.false(mine.some((l) => l.startsWith('"user.gen3"')));
  },
);

// ---------------------------------------------------------------------------
// Real mupdatetest against the slave

interop(
  'C50 real mupdatetest against mupdated slave: FIND and LIST work, ACTIVATE/RESERVE/DEACTIVATE/DELETE get BAD "read-only session"',
  async (t) => {
    const r = await runMupdatetest(slave!.port, [
      'X01 FIND "user.x"',
      { waitFor: /^X01 OK .*$/m },
      'X02 ACTIVATE "user.ro" "backend1!default" ""',
      { waitFor: /^X02 .*$/m },
      'X03 RESERVE "user.ro" "backend1!default"',
      { waitFor: /^X03 .*$/m },
      'X04 DEACTIVATE "user.x" "backend1!default"',
      { waitFor: /^X04 .*$/m },
      'X05 DELETE "user.x"',
      { waitFor: /^X05 .*$/m },
      'X06 LIST',
      { waitFor: /^X06 OK .*$/m, timeoutMs: 20_000 },
    ]);
    t.is(r.code, 0, r.stderr);
    const lines = r.afterLogin;
    t.true(r.lines.includes('Authenticated.'), r.output);
    for (const tag of ['X02', 'X03', 'X04', 'X05']) t.true(lines.includes(`${tag} BAD "read-only session"`), `${tag}: ${r.output}`);
    const find = lines.slice(
      lines.findIndex((l) => l.startsWith('X01 ')),
      lines.indexOf('X01 OK "Search completed"') + 1,
    );
    t.deepEqual(parseDataResponses(find, 'X01').entries, [
      { name: 'user.x', state: 'ACTIVE', location: 'backend1!default', acl: 'x\tlrswipkxtecdan\t' },
    ]);
    const listStart = lines.findIndex((l) => l.startsWith('X06 '));
    const list = lines.slice(listStart, lines.indexOf('X06 OK "list complete"') + 1);
    const listed = parseDataResponses(list, 'X06');
    t.is(listed.final, 'X06 OK "list complete"');
    t.deepEqual(canonicalEntries(listed.entries as DirEntry[]), canonicalEntries(await listDirectory(slave!.port)));
    t.deepEqual(await slaveTools.listOf(slave!.port), await slaveTools.listOf(cyrus!.port), 'nothing was written');
  },
);

// ---------------------------------------------------------------------------
// Cascade: Cyrus slave -> mupdated slave -> mupdated master

interop(
  "C50 C51 a real Cyrus slave following mupdated slave (following mupdated master): its ctl_mboxlist -d equals the top master's LIST, initially and after changes",
  async (t) => {
    const top = await startMupdated();
    let mid: RunningMupdated | undefined;
    let leaf: CyrusServer | undefined;
    try {
      // UTF-8 names and well-formed ACLs: what ctl_mboxlist -d can show.
      const seed = SEED_CMDS.filter(([, name]) => isUtf8(name));
      await slaveTools.applyChanges(top.port, seed);
      mid = await slaveTools.startSlave({ master: top.port, retryDelay: 1 });
      await slaveTools.waitInSync(mid.port, top.port);
      leaf = await startCyrusSlave({ masterPort: mid.port, retryDelay: 2 });
      const compare = async () => ({
        theirs: canonicalEntries((await leaf!.dump()).entries),
        ours: canonicalEntries(await listDirectory(top.port)),
      });
      let c = await compare();
      t.is(c.ours.length, seed.length);
      t.deepEqual(c.theirs, c.ours, "after the Cyrus slave's first sync");

      const gen = new slaveTools.ChangeGenerator(prng(SEED + 7), slaveTools.namePool('casc', 40));
      await slaveTools.applyChanges(top.port, gen.batch(100));
      const deadline = Date.now() + 30_000;
      for (let i = 0; i < 150 && Date.now() < deadline; i++) {
        c = await compare();
        if (JSON.stringify(c.theirs) === JSON.stringify(c.ours)) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      t.deepEqual(c.theirs, c.ours, `after 100 changes on the top master (SLAVE_SEED=${SEED})`);
    } finally {
      await leaf?.cleanup();
      await mid?.stop('SIGKILL');
      if (mid) removeDir(mid.dataDir);
      await top.stop('SIGKILL');
      removeDir(top.dataDir);
    }
  },
);
