/**
 * Interop: a REAL Cyrus 3.6 MUPDATE slave (`mupdate` without `-m`, under
 * Cyrus `master(8)`) follows `mupdated master`. Its copy, read with
 * `ctl_mboxlist -d`, must equal our LIST after its first sync, after 200
 * streamed changes, and after a restart of mupdated (it reconnects and
 * resyncs). The stages run in order on one master and one slave.
 *
 * Comparison: both sides canonicalised to sets of (name, state, location,
 * acl). The Cyrus slave re-parses ACLs into pairs, so the data uses
 * well-formed `id TAB rights TAB` ACLs (or empty ones).
 */
import test from 'ava';
import { freePort } from './helpers/ports.js';
import { prng } from './helpers/prng.js';
import { RawClient } from './helpers/raw-client.js';
import { removeDir, startMupdated, type RunningMupdated } from './helpers/server.js';
import {
  canonicalEntries,
  cyrusAvailable,
  interopTest,
  isUtf8,
  listDirectory,
  startCyrusSlave,
  type CyrusServer,
  type DirEntry,
} from './helpers/cyrus.js';
import { acl, ODD_BYTE_NAMES, USER_X, ORDER_NAMES } from './helpers/seed-commands.js';

const interop = interopTest('serial');
const RETRY_DELAY = 2; // mupdate_retry_delay: keep-alive NOOP period and reconnect delay

let master: RunningMupdated | undefined;
let masterPort = 0;
let dataDir = '';
let slave: CyrusServer | undefined;
let slaveStartedAt = 0;
const extraServers: RunningMupdated[] = [];

/** A MUPDATE command with every argument as a `{n+}` literal, like Cyrus clients send (bytes as latin1). */
function command(tag: string, verb: string, ...args: string[]): string {
  return `${tag} ${verb}${args.map((a) => ` {${a.length}+}\r\n${a}`).join('')}\r\n`;
}

/** Sends the commands pipelined on one connection and requires `OK "done"` for each. */
async function apply(port: number, commands: Array<[verb: string, ...args: string[]]>): Promise<void> {
  const c = await RawClient.login(port);
  try {
    c.send(commands.map(([verb, ...args], i) => command(`C${i}`, verb, ...args)).join(''));
    for (let i = 0; i < commands.length; i++) {
      const answer = await c.readUntilTagged(`C${i}`, 30_000);
      if (answer.join('|') !== `C${i} OK "done"`) {
        throw new Error(`${commands[i].join(' ')} got ${JSON.stringify(answer)}`);
      }
    }
  } finally {
    c.close();
  }
}

/** Names whose 3.6 order differs from strcmp, spaces, 8-bit bytes (valid and invalid UTF-8), quotes, domains. */
const SEED: Array<[verb: string, ...args: string[]]> = [
  ...USER_X,
  ['ACTIVATE', 'user.x.Sent.2024', 'backend1!default', acl(['x', 'lrswipkxtecdan'], ['anyone', 'lrs'])],
  ...ORDER_NAMES,
  ['ACTIVATE', 'user.alice.Sent Items', 'backend1!default', acl(['alice', 'lrswipkxtecdan'])],
  ['ACTIVATE', 'user.\xc3\xa4nne', 'backend1!default', acl(['\xc3\xa4nne', 'lrswipkxtecdan'])],
  ...ODD_BYTE_NAMES,
  ['ACTIVATE', 'shared.news', 'backend2!default', acl(['anyone', 'lrs'], ['group:staff', 'lrswipkxtecdan'], ['-bob', 'w'])],
  ['ACTIVATE', 'user.empty', 'backend1!default', ''],
  ['ACTIVATE', 'user.nobang', 'backend9', ''],
  ['ACTIVATE', 'example.com!user.carol', 'backend1!ssd', acl(['carol@example.com', 'lrswipkxtecdan'])],
  ['RESERVE', 'user.res', 'backend2!default'],
  ['RESERVE', 'user.x.res', 'backend1!default'],
  ...Array.from({ length: 30 }, (_, i): [string, ...string[]] => [
    'ACTIVATE',
    `user.gen${i}`,
    `backend${i % 3}!default`,
    acl([`gen${i}`, 'lrswipkxtecdan']),
  ]),
  ['ACTIVATE', 'zz.seed.1', 'backend1!default', acl(['anyone', 'lrs'])],
  ['ACTIVATE', 'zz.seed.2', 'backend1!default', acl(['anyone', 'lrs'])],
];

function streamUpdateCount(server: RunningMupdated): number {
  return server.logs.filter((l) => l.includes('"msg":"UPDATE stream starts"')).length;
}

/**
 * The slave's copy (ctl_mboxlist -d) and our LIST, canonicalised. Entries
 * whose bytes are not UTF-8 cannot be dumped by Cyrus (it prints an empty
 * line instead), so they are left out of `ours` and counted.
 */
