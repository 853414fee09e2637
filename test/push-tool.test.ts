/**
 * `mupdated push` (README "Backend push without deletions"): a backend's
 * startup push from its `ctl_mboxlist -d` dump, against `mupdated master` and
 * against a real Cyrus 3.6 master (`mupdate -m`):
 *
 * - first push, in-sync repush (only LIST on the wire, nothing streamed),
 *   DELETE of entries the backend lacks, re-activation of a changed ACL, and
 *   `--dry-run` (nothing written): the same exit codes, output, wire commands
 *   and LIST on both masters;
 * - a mailbox held by another server is never overwritten: exit 3, a
 *   `Review` line on Cyrus, a refused ACTIVATE and a queued conflict on
 *   mupdated;
 * - exit 1 (master unreachable, wrong password) and 2 (usage, unreadable
 *   dump).
 *
 * What the tool sends is recorded by a loopback proxy in front of the master.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  aclText,
  backendDumpJson,
  CyrusBackend,
  defaultAcl,
  CYRUS_BIN,
  mailboxEntry,
  masterFind,
  masterWrite,
  type MailboxSpec,
  type MasterEntry,
} from './helpers/cyrus-backend.js';
import { canonicalEntries, interopTest, listDirectory, startCyrusMaster, type CyrusServer } from './helpers/cyrus.js';
import { freePort } from './helpers/ports.js';
import { passwordFile, RecordingProxy, runCli, type CliResult } from './helpers/operator-tools.js';
import { RawClient } from './helpers/raw-client.js';
import { BACKEND_ADMINS, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { runProgram, showRun } from './helpers/run.js';
import { acl } from './helpers/seed-commands.js';
import { ownedMailboxes, pushArgs, recordStep, type PushStep } from './helpers/push-scenario.js';

const interop = interopTest('serial');

let master: RunningMupdated;
const scratch = tempDir('push-tool-');
const PASSWORD_FILE = passwordFile(scratch);
const proxies: RecordingProxy[] = [];
const backends: CyrusBackend[] = [];
let cyrusStarting: Promise<CyrusServer> | undefined;

test.before(async () => {
  master = await startMupdated({
    users: BACKEND_ADMINS,
  });
});

test.after.always(async () => {
  for (const p of proxies) await p.close();
  for (const b of backends) await b.remove();
  await master?.stop();
  if (master) removeDir(master.dataDir);
  const cyrus = await cyrusStarting?.catch(() => undefined);
  await cyrus?.cleanup();
  removeDir(scratch);
});

/** One Cyrus master for the interop tests of this file, started on first use. */
function cyrusMaster(): Promise<CyrusServer> {
  cyrusStarting ??= startCyrusMaster();
  return cyrusStarting;
}

interface PushRun {
  code: number | null;
  stdout: string;
  stderr: string;
  result: CliResult;
}

async function push(
  port: number,
  server: string,
  dump: string,
  options: { dryRun?: boolean; user?: string; passwordFile?: string; input?: string } = {},
): Promise<PushRun> {
  const args = pushArgs(
    port,
    options.user ?? 'backend1',
    options.passwordFile ?? PASSWORD_FILE,
    '--server',
    server,
    ...(options.dryRun ? ['--dry-run'] : []),
    dump,
  );
  const r = await runCli(args, { input: options.input });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, result: r };
}

