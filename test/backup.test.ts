/**
 * `mupdated backup DEST` and `mupdated verify` (issue 13 point 6):
 * - a backup taken while a real server takes a storm of ACTIVATEs is the
 *   directory at one change number: its entries are what the server's change
 *   log says the directory held at the copy's last change, its change log is
 *   the server's up to there, it is private (0700/0600), and a master started
 *   on it answers FIND;
 * - verify passes a sound folder (also one a server is writing) and fails,
 *   saying why, on a folder whose by-server index, change log, entries or
 *   last change number were damaged with a small LMDB script, or whose
 *   users.mdb has a record under another name or without a password hash;
 * - verify reads a format-1 folder without converting it;
 * - backup refuses an existing DEST, a folder without a directory, and a
 *   cluster (`--etcd`, or a cluster node's view folder), pointing to
 *   `mupdated dump --etcd` and etcd snapshots.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Key } from 'lmdb';
import { parseDataResponses, type DirEntry } from './helpers/cyrus.js';
import { storedFormat, writeFormat1 } from './helpers/format1.js';
import { exchange, literalCommand, runCli, type CliResult } from './helpers/operator-tools.js';
import { showRun } from './helpers/run.js';
import { RawClient } from './helpers/raw-client.js';
import { serversForFile } from './helpers/file-servers.js';
import type { RunningMupdated } from './helpers/server.js';
import { LmdbDirectoryStore } from '../src/store/lmdb-store.js';
import type { Entry } from '../src/store/types.js';

const files = serversForFile();
const start = (dataDir?: string): Promise<RunningMupdated> => files.start(dataDir ? { dataDir } : {});
const scratch = (): string => files.folder('backup-test-');

const NAMES = 400;
/**
 * The i-th write of the storm: every one changes its name's entry (the previous write to it gave another
 * ACL; the location stays, a move to another backend would be a conflict).
 */
function stormWrite(i: number): { name: string; location: string; acl: string } {
  const n = i % NAMES;
  return { name: `user.storm${n}`, location: `backend${(n % 3) + 1}!default`, acl: `user${Math.floor(i / NAMES) % 3}\tlr\t` };
}

/**
 * ACTIVATEs on one connection, 25 pipelined at a time, until `enough()` or
 * the bounds (30,000 writes, 90 s). Every write must be OK. Returns how many were acknowledged.
 */