async function compare(): Promise<{ theirs: string[]; ours: string[]; unrepresentable: number; nonUtf8: number }> {
  const ours = await listDirectory(masterPort);
  const dump = await slave!.dump();
  const representable = (e: DirEntry) => isUtf8(e.name) && isUtf8(e.location) && isUtf8(e.acl);
  return {
    theirs: canonicalEntries(dump.entries),
    ours: canonicalEntries(ours.filter(representable)),
    unrepresentable: dump.unrepresentable,
    nonUtf8: ours.filter((e) => !representable(e)).length,
  };
}

/** Polls (bounded) until the slave's copy equals our LIST; returns the last comparison. */
async function waitForEqual(timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let last = await compare();
  for (let i = 0; i < 500 && Date.now() < deadline; i++) {
    if (JSON.stringify(last.theirs) === JSON.stringify(last.ours) && last.unrepresentable === last.nonUtf8) break;
    await new Promise((r) => setTimeout(r, 250));
    last = await compare();
  }
  return last;
}

test.before(async () => {
  if (!cyrusAvailable()) return;
  // A port of our own (helpers/ports.ts): the slave redials it while mupdated restarts.
  masterPort = await freePort();
  master = await startMupdated({ args: ['--listen', `127.0.0.1:${masterPort}`] });
  dataDir = master.dataDir;
  await apply(masterPort, SEED);
  slave = await startCyrusSlave({ masterPort, retryDelay: RETRY_DELAY, startTimeoutMs: 60_000 });
  slaveStartedAt = Date.now();
});

test.after.always(async () => {
  await slave?.cleanup();
  for (const s of [master, ...extraServers]) await s?.stop();
  if (dataDir) removeDir(dataDir);
});

interop(
  "C56 C47 C51 a real Cyrus slave's first sync from mupdated: its ctl_mboxlist -d equals our LIST (tricky names, 8-bit bytes, empty ACLs, reservations)",
  async (t) => {
    t.regex(slave!.banner[slave!.banner.length - 1], new RegExp(`^\\* OK MUPDATE ".*" "mupdate://127\\.0\\.0\\.1:${masterPort}"$`));
    // It shows its banner only after the first sync, so no waiting here.
    const r = await compare();
    t.true(r.ours.length >= SEED.length - 1, 'our LIST has the seeded entries');
    t.deepEqual(r.theirs, r.ours);
    t.is(r.unrepresentable, r.nonUtf8, 'entries ctl_mboxlist -d cannot print (non-UTF-8 bytes)');
    t.is(r.nonUtf8, 1);
    // The slave's own LIST shows its copy byte for byte, non-UTF-8 names included.
    t.deepEqual(canonicalEntries(await listDirectory(slave!.port)), canonicalEntries(await listDirectory(masterPort)));
    t.is(streamUpdateCount(master!), 1, 'the slave logged in and sent UPDATE once');
  },
);

interop('C56 the Cyrus slave picks up a new mailbox within 5 s', async (t) => {
  const entry: DirEntry = {
    name: 'user.c56.new mailbox',
    state: 'ACTIVE',
    location: 'backend2!default',
    acl: acl(['c56', 'lrswipkxtecdan']),
  };
  await apply(masterPort, [['ACTIVATE', entry.name, entry.location, entry.acl]]);
  const acked = Date.now();
  let found: DirEntry | undefined;
  for (let i = 0; i < 100 && Date.now() - acked < 5_000 && !found; i++) {
    found = (await slave!.dump()).entries.find((e) => e.name === entry.name);
    if (!found) await new Promise((r) => setTimeout(r, 100));
  }
  t.deepEqual(found, entry, "the new mailbox is in the slave's mailboxes.db within 5 s of the OK");
});