function writeDump(name: string, text: string): string {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

/** The mailboxes the scenarios push: names whose 3.6 order differs from strcmp, several ACL shapes. */
function scenarioMailboxes(o: string): MailboxSpec[] {
  const names = [
    `user.${o}`,
    `user.${o}.Sent`,
    `user.${o}.Sent.2024`,
    `user.${o}.a-b`,
    `user.${o}.a b`,
    `user.${o}.a.b`,
    `user.${o}-y`,
    `user.${o}_y`,
    `user.${o} y`,
    `shared-${o}`,
    `shared-${o}.folder`,
  ];
  return ownedMailboxes(names, o, 3, 4, [
    ['alice', 'lrs'],
    ['-bob', 'w'],
  ]);
}

type Step = PushStep;

/**
 * first push, in-sync repush, stale entries and a changed ACL, each with
 * `--dry-run` first; through a recording proxy, with an UPDATE stream open.
 */
async function scenario(port: number, server: string, o: string, dump: string): Promise<Step[]> {
  const proxy = await RecordingProxy.start(port);
  proxies.push(proxy);
  const steps: Step[] = [];
  const run = async (step: string, dryRun: boolean) => {
    const stream = await RawClient.login(port);
    stream.send(`U1 UPDATE "${server}"\r\n`); // PARTIAL-UPDATE: only this scenario's server
    await stream.readUntilTagged('U1', 30_000);
    steps.push(await recordStep(step, port, server, proxy, stream, () => push(proxy.port, server, dump, { dryRun })));
  };
  await run('dry run on an empty master', true);
  await run('first push', false);
  await run('dry run in sync', true);
  await run('in-sync repush', false);
  await masterWrite(port, [
    { kind: 'MAILBOX', name: `user.${o}.stale`, location: `${server}!default`, acl: acl([o, 'lrs']) },
    { kind: 'RESERVE', name: `user.${o}-reserved`, location: `${server}!default`, acl: '' },
    { kind: 'MAILBOX', name: `user.${o}.a.b`, location: `${server}!default`, acl: acl([o, 'lr']) },
    { kind: 'MAILBOX', name: `user.${o}.foreign`, location: 'backend-other!default', acl: '' },
  ]);
  await run('dry run with stale entries', true);
  await run('push removing stale entries', false);
  await run('repush after cleanup', false);
  return steps;
}

/** What the scenario must show, whichever master (so that two equally wrong masters cannot pass). */
function checkScenario(t: ExecutionContext, steps: Step[], server: string, o: string, specs: MailboxSpec[], dump: string): void {
  // the tool works in the dump's (mailboxes.db) order
  const names = Object.keys(JSON.parse(readFileSync(dump, 'utf8')) as object).filter((n) => specs.some((m) => m.name === n));
  t.is(names.length, specs.length);
  const s = new Map(steps.map((x) => [x.step, x]));
  const lines = (x: Step) => x.stdout.split('\n').filter(Boolean);
  const n = names.length;
  for (const x of steps) {
    t.is(x.stderr, '', `${x.step}: ${x.stderr}`);
    t.is(x.code, 0, `${x.step}: ${x.stdout}`);
  }
  const dry0 = s.get('dry run on an empty master')!;
  t.deepEqual(lines(dry0), [
    ...names.map((m) => `Force Activate: ${m}`),
    `# dry run: 0 in sync, 0 to remove, ${n} to activate, 0 to review`,
  ]);
  t.deepEqual(dry0.wire, ['NOOP ', `LIST ${server}!`, ...names.map((m) => `FIND ${m}`)], '--dry-run sends LIST and FIND only');
  t.deepEqual(dry0.list, []);
  t.deepEqual(dry0.streamed, []);
  const first = s.get('first push')!;
  t.deepEqual(lines(first), [
    ...names.map((m) => `Force Activate: ${m}`),
    `# 0 in sync, 0 removed, ${n} activated, 0 to review, 0 refused`,
  ]);
  t.deepEqual(first.wire, ['NOOP ', `LIST ${server}!`, ...names.map((m) => `FIND ${m}`), ...names.map((m) => `ACTIVATE ${m}`)]);
  t.is(first.list.length, n);
  for (const phase of ['dry run in sync', 'in-sync repush']) {
    const x = s.get(phase)!;
    t.deepEqual(x.wire, ['NOOP ', `LIST ${server}!`], `${phase}: only LIST`);
    t.deepEqual(x.streamed, [], `${phase}: nothing written`);
    t.deepEqual(x.list, first.list);
  }
  t.deepEqual(lines(s.get('dry run in sync')!), [`# dry run: ${n} in sync, 0 to remove, 0 to activate, 0 to review`]);
  t.deepEqual(lines(s.get('in-sync repush')!), [`# ${n} in sync, 0 removed, 0 activated, 0 to review, 0 refused`]);
  const dryStale = s.get('dry run with stale entries')!;
  t.deepEqual(
    lines(dryStale).sort(),
    [
      `# dry run: ${n - 1} in sync, 2 to remove, 1 to activate, 0 to review`,
      `Force Activate: user.${o}.a.b`,
      `Remove from MUPDATE: user.${o}-reserved`,
      `Remove from MUPDATE: user.${o}.stale`,
    ].sort(),
  );
  t.deepEqual(dryStale.wire, ['NOOP ', `LIST ${server}!`]);
  t.deepEqual(dryStale.streamed, []);
  t.is(dryStale.list.length, n + 2, 'the dry run changed nothing');
  const clean = s.get('push removing stale entries')!;
  t.deepEqual(clean.wire.slice(2).sort(), [`ACTIVATE user.${o}.a.b`, `DELETE user.${o}-reserved`, `DELETE user.${o}.stale`]);
  t.deepEqual(clean.streamed.slice().sort(), [
    `ACTIVE user.${o}.a.b ${server}!default`,
    `DELETE user.${o}-reserved`,
    `DELETE user.${o}.stale`,
  ]);
  t.regex(clean.stdout, new RegExp(`\n# ${n - 1} in sync, 2 removed, 1 activated, 0 to review, 0 refused\n$`));
  t.deepEqual(clean.list, first.list, 'the master lists exactly the dump again');
  t.deepEqual(s.get('repush after cleanup')!.wire, ['NOOP ', `LIST ${server}!`]);
  t.deepEqual(
    first.list,
    canonicalEntries(
      specs.map((m) => ({
        name: m.name,
        state: 'ACTIVE' as const,
        location: `${server}!default`,
        acl: aclText(m.acl ?? defaultAcl(m.name)),
      })),
    ),
    'the master lists every mailbox of the dump with its ACL bytes',
  );
}

/** A backend dump as Cyrus 3.6 writes it, plus records a push must skip. */
function handDump(specs: MailboxSpec[]): string {
  const base = backendDumpJson(specs).trimEnd().split('\n');
  const extra = [
    // an intermediate, a deleted tombstone, a reservation and another server's entry: not pushed
    '"user.hand.intermediate": {"name": "user.hand.intermediate", "mtime": "1", "uidvalidity": "0", "createdmodseq": "0", "foldermodseq": "0", "mbtype": "ei", "partition": "default", "acl": {}, "name_history": []}',
    '"user.hand.tomb": {"name": "user.hand.tomb", "mtime": "1", "uidvalidity": "0", "createdmodseq": "0", "foldermodseq": "0", "mbtype": "ed", "partition": "default", "acl": {}, "name_history": []}',
    '"user.hand.reserved": {"name": "user.hand.reserved", "mtime": "1", "uidvalidity": "0", "createdmodseq": "0", "foldermodseq": "0", "mbtype": "ez", "partition": "default", "acl": {}, "name_history": []}',
    '"user.hand.remote": {"name": "user.hand.remote", "mtime": "1", "uidvalidity": "0", "createdmodseq": "0", "foldermodseq": "0", "mbtype": "er", "partition": "default", "server": "backend-other", "acl": {}, "name_history": []}',
  ];
  // "{", entries..., "}": put the extra records before the closing brace
  const body = base.slice(1, -1).map((l) => l.replace(/,$/, ''));
  return `{\n${[...body, ...extra].join(',\n')}\n}\n`;
}

test("push against mupdated master: first push, in-sync repush (only LIST, nothing written), DELETE of stale entries, a changed ACL, --dry-run writing nothing; intermediates, tombstones, reservations and other servers' records are not pushed", async (t) => {
  const specs = scenarioMailboxes('hand');
  const dump = writeDump('hand.json', handDump(specs));
  const steps = await scenario(master.port, 'bp-hand', 'hand', dump);
  checkScenario(t, steps, 'bp-hand', 'hand', specs, dump);
  for (const name of ['user.hand.intermediate', 'user.hand.tomb', 'user.hand.reserved', 'user.hand.remote']) {
    t.is(await masterFind(master.port, name), undefined, name);
  }
  t.deepEqual(
    await masterFind(master.port, 'user.hand.foreign'),
    { kind: 'MAILBOX', name: 'user.hand.foreign', location: 'backend-other!default', acl: '' },
    "other servers' entries are untouched",
  );
  t.deepEqual(
    await masterFind(master.port, 'user.hand.a b'),
    mailboxEntry('user.hand.a b', 'bp-hand!default', acl(['hand', 'lrswipkxtecdan'], ['alice', 'lrs'], ['-bob', 'w'])),
  );
});

test('push reads the dump from standard input with "-"', async (t) => {
  const specs: MailboxSpec[] = [{ name: 'user.stdin' }, { name: 'user.stdin.Sent', acl: [] }];
  const r = await push(master.port, 'bp-stdin', '-', { input: backendDumpJson(specs) });
  t.is(r.code, 0, showRun(r.result));
  t.deepEqual(
    canonicalEntries(await listDirectory(master.port, { prefix: 'bp-stdin!' })),
    canonicalEntries([
      { name: 'user.stdin', state: 'ACTIVE', location: 'bp-stdin!default', acl: acl(['stdin', 'lrswipkxtecdan']) },
      { name: 'user.stdin.Sent', state: 'ACTIVE', location: 'bp-stdin!default', acl: '' },
    ]),
  );
});

interface ConflictRow {
  id: number;
  name: string;
  user: string;
  status: string;
  count: number;
  current: { location: string };
  claimed: { location: string };
}

test('push against mupdated master: a mailbox active on another server is never overwritten; the ACTIVATE is refused, a conflict is queued, exit 3; the rest is pushed', async (t) => {
  const held: MasterEntry = { kind: 'MAILBOX', name: 'user.pdup', location: 'backend1!default', acl: acl(['pdup', 'lr']) };
  await masterWrite(master.port, [held]);
  const dump = writeDump('dup.json', backendDumpJson([{ name: 'user.pdup' }, { name: 'user.pdup.Sent' }]));
  const r = await push(master.port, 'backend2', dump, { user: 'backend2' });
  t.is(r.code, 3, showRun(r.result));
  t.is(r.stderr, '', showRun(r.result));
  const out = r.stdout.split('\n').filter(Boolean);
  const refused = out.find((l) => l.startsWith('Refused '));
  t.regex(
    refused ?? '',
    /^Refused \(ACTIVATE: NO mailbox is active on backend1; conflict #\d+ queued for an operator\): user\.pdup$/,
    r.stdout,
  );
  t.true(out.includes('Review (held by backend1!default on the master; local copy kept): user.pdup'), r.stdout);
  t.is(out[out.length - 1], '# 0 in sync, 0 removed, 1 activated, 1 to review, 1 refused');
  t.deepEqual(await masterFind(master.port, 'user.pdup'), held, 'never overwritten');
  t.deepEqual(
    await masterFind(master.port, 'user.pdup.Sent'),
    mailboxEntry('user.pdup.Sent', 'backend2!default', acl(['pdup', 'lrswipkxtecdan'])),
  );
  const id = Number(/conflict #(\d+)/.exec(refused ?? '')?.[1]);
  const list = await runCli(['conflicts', 'list', '--json', '--data', master.dataDir]);
  t.is(list.code, 0, showRun(list));
  const rows = (JSON.parse(list.stdout) as ConflictRow[]).filter((c) => c.name === 'user.pdup');
  t.is(rows.length, 1);
  t.like(rows[0], {
    id,
    user: 'backend2',
    status: 'open',
    count: 1,
    current: { location: 'backend1!default' },
    claimed: { location: 'backend2!default' },
  });

  // again: still exit 3, the same conflict counted, still not overwritten
  const again = await push(master.port, 'backend2', dump, { user: 'backend2' });
  t.is(again.code, 3, showRun(again.result));
  t.regex(again.stdout, new RegExp(`conflict #${id} queued`));
  t.deepEqual(await masterFind(master.port, 'user.pdup'), held);
});

test('push exit codes: 1 when the master is unreachable or refuses the login, 2 for bad usage and an unreadable dump (nothing is sent then)', async (t) => {
  const dump = writeDump('codes.json', backendDumpJson([{ name: 'user.codes' }]));
  const closed = await freePort();
  const unreachable = await push(closed, 'bp-codes', dump);
  t.is(unreachable.code, 1, showRun(unreachable.result));
  t.regex(unreachable.stderr, /^mupdated push: cannot connect to 127\.0\.0\.1:\d+/);

  const wrong = await push(master.port, 'bp-codes', dump, { passwordFile: passwordFile(scratch, 'not-the-password', 'wrong') });
  t.is(wrong.code, 1, showRun(wrong.result));
  t.regex(wrong.stderr, /^mupdated push: .*refused/);
  t.is(await masterFind(master.port, 'user.codes'), undefined);

  const proxy = await RecordingProxy.start(master.port);
  proxies.push(proxy);
  const login = (...rest: string[]) => pushArgs(proxy.port, 'backend1', PASSWORD_FILE, ...rest);
  const cases: Array<[string, string[]]> = [
    ['no --server', login(dump)],
    ['no dump', login('--server', 'bp-codes')],
    ['unknown option', login('--server', 'bp-codes', '--frobnicate', dump)],
    [
      'truncated dump',
      login(
        '--server',
        'bp-codes',
        writeDump('truncated.json', '{\n"user.codes": {"name": "user.codes", "mbtype": "e", "partition": "default", "acl": {}\n'),
      ),
    ],
    ['not a dump', login('--server', 'bp-codes', writeDump('text.txt', 'user.codes\t1 default codes\tlrs\t\n'))],
    ['missing dump file', login('--server', 'bp-codes', join(scratch, 'no-such-dump.json'))],
  ];
  const codes: Record<string, number | null> = {};
  const runs: string[] = [];
  for (const [label, args] of cases) {
    const r = await runCli(args);
    codes[label] = r.code;
    runs.push(showRun(r));
    t.not(r.stderr, '', label);
  }
  t.deepEqual(codes, Object.fromEntries(cases.map(([label]) => [label, 2])), runs.join('\n'));
  t.is(proxy.sessions.length, 0, 'nothing reached the master');
  t.is(await masterFind(master.port, 'user.codes'), undefined);
});

// ---------------------------------------------------------------------------
// against a real Cyrus master

/** A real backend's own `ctl_mboxlist -d` dump of `specs`. */
async function realBackendDump(name: string, servername: string, specs: MailboxSpec[]): Promise<string> {
  const b = await CyrusBackend.create({ mupdatePort: 1, servername });
  backends.push(b);
  await b.load(specs);
  const r = await runProgram(join(CYRUS_BIN, 'ctl_mboxlist'), ['-C', b.configPath, '-d']);
  if (r.code !== 0) throw new Error(`ctl_mboxlist -d: ${r.stderr}`);
  return writeDump(name, r.stdout);
}

interop(
  'push against a real Cyrus master and against mupdated, from a real backend dump: the same exit codes, output, wire commands, streamed changes and LIST in every step',
  async (t) => {
    const cyrus = await cyrusMaster();
    const specs = scenarioMailboxes('real');
    const dump = await realBackendDump('real.json', 'bp-real', specs);
    const theirs = await scenario(cyrus.port, 'bp-real', 'real', dump);
    const ours = await scenario(master.port, 'bp-real', 'real', dump);
    t.is(ours.length, theirs.length);
    for (let i = 0; i < ours.length; i++) t.deepEqual(ours[i], theirs[i], `step ${ours[i].step}`);
    checkScenario(t, theirs, 'bp-real', 'real', specs, dump);
  },
);

interop(
  'push against a real Cyrus master: a mailbox held by another server is reported for review (exit 3) and never overwritten; --dry-run says the same; a wrong password is exit 1',
  async (t) => {
    const cyrus = await cyrusMaster();
    const held: MasterEntry = { kind: 'MAILBOX', name: 'user.cdup', location: 'backend1!default', acl: acl(['cdup', 'lr']) };
    await masterWrite(cyrus.port, [held]);
    const dump = await realBackendDump('cdup.json', 'backend2', [{ name: 'user.cdup' }, { name: 'user.cdup.Sent' }]);

    const dry = await push(cyrus.port, 'backend2', dump, { user: 'backend2', dryRun: true });
    t.is(dry.code, 3, showRun(dry.result));
    t.deepEqual(dry.stdout.split('\n').filter(Boolean), [
      'Review (held by backend1!default on the master; local copy kept): user.cdup',
      'Force Activate: user.cdup.Sent',
      '# dry run: 0 in sync, 0 to remove, 1 to activate, 1 to review',
    ]);
    t.is(await masterFind(cyrus.port, 'user.cdup.Sent'), undefined, 'the dry run wrote nothing');

    const r = await push(cyrus.port, 'backend2', dump, { user: 'backend2' });
    t.is(r.code, 3, showRun(r.result));
    t.is(r.stderr, '', showRun(r.result));
    t.deepEqual(r.stdout.split('\n').filter(Boolean), [
      'Review (held by backend1!default on the master; local copy kept): user.cdup',
      'Force Activate: user.cdup.Sent',
      '# 0 in sync, 0 removed, 1 activated, 1 to review, 0 refused',
    ]);
    t.deepEqual(await masterFind(cyrus.port, 'user.cdup'), held, 'never overwritten');
    t.deepEqual(
      await masterFind(cyrus.port, 'user.cdup.Sent'),
      mailboxEntry('user.cdup.Sent', 'backend2!default', acl(['cdup', 'lrswipkxtecdan'])),
    );

    const wrong = await push(cyrus.port, 'backend2', dump, {
      user: 'backend2',
      passwordFile: passwordFile(scratch, 'wrong-password', 'cyrus-wrong'),
    });
    t.is(wrong.code, 1, showRun(wrong.result));
    t.regex(wrong.stderr, /^mupdated push: /);
  },
);
