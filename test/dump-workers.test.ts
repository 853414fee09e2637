/**
 * Whole-directory dumps run in worker threads (dump_workers, default 2):
 * LIST, LIST with a prefix, UPDATE and UPDATE with hosts give exactly the
 * bytes the server thread gives (dump_workers: 0), over a directory that
 * spans many chunks; and pipelined FINDs answered while the connection's
 * writes commit keep command order and see the connection's own writes.
 */
import test from 'ava';
import { RawClient } from './helpers/raw-client.js';
import { addUser, removeDir, startMupdated, tempDir } from './helpers/server.js';
import { lit, login, populate, q } from './helpers/directory.js';

/** Every line of one command's answer, up to its tagged status. */
async function answer(c: RawClient, tag: string, text: string): Promise<string[]> {
  c.send(`${tag} ${text}\r\n`);
  return c.readUntilTagged(tag, 60_000);
}

const DUMPS = [
  ['LA', 'LIST'],
  ['LP', 'LIST "backend2!"'],
  ['LQ', 'LIST "backend3!ss"'],
  ['LN', 'LIST "nowhere!"'],
  ['UA', 'UPDATE'],
  ['UH', 'UPDATE "backend1" "backend4"'],
] as const;

async function dumpsOf(port: number): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const [tag, text] of DUMPS) {
    const c = await login(port);
    out.set(tag, await answer(c, tag, text));
    c.close();
  }
  return out;
}

test('dumps from worker threads are byte for byte those of the server thread', async (t) => {
  const dataDir = tempDir();
  t.teardown(() => removeDir(dataDir));
  addUser(dataDir, { name: 'mupdateadmin', admin: true });
  const first = await startMupdated({ dataDir, config: { dump_workers: 0 } });
  let inThread: Map<string, string[]>;
  try {
    // ~20,000 entries: about 1.5 MB of dump, several chunks; odd bytes in names and ACLs
    await populate(
      () => login(first.port),
      20_000,
      (i) => ({
        name: i % 997 === 0 ? `user.dw e ${i}.x"y\\z` : `user.dw${String(i).padStart(6, '0')}${i % 5 ? `.f${i % 5}` : ''}`,
        location: `backend${(i % 4) + 1}!${i % 3 ? 'default' : 'ssd'}`,
        acl: i % 7 ? `u${i}\tlrswipkxtecdan\tanyone\tp\t` : '',
      }),
    );
    const c = await login(first.port);
    for (let i = 0; i < 50; i++) {
      t.regex((await answer(c, `R${i}`, `RESERVE ${q(`user.dwres.${i}`)} ${q(`backend${(i % 4) + 1}!default`)}`))[0], /OK "done"/);
    }
    c.close();
    inThread = await dumpsOf(first.port);
  } finally {
    await first.stop();
  }
  const second = await startMupdated({ dataDir, config: { dump_workers: 2 } });
  try {
    const inWorkers = await dumpsOf(second.port);
    for (const [tag, text] of DUMPS) {
      const a = inThread.get(tag)!;
      const b = inWorkers.get(tag)!;
      t.is(b.length, a.length, `${text}: as many lines`);
      t.true(a.length > 0);
      t.deepEqual(b, a, `${text}: the same lines`);
    }
    t.true(inThread.get('LA')!.length > 20_000 * 4, 'the full LIST holds every entry');
    t.deepEqual(inThread.get('LN'), ['LN OK "list complete"']);
  } finally {
    await second.stop();
  }
});

test("a FIND pipelined behind writes sees the connection's own writes and answers keep command order", async (t) => {
  const s = await startMupdated();
  t.teardown(() => s.stop());
  const c = await login(s.port);
  t.deepEqual(await answer(c, 'S0', `ACTIVATE "user.fa.old" "backend1!default" ${lit('old\tlrs\t')}`), ['S0 OK "done"']);
  // one packet: writes and FINDs of the same and of other names, interleaved
  c.send(
    [
      `A1 ACTIVATE "user.fa.new" "backend2!default" ${lit('new\tlrs\t')}`,
      'F1 FIND "user.fa.new"',
      'F2 FIND "user.fa.old"',
      'A2 DELETE "user.fa.old"',
      'F3 FIND "user.fa.old"',
      'F4 FIND "user.fa.none"',
      'A3 RESERVE "user.fa.old" "backend3!default"',
      'F5 FIND "user.fa.old"',
      'F6 FIND "user.fa.new"',
    ].join('\r\n') + '\r\n',
  );
  const lines = await c.readUntilTagged('F6', 30_000);
  t.deepEqual(lines, [
    'A1 OK "done"',
    'F1 MAILBOX {11+}',
    'user.fa.new {16+}',
    'backend2!default {8+}',
    'new\tlrs\t',
    'F1 OK "Search completed"',
    'F2 MAILBOX {11+}',
    'user.fa.old {16+}',
    'backend1!default {8+}',
    'old\tlrs\t',
    'F2 OK "Search completed"',
    'A2 OK "done"',
    'F3 OK "Search completed"',
    'F4 OK "Search completed"',
    'A3 OK "done"',
    'F5 RESERVE {11+}',
    'user.fa.old {16+}',
    'backend3!default',
    'F5 OK "Search completed"',
    'F6 MAILBOX {11+}',
    'user.fa.new {16+}',
    'backend2!default {8+}',
    'new\tlrs\t',
    'F6 OK "Search completed"',
  ]);
  c.close();
});
