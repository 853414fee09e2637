/**
 * Storage format 2 as clients see it (real server processes):
 * - a master started on a format-1 folder converts it, logs
 *   "directory converted to format 2: N entries", and LIST, UPDATE of one
 *   server and XRESUME answer from the same data, in the same order;
 * - after `mupdated load` into an empty folder, an XRESUME from before the
 *   load's end gets FULL, one from its end (as FULL reported it) resumes
 *   INCREMENTAL with nothing to send.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { changeDigest, encodeLogRecord } from '../src/store/codec.js';
import { LmdbDirectoryStore } from '../src/store/lmdb-store.js';
import { storageKey } from '../src/store/order.js';
import type { Entry } from '../src/store/types.js';
import { dataLines, readResponse, type Rec } from './helpers/directory.js';
import { writeFormat1 } from './helpers/format1.js';
import { dumpThenLoad } from './helpers/operator-tools.js';
import { RawClient } from './helpers/raw-client.js';
import { addUser, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';

const servers: RunningMupdated[] = [];
const dirs: string[] = [];
test.after.always(async () => {
  for (const s of servers) await s.stop();
  for (const d of dirs) removeDir(d);
});

function freshFolder(): string {
  const dir = tempDir('store-format-wire-');
  dirs.push(dir);
  addUser(dir, { name: 'mupdateadmin', admin: true });
  return dir;
}

async function start(dataDir: string): Promise<RunningMupdated> {
  const s = await startMupdated({ dataDir });
  servers.push(s);
  return s;
}

const B = (s: string) => Buffer.from(s, 'latin1');

function entries(n: number): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const id = `u${String(i).padStart(4, '0')}`;
    const name = `user.${id}${['', '.Sent', '.Trash'][i % 3]}`;
    out.push(
      i % 7 === 6
        ? { name: B(name), state: 'reserved', location: B(`backend${i % 4}!default`), acl: B('') }
        : { name: B(name), state: 'active', location: B(`backend${i % 4}!default`), acl: B(`${id}\tlrswipkxtecdan\t`) },
    );
  }
  // Names the key format has to be careful with.
  out.push({ name: B('x!y'), state: 'active', location: B('backend1!p'), acl: B('a') });
  out.push({ name: B('x\x1dy'), state: 'active', location: B('backend1!p'), acl: B('b') });
  out.push({ name: B('x.y \xe4'), state: 'active', location: B('backend2'), acl: B('c') });
  return out.sort((a, b) => Buffer.compare(storageKey(a.name, 'cyrus'), storageKey(b.name, 'cyrus')));
}

function records(list: Entry[]): Rec[] {
  return list.map((e) =>
    e.state === 'active'
      ? { kind: 'MAILBOX', args: [e.name, e.location, e.acl].map((b) => b.toString('latin1')) }
      : { kind: 'RESERVE', args: [e.name, e.location].map((b) => b.toString('latin1')) },
  );
}

interface Sync {
  mode: string;
  id: string;
  seq: string;
  digest: string;
  records: Rec[];
  lines: string[];
  status: string;
}

/** XRESUME on a fresh connection: the XSYNC answer and the records up to the tagged OK. */
async function xresume(port: number, id: string, seq: string, digest?: string): Promise<Sync> {
  const c = await RawClient.login(port);
  try {
    c.send(`X1 XRESUME "${id}" "${seq}"${digest === undefined ? '' : ` "${digest}"`}\r\n`);
    const head = await c.readLine(20_000);
    if (!/^X1 XSYNC \{\d+\+\}$/.test(head)) throw new Error(`unexpected answer ${JSON.stringify(head)}`);
    const parts: string[] = [];
    for (let i = 0; i < 4; i++) {
      const l = await c.readLine(20_000);
      parts.push(l.replace(/ \{\d+\+\}$/, ''));
    }
    const sync = { mode: parts[0], id: parts[1], seq: parts[2], digest: parts[3], lines: [] as string[] };
    if (sync.mode === 'FULL') return { ...sync, ...(await readResponse(c, 'X1', 'X1', 60_000)) };
    // INCREMENTAL lines carry the sequence number as an extra argument: compared as lines.
    for (;;) {
      const l = await c.readLine(20_000);
      if (l.startsWith('X1 OK ')) return { ...sync, records: [], status: l };
      sync.lines.push(l);
    }
  } finally {
    c.close();
  }
}