interop(
  '200 streamed changes (ACTIVATE/RESERVE/DEACTIVATE/DELETE) reach the Cyrus slave: its ctl_mboxlist -d equals our LIST, and it never reconnected',
  async (t) => {
    const rand = prng(200);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const pool: string[] = ['user.x.Sent', 'user.x-y', 'user.x y', 'user.x_y', 'user.x.res', 'user.res', 'user.empty'];
    for (let k = 0; k < 8; k++) pool.push(`user.s${k}`, `user.s${k}.Sent`, `user.s${k}-y`, `user.s${k} z`, `user.s\xc3\xa4${k}`);
    const locations = ['backend1!default', 'backend1!ssd', 'backend2!default', 'backend10!ssd', 'backend2!part-two'];
    const ids = ['anyone', 'alice', 'group:staff', '-bob', '\xc3\xa4nne', 'x-y'];
    const rights = ['lrs', 'lr', 'lrswipkxtecdan', 'p'];
    const randomAcl = () => {
      const n = Math.floor(rand() * 3); // 0..2 pairs, distinct identifiers
      const chosen = [...ids].sort(() => rand() - 0.5).slice(0, n);
      return acl(...chosen.map((id): [string, string] => [id, pick(rights)]));
    };
    // Model of the current state, from our LIST (so each change is a valid one).
    const model = new Map((await listDirectory(masterPort)).map((e) => [e.name, e]));
    const changes: Array<[string, ...string[]]> = [];
    const kinds: Record<string, number> = { ACTIVATE: 0, RESERVE: 0, DEACTIVATE: 0, DELETE: 0 };
    while (changes.length < 200) {
      const name = pick(pool);
      const cur = model.get(name);
      const r = rand();
      let change: [string, ...string[]];
      if (!cur) {
        const location = pick(locations);
        change = r < 0.6 ? ['ACTIVATE', name, location, randomAcl()] : ['RESERVE', name, location];
        model.set(name, { name, state: change[0] === 'ACTIVATE' ? 'ACTIVE' : 'RESERVED', location, acl: change[3] ?? '' });
      } else if (cur.state === 'ACTIVE') {
        if (r < 0.3) {
          // same server (new partition and/or ACL): under the default conflict
          // policy an ACTIVATE naming another server is refused while it is active
          const server = cur.location.split('!')[0];
          const location = pick(locations.filter((l) => l.split('!')[0] === server).concat(cur.location));
          change = ['ACTIVATE', name, location, randomAcl()];
          model.set(name, { ...cur, location, acl: change[3] });
        } else if (r < 0.6) {
          const location = pick(locations);
          change = ['DEACTIVATE', name, location];
          model.set(name, { name, state: 'RESERVED', location, acl: '' });
        } else {
          change = ['DELETE', name];
          model.delete(name);
        }
      } else if (r < 0.5) {
        const location = pick(locations);
        change = ['ACTIVATE', name, location, randomAcl()];
        model.set(name, { name, state: 'ACTIVE', location, acl: change[3] });
      } else {
        change = ['DELETE', name];
        model.delete(name);
      }
      kinds[change[0]]++;
      changes.push(change);
    }
    t.true(
      Object.values(kinds).every((n) => n >= 10),
      `every kind of change is used: ${JSON.stringify(kinds)}`,
    );
    await apply(masterPort, changes);
    const ours = await listDirectory(masterPort);
    t.deepEqual(canonicalEntries(ours), canonicalEntries([...model.values()]), 'mupdated applied the changes as modelled');

    const r = await waitForEqual(30_000);
    t.deepEqual(r.theirs, r.ours);
    t.is(r.unrepresentable, r.nonUtf8);
    // Let a few keep-alive NOOPs pass (every RETRY_DELAY s): the slave must still be on its first connection.
    const settle = slaveStartedAt + 3 * RETRY_DELAY * 1000 + 500 - Date.now();
    if (settle > 0) await new Promise((res) => setTimeout(res, settle));
    t.is(streamUpdateCount(master!), 1, 'the slave never dropped its connection (nothing it received displeased it)');
  },
);

interop(
  'after a restart of mupdated (same data dir, changes made meanwhile) the Cyrus slave reconnects, resyncs, and its ctl_mboxlist -d equals our LIST',
  async (t) => {
    t.timeout(150_000);
    await master!.stop();
    // Change the directory while the slave cannot see it: mupdated on another port, same data dir.
    const offline = await startMupdated({ dataDir });
    extraServers.push(offline);
    // (names the 200 random changes above do not touch). Changes the Cyrus
    // slave's resync merge handles whatever the order: same
    // names with new location/ACL/state, plus new and removed names at the end
    // of the order.
    await apply(offline.port, [
      ['DEACTIVATE', 'user.x.Sent.2024', 'backend2!moved'], // a move to another backend (XFER)
      ['ACTIVATE', 'user.x.Sent.2024', 'backend2!moved', acl(['x', 'lrs'], ['anyone', 'p'])],
      ['ACTIVATE', 'user.x', 'backend1!default', acl(['x', 'lr'])],
      ['ACTIVATE', 'zz.offline.1', 'backend1!default', acl(['off', 'lrswipkxtecdan'])],
      ['ACTIVATE', 'zz.offline.2 sp', 'backend2!default', ''],
      ['RESERVE', 'zz.offline.r', 'backend2!default'],
      ['DELETE', 'zz.seed.1'],
      ['DEACTIVATE', 'zz.seed.2', 'backend10!default'],
    ]);
    const expected = canonicalEntries(await listDirectory(offline.port));
    await offline.stop();
    // Back on the port the slave follows.
    master = await startMupdated({ dataDir, args: ['--listen', `127.0.0.1:${masterPort}`] });
    t.is(master.port, masterPort);
    await master.waitForLog(/"msg":"UPDATE stream starts"/, 60_000); // retry delay + jitter, bounded
    t.deepEqual(canonicalEntries(await listDirectory(masterPort)), expected, 'mupdated kept the data across the restart');
    const r = await waitForEqual(30_000);
    t.deepEqual(r.theirs, r.ours);
    t.is(r.unrepresentable, r.nonUtf8);
    t.true(
      r.theirs.some((l) => l.startsWith('MAILBOX "user.x.Sent.2024" "backend2!moved"')),
      'an offline change reached the slave',
    );
    t.false(
      r.theirs.some((l) => l.includes('"zz.seed.1"')),
      'an offline deletion reached the slave',
    );
    t.deepEqual(
      canonicalEntries(await listDirectory(slave!.port)),
      canonicalEntries(await listDirectory(masterPort)),
      "the slave's own LIST equals ours byte for byte",
    );
  },
);