async function storm(port: number, progress: { acked: number }, enough: () => boolean): Promise<void> {
  const c = await RawClient.login(port);
  const deadline = Date.now() + 90_000;
  try {
    while (!enough() && progress.acked < 30_000 && Date.now() < deadline) {
      const first = progress.acked;
      let batch = '';
      for (let i = first; i < first + 25; i++) {
        const w = stormWrite(i);
        batch += literalCommand(`S${i}`, 'ACTIVATE', w.name, w.location, w.acl);
      }
      c.send(batch);
      for (let i = first; i < first + 25; i++) {
        const lines = await c.readUntilTagged(`S${i}`, 20_000);
        if (lines[lines.length - 1] !== `S${i} OK "done"`) throw new Error(`write ${i}: ${lines.join('|')}`);
        progress.acked++;
      }
    }
  } finally {
    c.close();
  }
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

/** The directory a change log leaves after its changes up to `upTo` (from an empty directory). */
function stateFromLog(changes: Iterable<{ seq: number; name: Buffer; entry: Entry | null }>, upTo: number): Map<string, Entry> {
  const state = new Map<string, Entry>();
  for (const c of changes) {
    if (c.seq > upTo) break;
    if (c.entry) state.set(c.name.toString('latin1'), c.entry);
    else state.delete(c.name.toString('latin1'));
  }
  return state;
}

function show(e: Entry | undefined): string {
  return e ? `${e.state} ${e.location.toString('latin1')} ${JSON.stringify(e.acl.toString('latin1'))}` : 'none';
}

async function find(port: number, name: string): Promise<DirEntry | undefined> {
  const c = await RawClient.login(port);
  try {
    const { entries } = parseDataResponses(await exchange(c, 'F1', 'FIND', name), 'F1');
    return entries[0] as DirEntry | undefined;
  } finally {
    c.close();
  }
}

test('a backup taken during a write storm is the directory at one change number, private, and a master serves it', async (t) => {
  const server = await start();
  const copy = join(scratch(), 'backup');
  const progress = { acked: 0 };
  let backupDone: { result: CliResult; ackedBefore: number; ackedAfter: number } | null = null;
  let liveVerify: CliResult | null = null;
  const backup = (async () => {
    while (progress.acked < 300) await new Promise((r) => setTimeout(r, 20));
    const ackedBefore = progress.acked;
    const result = await runCli(['backup', copy, '--data', server.dataDir]);
    backupDone = { result, ackedBefore, ackedAfter: progress.acked };
    liveVerify = await runCli(['verify', '--data', server.dataDir]);
  })();
  await storm(server.port, progress, () => backupDone !== null && liveVerify !== null && progress.acked >= backupDone.ackedAfter + 200);
  await backup;
  const done = backupDone!;
  t.is(done.result.code, 0, showRun(done.result));
  t.is(liveVerify!.code, 0, `verify of the folder the server was writing: ${showRun(liveVerify!)}`);
  t.true(progress.acked >= done.ackedAfter + 200, `the storm went on after the backup (${progress.acked} writes)`);
  await server.stop();

  t.is(mode(copy), 0o700);
  t.deepEqual(readdirSync(copy).sort(), ['directory.mdb', 'users.mdb']);
  for (const f of readdirSync(copy)) t.is(mode(join(copy, f)), 0o600, f);

  const source = LmdbDirectoryStore.open(server.dataDir, { readOnly: true });
  const backedUp = LmdbDirectoryStore.open(copy, { readOnly: true });
  const sourceSnap = source.snapshot();
  const copySnap = backedUp.snapshot();
  try {
    const at = copySnap.seq;
    t.log(
      `backup at change #${at}; ${done.ackedBefore} writes acknowledged when it started, ${done.ackedAfter} when it ended, ${sourceSnap.seq} in all`,
    );
    // Every acknowledged write is durable: the copy has at least those the server had acknowledged when it began.
    t.true(at >= done.ackedBefore, `copy at #${at}, ${done.ackedBefore} acknowledged before`);
    t.true(at < sourceSnap.seq, 'the copy is older than the directory after the storm');
    t.is(stdoutSeq(done.result), at);
    const sourceLog = [...sourceSnap.changesSince(0)!];
    t.is(sourceLog.length, sourceSnap.seq, 'the server logged every change');
    const expected = stateFromLog(sourceLog, at);
    const actual = new Map<string, Entry>();
    for (const e of copySnap.entries()) actual.set(e.name.toString('latin1'), e);
    t.is(actual.size, expected.size);
    const differing = [...expected].filter(([name, e]) => show(actual.get(name)) !== show(e)).map(([name]) => name);
    t.deepEqual(differing, [], 'the copy holds what the change log says the directory held at its last change');
    // Its change log is the server's, change for change, up to that number.
    const copyLog = [...copySnap.changesSince(0)!];
    t.is(copyLog.length, at);
    t.true(copyLog.every((c, i) => c.seq === sourceLog[i].seq && show(c.entry ?? undefined) === show(sourceLog[i].entry ?? undefined)));
    t.is(copySnap.changeDigest(at), sourceSnap.changeDigest(at));
    t.is(backedUp.id, source.id, 'the copy keeps the directory id (slaves resume against it)');
  } finally {
    sourceSnap.close();
    copySnap.close();
    await source.close();
    await backedUp.close();
  }

  const verify = await runCli(['verify', '--data', copy]);
  t.is(verify.code, 0, showRun(verify));
  const restored = await start(copy);
  const name = stormWrite(0).name;
  const found = await find(restored.port, name);
  t.like(found, { name, state: 'ACTIVE', location: stormWrite(0).location, acl: lastWriteBefore(0, stdoutSeq(done.result)).acl });
  const c = await RawClient.login(restored.port);
  t.deepEqual((await exchange(c, 'W1', 'ACTIVATE', 'user.after-restore', 'backend9!default', 'anyone\tlr\t')).pop(), 'W1 OK "done"');
  c.close();
});

/** The last of the first `writes` writes to write number `n`'s name. */
function lastWriteBefore(n: number, writes: number): { acl: string } {
  let last = n;
  while (last + NAMES < writes) last += NAMES;
  return stormWrite(last);
}

function stdoutSeq(r: CliResult): number {
  const m = /at change #(\d+)\n/.exec(r.stdout);
  if (!m) throw new Error(`no change number in ${showRun(r)}`);
  return Number(m[1]);
}

let small: Promise<string> | undefined;

/** A stopped master's folder with active, reserved and deleted entries and a log of 8 changes (made once; tests only read it). */
function smallFolder(): Promise<string> {
  small ??= makeSmallFolder();
  return small;
}

async function makeSmallFolder(): Promise<string> {
  const s = await start();
  const c = await RawClient.login(s.port);
  const writes: string[][] = [
    ['ACTIVATE', 'user.a', 'b1!p', 'anyone\tlr\t'],
    ['ACTIVATE', 'user.b', 'b1!p', 'anyone\tlr\t'],
    ['ACTIVATE', 'user.c', 'b2!p', 'anyone\tlr\t'],
    ['RESERVE', 'user.d', 'b2!p'],
    ['DELETE', 'user.b'],
    ['ACTIVATE', 'user.a', 'b1!p', 'anyone\tlrs\t'],
    ['ACTIVATE', 'user.e', 'b3!p', 'anyone\tlr\t'],
    ['ACTIVATE', 'user.f', 'b3!p', 'anyone\tlr\t'],
  ];
  for (const [i, [verb, ...args]] of writes.entries()) {
    const answer = (await exchange(c, `W${i}`, verb, ...args)).pop();
    if (answer !== `W${i} OK "done"`) throw new Error(`${verb} ${args[0]}: ${answer}`);
  }
  c.close();
  await s.stop();
  return s.dataDir;
}

/** A backup of `folder` damaged by `damage` (an LMDB script on directory.mdb). */
async function damagedCopy(t: ExecutionContext, folder: string, damage: (db: ReturnType<typeof openRaw>) => void): Promise<string> {
  const copy = join(scratch(), 'copy');
  const r = await runCli(['backup', copy, '--data', folder]);
  t.is(r.code, 0, showRun(r));
  const db = openRaw(copy);
  try {
    damage(db);
  } finally {
    await db.root.close();
  }
  return copy;
}

function openRaw(dir: string) {
  const root = open<unknown, Key>({ path: join(dir, 'directory.mdb'), overlappingSync: false, maxDbs: 12, compression: false });
  return {
    root,
    meta: root.openDB<unknown, string>({ name: 'meta' }),
    entries: root.openDB<Buffer, Buffer>({ name: 'entries2', keyEncoding: 'binary', encoding: 'binary' }),
    byServer: root.openDB<Buffer, Buffer>({ name: 'by-server', keyEncoding: 'binary', encoding: 'binary', dupSort: true }),
    log: root.openDB<Buffer, number>({ name: 'changes', encoding: 'binary' }),
  };
}

async function verifyFails(t: ExecutionContext, dir: string, problem: RegExp): Promise<void> {
  const r = await runCli(['verify', '--data', dir]);
  t.is(r.code, 1, showRun(r));
  t.regex(r.stdout, problem, showRun(r));
  t.regex(r.stderr, /failed verification: \d+ problems?/, showRun(r));
}

test('verify passes a sound folder and says what it holds', async (t) => {
  const folder = await smallFolder();
  const r = await runCli(['verify', '--data', folder]);
  t.is(r.code, 0, showRun(r));
  t.regex(r.stdout, /storage format 2, order cyrus, at change #8\n/);
  t.regex(r.stdout, /entries: 5 \(4 active, 1 reserved\); locations: 3; by-server index: 5 pairs/);
  t.regex(r.stdout, /change log: 8 records \(#1 to #8\)/);
  t.regex(r.stdout, /users: 1 \(1 admin\)/);
  t.regex(r.stdout, /\nok\n$/);
});

test('verify fails on an entry missing from the by-server index', async (t) => {
  const copy = await damagedCopy(t, await smallFolder(), (db) => {
    const first = [...db.byServer.getRange({ limit: 1 })][0];
    db.byServer.removeSync(first.key, first.value);
  });
  await verifyFails(t, copy, /PROBLEM: entry "user\.a" \(at "b1!p"\) is missing from the by-server index/);
});

test('verify fails on a gap in the change log', async (t) => {
  const copy = await damagedCopy(t, await smallFolder(), (db) => {
    db.log.removeSync(4);
  });
  await verifyFails(t, copy, /PROBLEM: the change log has a gap: after change #3 comes #5 \(1 change missing\)/);
});

test('verify fails on an entry the change log says exists but the directory lost', async (t) => {
  const copy = await damagedCopy(t, await smallFolder(), (db) => {
    const key = [...db.entries.getKeys()].find((k) => Buffer.from(k).includes('user'))!;
    db.entries.removeSync(key);
  });
  await verifyFails(t, copy, /PROBLEM: change #6 left "user\.a" active at "b1!p", but the directory holds no entry/);
  await verifyFails(t, copy, /PROBLEM: the by-server index lists "user\.a" under "b1", but the directory has no such entry/);
});

test('verify fails when the last change number and the change log disagree', async (t) => {
  const copy = await damagedCopy(t, await smallFolder(), (db) => {
    db.meta.putSync('seq', 11);
  });
  await verifyFails(t, copy, /PROBLEM: the directory is at change #11 but its change log ends at #8/);
});

test('verify fails on a login record filed under another name or without a password hash', async (t) => {
  const copy = await damagedCopy(t, await smallFolder(), () => {});
  const users = open<Record<string, unknown>, string>({ path: join(copy, 'users.mdb'), overlappingSync: false });
  const admin = users.get('mupdateadmin')!;
  users.putSync('someone', admin);
  users.putSync('mupdateadmin', { ...admin, hash: '' });
  await users.close();
  await verifyFails(t, copy, /PROBLEM: user record "someone" does not carry its own name/);
  await verifyFails(t, copy, /PROBLEM: user "mupdateadmin" has no password hash/);
});

test('verify reads a format-1 folder (converted when a server opens it) and compares its log with its entries', async (t) => {
  const entry = (name: string, location: string): Entry => ({
    name: Buffer.from(name),
    state: 'active',
    location: Buffer.from(location),
    acl: Buffer.from('anyone\tlr\t'),
  });
  const a = entry('user.a', 'b1!p');
  const sound = scratch();
  const log = [{ seq: 1, name: a.name, entry: a }];
  await writeFormat1(sound, { order: 'cyrus', dbid: 'format-one', entries: [a], log, seq: 1 });
  let r = await runCli(['verify', '--data', sound]);
  t.is(r.code, 0, showRun(r));
  t.regex(r.stdout, /storage format 1, order cyrus, at change #1\n/);
  t.regex(r.stdout, /note: storage format 1: converted to format 2 when a server opens the folder/);
  t.is(await storedFormat(sound), 1, 'verify wrote nothing');

  const damaged = scratch();
  await writeFormat1(damaged, { order: 'cyrus', dbid: 'format-one', entries: [entry('user.a', 'b2!p')], log, seq: 1 });
  r = await runCli(['verify', '--data', damaged]);
  t.is(r.code, 1, showRun(r));
  t.regex(r.stdout, /PROBLEM: change #1 left "user\.a" active at "b1!p", but the directory holds active at "b2!p"/);
});

test('backup refuses an existing DEST, a folder without a directory, and a cluster', async (t) => {
  const folder = await smallFolder();
  const existing = scratch();
  let r = await runCli(['backup', existing, '--data', folder]);
  t.is(r.code, 1, showRun(r));
  t.regex(r.stderr, /already exists: a backup goes into a new folder/);
  t.deepEqual(readdirSync(existing), []);

  const empty = scratch();
  r = await runCli(['backup', join(empty, 'copy'), '--data', join(empty, 'nothing-here')]);
  t.is(r.code, 1, showRun(r));
  t.regex(r.stderr, /no directory in .*nothing-here/);
  t.deepEqual(readdirSync(empty), [], 'nothing is left behind');

  r = await runCli(['backup', join(empty, 'copy'), '--data', folder, '--etcd', 'http://127.0.0.1:1']);
  t.is(r.code, 1, showRun(r));
  t.regex(r.stderr, /in cluster mode the directory lives in etcd.*'mupdated dump --etcd URL > FILE'.*etcdctl snapshot save/s);

  // A cluster node's view folder (its meta has the view's etcd revision) is refused without --etcd too.
  const view = await damagedCopy(t, folder, (db) => {
    db.meta.putSync('viewRevision', 42);
  });
  r = await runCli(['backup', join(empty, 'copy'), '--data', view]);
  t.is(r.code, 1, showRun(r));
  t.regex(r.stderr, /is a cluster node's data folder: in cluster mode/);
  t.deepEqual(readdirSync(empty), [], 'nothing is left behind');

  // A step the file system refuses (audit.log is a folder) is named, and nothing is left behind.
  const oddAudit = await damagedCopy(t, folder, () => {});
  mkdirSync(join(oddAudit, 'audit.log'));
  r = await runCli(['backup', join(empty, 'copy'), '--data', oddAudit]);
  t.is(r.code, 1, showRun(r));
  t.regex(r.stderr, /^mupdated: backup failed while copying \S*audit\.log: .+ \(nothing was written to DEST/, showRun(r));
  t.deepEqual(readdirSync(empty), [], 'nothing is left behind');

  r = await runCli(['backup']);
  t.is(r.code, 2, showRun(r));
  r = await runCli(['verify', '--help']);
  t.is(r.code, 0, showRun(r));
  t.regex(r.stdout, /usage: mupdated verify/);
});