async function list(port: number, tag = 'L1', args = ''): Promise<Rec[]> {
  const c = await RawClient.login(port);
  try {
    c.send(`${tag} LIST${args}\r\n`);
    const r = await readResponse(c, tag, tag, 60_000);
    if (r.status !== `${tag} OK "list complete"`) throw new Error(r.status);
    return r.records;
  } finally {
    c.close();
  }
}

test.serial('a master on a format-1 folder converts it, says so, and serves the same directory in the same order', async (t) => {
  const dir = freshFolder();
  const all = entries(300);
  const dbid = randomUUID();
  const log = all.slice(-20).map((e, i) => ({ seq: 281 + i, name: e.name, entry: e }));
  await writeFormat1(dir, { order: 'cyrus', dbid, entries: all, log, seq: 300 });
  const s = await start(dir);
  t.true(
    s.logs.some((l) => l.includes('"msg":"directory converted to format 2: 303 entries"')),
    s.logs.join('\n'),
  );
  t.deepEqual(await list(s.port), records(all));
  t.deepEqual(await list(s.port, 'L2', ' "backend1!p"'), records(all.filter((e) => e.location.toString() === 'backend1!p')));
  const full = await xresume(s.port, dbid, '100');
  t.is(full.mode, 'FULL');
  t.is(full.id, dbid);
  t.is(full.seq, '300');
  t.deepEqual(full.records, records(all));
  // Resuming within the log that came through the conversion is incremental, with the same records.
  const inc = await xresume(s.port, dbid, '295');
  t.is(inc.mode, 'INCREMENTAL');
  t.deepEqual(
    inc.lines,
    records(all.slice(-5)).flatMap((r, i) => dataLines('X1', r.kind, [...r.args, String(296 + i)])),
  );
  t.is(full.digest, changeDigest(encodeLogRecord(log.at(-1)!.name, log.at(-1)!.entry)));
  await s.stop();
  // A second start has nothing to convert.
  const again = await start(dir);
  t.false(again.logs.some((l) => l.includes('converted to format 2')));
  t.deepEqual(await list(again.port), records(all));
  await again.stop();
});

test.serial('after mupdated load into an empty folder, XRESUME from before its end gets FULL and from its end resumes', async (t) => {
  const source = tempDir('store-format-wire-src-');
  dirs.push(source);
  const all = entries(500);
  const store = LmdbDirectoryStore.open(source, {});
  await store.applyMany(all.map((e) => ({ name: e.name, entry: e })));
  await store.close();
  const dir = freshFolder();
  await dumpThenLoad(t, source, join(source, 'dump.json'), dir);
  const s = await start(dir);
  const first = await xresume(s.port, '', '0');
  t.is(first.mode, 'FULL');
  t.is(first.seq, '503');
  t.not(first.digest, '');
  t.deepEqual(first.records, records(all));
  for (const after of ['1', '250', '501']) {
    const r = await xresume(s.port, first.id, after);
    t.is(r.mode, 'FULL', `after ${after}`);
    t.deepEqual(r.records, records(all));
  }
  // A sequence number in anything but decimal digits is refused, not read as a number.
  const bad = await RawClient.login(s.port);
  for (const seq of ['', ' ', '0x10', '1e3', '-1', '12345678901234567']) {
    bad.send(`X2 XRESUME "${first.id}" "${seq}"\r\n`);
    t.is(await bad.readLine(20_000), 'X2 BAD "Badly formed arguments"', JSON.stringify(seq));
  }
  bad.close();
  const resumed = await xresume(s.port, first.id, first.seq, first.digest);
  t.is(resumed.mode, 'INCREMENTAL');
  t.deepEqual(resumed.lines, []);
  t.is(resumed.status, 'X1 OK "streaming starts"');
  // UPDATE of one server (the by-server index) after the load.
  const c = await RawClient.login(s.port);
  c.send('U1 UPDATE "backend3"\r\n');
  const update = await readResponse(c, 'U1', 'U1', 60_000);
  c.close();
  t.deepEqual(update.records, records(all.filter((e) => e.location.toString().startsWith('backend3!'))));
  await s.stop();
});
