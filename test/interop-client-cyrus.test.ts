/**
 * `mupdated client` against a REAL Cyrus MUPDATE master (`mupdate -m`) and
 * against `mupdated master`: the same script renders the same results, in
 * text and in JSON, and the bytes it stores are the same on both.
 */
import test from 'ava';
import { CYRUS_PASSWORD, interopTest, startCyrusMaster, type CyrusServer } from './helpers/cyrus.js';
import { jsonFindMailbox, runClient, startClient } from './helpers/client-run.js';
import { EXPECTED, SCRIPT, STORED } from './helpers/client-script.js';
import { RawClient } from './helpers/raw-client.js';
import { startMupdated, removeDir, type RunningMupdated } from './helpers/server.js';

const itest = interopTest('serial');

let cyrus: CyrusServer | undefined;
let ours: RunningMupdated | undefined;

test.before(async () => {
  ours = await startMupdated();
});

test.after.always(async () => {
  await cyrus?.cleanup();
  if (ours) {
    await ours.stop();
    removeDir(ours.dataDir);
  }
});

async function cyrusMaster(): Promise<CyrusServer> {
  cyrus ??= await startCyrusMaster();
  return cyrus;
}

/** FIND over a raw connection: the stored bytes of one entry (name, location, ACL) or null. */
async function findRaw(port: number, name: Buffer, password: string): Promise<Buffer[] | null> {
  const c = await RawClient.login(port, 'mupdateadmin', password);
  try {
    c.send(Buffer.concat([Buffer.from(`F1 FIND {${name.length}+}\r\n`), name, Buffer.from('\r\n')]));
    const first = await c.readLineRaw();
    if (first.toString('latin1').startsWith('F1 OK')) return null;
    // F1 MAILBOX {n+} / name {n+} / location {n+} / acl   (each literal body then the rest of its line)
    const parts: Buffer[] = [];
    let line = first;
    for (let i = 0; i < 4; i++) {
      const m = /\{(\d+)\+\}$/.exec(line.toString('latin1'));
      if (!m) break;
      const next = await c.readLineRaw();
      const n = Number(m[1]);
      parts.push(next.subarray(0, n));
      line = next.subarray(n);
    }
    await c.readLine();
    return parts;
  } finally {
    c.close();
  }
}

itest('scripted client: a real Cyrus master renders the same results as mupdated master', async (t) => {
  const cy = await cyrusMaster();
  const a = await runClient(ours!.port, SCRIPT);
  const b = await runClient(cy.port, SCRIPT, { password: CYRUS_PASSWORD });
  t.is(a.stderr, '', a.stderr);
  t.is(b.stderr, '', b.stderr);
  t.deepEqual(b.lines, a.lines);
  t.deepEqual(a.lines, EXPECTED);
  t.is(a.code, 1); // the RESERVE conflict got NO
  t.is(b.code, 1);
});

itest('scripted client --json: a real Cyrus master gives the same objects as mupdated master', async (t) => {
  const cy = await cyrusMaster();
  const script = ['list scriptsrv!', 'find "user.q\\"uote\\\\back"', 'find user.nobody', 'stats scriptsrv!', 'raw X3 FOO'];
  const a = await runClient(ours!.port, script, { args: ['--json'] });
  const b = await runClient(cy.port, script, { args: ['--json'], password: CYRUS_PASSWORD });
  t.true(a.lines.length > 5, a.stdout);
  t.deepEqual(b.lines, a.lines);
  const objs = a.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.deepEqual(
    objs.find((o) => o.command === 'find' && o.response === 'MAILBOX'),
    jsonFindMailbox('C02', 'user.q"uote\\\\back', 'scriptsrv!default', 'we"ird\\\\id\\tlr\\tbob smith\\tlrs\\t', [
      ['we"ird\\\\id', 'lr'],
      ['bob smith', 'lrs'],
    ]),
  );
  t.deepEqual(objs[objs.length - 1], { command: 'raw', tag: 'X3', response: 'BAD', text: 'Unrecognized command' });
  t.is(a.code, 1);
  t.is(b.code, 1);
});

itest('names and ACLs typed in the client are stored byte for byte by Cyrus and by mupdated', async (t) => {
  const cy = await cyrusMaster();
  for (const [port, password] of [
    [ours!.port, 'secret'],
    [cy.port, CYRUS_PASSWORD],
  ] as const) {
    for (const [name, location, acl] of STORED) {
      const got = await findRaw(port, name, password);
      t.truthy(got, `port ${port}: ${name.toString('latin1')} not found`);
      t.deepEqual(got![0], name);
      t.deepEqual(got![1], location);
      if (acl) t.deepEqual(got![2], acl);
    }
  }
});

itest('watch against a real Cyrus master prints the changes another connection makes', async (t) => {
  const cy = await cyrusMaster();
  const w = startClient(cy.port, { password: CYRUS_PASSWORD });
  try {
    w.type('watch --count 2 watchsrv');
    await w.waitFor(/watching watchsrv on/, 20_000, 'stderr');
    const r = await runClient(
      cy.port,
      ['activate user.cw watchsrv!default "cw lrs"', 'activate user.other othersrv!default ""', 'reserve user.cw2 watchsrv!p'],
      { password: CYRUS_PASSWORD },
    );
    t.is(r.code, 0, r.stderr);
    // Cyrus batches stream updates on a timer (up to 5 s): wait without asserting timing
    await w.waitFor(/RESERVE +user\.cw2 +watchsrv!p/, 30_000);
    const res = await w.end();
    t.is(res.code, 0, res.stderr);
    const changes = res.lines.filter((l) => /^\d\d:\d\d:\d\d\.\d{3}  /.test(l)).map((l) => l.slice(14));
    t.deepEqual(changes, ['MAILBOX  user.cw  watchsrv!default  cw → lrs', 'RESERVE  user.cw2  watchsrv!p']);
    t.regex(res.stderr, /stopped watching \(2 changes\)/);
  } finally {
    w.child.kill('SIGKILL');
  }
});
