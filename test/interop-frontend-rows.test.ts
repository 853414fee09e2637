/**
 * The rows `mupdated slave --frontend-db` writes are the rows a real Cyrus
 * 3.6 `mupdate` slave writes into a frontend's sqlite mailboxes database
 * (`mboxlist_db: sql`) for the same directory — the `M` (write time) field
 * aside — and both answer a kick on their socket the same way. Both slaves
 * follow one mupdated master; names, locations and ACLs are chosen to hit
 * every quoting rule (domains, `^`, 8-bit bytes, quotes, specials, empty and
 * missing partitions, `NIL`, reservations).
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, writeFileSync } from 'node:fs';
import { readUntilClose } from './helpers/unix-socket.js';
import { join } from 'node:path';
import { CyrusBackend, CyrusImapd, chownTree, cyrusAvailability, backendMissingReason } from './helpers/cyrus-backend.js';
import { interopTest } from './helpers/cyrus.js';
import { spawnCyrusMaster } from './helpers/cyrus-master.js';
import { freePort } from './helpers/ports.js';
import { readRows, withoutMtime, type Row } from './helpers/cyrus-frontend.js';
import { removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { applyChanges, startSlave, waitUntil, type Cmd } from './helpers/slave-tools.js';
import { acl, DOMAIN_MAILBOX, generatedMailboxes, ODD_BYTE_NAMES } from './helpers/seed-commands.js';

const avail = cyrusAvailability();

const interop = interopTest('serial', backendMissingReason());

const SEED: Cmd[] = [
  ['ACTIVATE', 'user.x', 'backend1!default', acl(['x', 'lrswipkxtecdan'], ['anyone', 'lr'])],
  ['ACTIVATE', 'user.x.Sent', 'backend1!default', acl(['x', 'lrswipkxtecdan'])],
  ['ACTIVATE', 'user.x y', 'backend2!default', acl(['x y', 'lrs'])],
  ['ACTIVATE', 'user.x^y', 'backend2!default', acl(['x.y', 'lrs'])],
  ...ODD_BYTE_NAMES,
  DOMAIN_MAILBOX,
  ['ACTIVATE', 'example.com!user.carol.x^y', 'backend1!ssd', acl(['carol@example.com', 'lrswipkxtecdan'])],
  ['ACTIVATE', 'user.empty', 'backend1!default', ''],
  ['ACTIVATE', 'user.nobang', 'backend9', ''],
  ['ACTIVATE', 'user.emptypart', 'backend9!', acl(['NIL', 'lr'], ['a(b', 'l'], ['p%c', 'l'])],
  ['ACTIVATE', 'user.sp', 'back end!par t', acl(['x', ''])],
  ['ACTIVATE', 'user.star*', 'b*!p*', acl(['{x}', 'lr'])],
  // (no value near 1 KB: Cyrus builds its statements in a 1024-byte buffer and loses such rows itself)
  ['ACTIVATE', 'user.eight', 'backend1!default', acl(['\xe4lf', 'lr'], ['back\\slash', 'lr'])],
  ['ACTIVATE', 'DELETED.user.bob.Trash.6B158D6A', 'backend2!', acl(['bob', 'lrswipkxtecdan'])],
  ['RESERVE', 'user.res', 'backend2!default'],
  ...generatedMailboxes(200, (_, i) => `backend${i % 3}!default`),
];

const CHANGES: Cmd[] = [
  ['DEACTIVATE', 'user.x.Sent', 'backend1!default'],
  ['DELETE', 'user.x y'],
  ['ACTIVATE', 'user.x', 'backend1!default', acl(['x', 'lrs'])],
  ['ACTIVATE', 'user.res', 'backend2!default', acl(['res', 'lrswipkxtecdan'])],
  ['RESERVE', 'user.new', 'backend3!default'],
  ...Array.from({ length: 50 }, (_, i): Cmd => ['DELETE', `user.gen${i}`]),
];

let master: RunningMupdated | undefined;
let ours: RunningMupdated | undefined;
let ourDir = '';
let cyrusSlave: CyrusBackend | undefined;
let cyrusService: CyrusImapd | undefined;
let ourDb = '';
let cyrusDb = '';
let ourKick = '';

function comparable(rows: Row[]): Array<[string, string, string, string]> {
  return rows.map((r) => [r.key, withoutMtime(r.value), r.keyType, r.valueType]);
}

function kick(path: string): Promise<string> {
  return readUntilClose(path);
}

async function sameRows(t: ExecutionContext): Promise<void> {
  let a: ReturnType<typeof comparable> = [];
  let b: ReturnType<typeof comparable> = [];
  for (let i = 0; i < 100; i++) {
    a = comparable(readRows(ourDb));
    b = comparable(readRows(cyrusDb));
    if (JSON.stringify(a) === JSON.stringify(b)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  t.deepEqual(a, b);
}

test.before(async () => {
  if (!avail.available) return;
  master = await startMupdated();
  await applyChanges(master.port, SEED);
  ourDir = tempDir('mupdated-frontend-rows-');
  ourDb = join(ourDir, 'mailboxes.sqlite');
  ourKick = join(ourDir, 'mupdate.target');
  ours = await startSlave({ master: master.port, args: ['--frontend-db', ourDb, '--kick-socket', ourKick] });
  await ours.waitForLog(/"msg":"kick socket listening"/);
  // Cyrus's own slave, writing its mailboxes database in sqlite
  cyrusSlave = await CyrusBackend.create({
    mupdatePort: master.port,
    servername: 'cyrus-slave',
    user: 'mupdateadmin',
    config: { mboxlist_db: 'sql', sql_engine: 'sqlite', mupdate_retry_delay: '2' },
  });
  cyrusDb = join(cyrusSlave.dir, 'mailboxes.sqlite');
  writeFileSync(
    cyrusSlave.configPath,
    `${(await import('node:fs')).readFileSync(cyrusSlave.configPath, 'utf8')}sql_database: ${cyrusDb}\n`,
  );
  const port = await freePort();
  const cyrusConf = join(cyrusSlave.dir, 'cyrus.conf');
  writeFileSync(
    cyrusConf,
    `SERVICES {\n  mupdate cmd="mupdate -C ${cyrusSlave.configPath}" listen="127.0.0.1:${port}" prefork=1 maxchild=1\n}\n`,
  );
  chownTree(cyrusSlave.dir);
  const child = spawnCyrusMaster(['-C', cyrusSlave.configPath, '-M', cyrusConf, '-p', join(cyrusSlave.dir, 'master.pid')]);
  const output: string[] = [];
  child.stdout!.setEncoding('latin1').on('data', (d: string) => output.push(d));
  child.stderr!.setEncoding('latin1').on('data', (d: string) => output.push(d));
  cyrusService = new CyrusImapd(cyrusSlave, port, child, output);
  // Cyrus's slave opens its kick socket only after its first complete sync
  await waitUntil(
    () => existsSync(join(cyrusSlave!.confDir, 'socket', 'mupdate.target')),
    60_000,
    `Cyrus's slave synced (${output.join('')})`,
  );
});

test.after.always(async () => {
  await cyrusService?.stop();
  await cyrusSlave?.remove();
  await ours?.stop();
  await master?.stop();
  if (ourDir) removeDir(ourDir);
  if (master) removeDir(master.dataDir);
});

interop('after the first sync, the rows equal those a Cyrus 3.6 slave writes (M aside), both columns TEXT', async (t) => {
  await sameRows(t);
  const rows = readRows(ourDb);
  t.is(rows.length, SEED.length);
  t.true(rows.every((r) => r.keyType === 'text' && r.valueType === 'text'));
});

interop('after changes and a kick of each slave, the rows are still equal, and both answer the kick with "ok"', async (t) => {
  await applyChanges(master!.port, CHANGES);
  const cyrusKick = join(cyrusSlave!.confDir, 'socket', 'mupdate.target');
  const [oursSaid, cyrusSaid] = await Promise.all([kick(ourKick), kick(cyrusKick)]);
  t.is(oursSaid, cyrusSaid);
  t.is(oursSaid, 'ok');
  await sameRows(t);
  t.is(readRows(ourDb).length, SEED.length + 1 - 1 - 50);
});
