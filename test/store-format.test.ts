/**
 * Storage format 2 of the directory (src/store), on real LMDB folders:
 *
 * - format-2 keys sort exactly like format-1 keys (storageKey) in both
 *   orders, stay unique, and give the name back, for names with 0x1D, 0x1F,
 *   `!`, `.`, spaces and 8-bit bytes;
 * - a format-1 folder, written with the old layout, is converted at open and
 *   then answers find/entries/scan/changesSince/changeDigest exactly as its
 *   data says; a read-only open refuses it and a newer format is refused,
 *   both without writing;
 * - the by-server index agrees with a filtered full scan (and holds exactly
 *   one record per entry) after random puts, moves and deletes;
 * - locations over 255 bytes and past the 100,000th are stored inline;
 * - loadMany (mupdated load) into an empty directory keeps sequence numbers
 *   and leaves a log that only resumes from its end.
 */
import test from 'ava';
import fc from 'fast-check';
import { open } from 'lmdb';
import { randomUUID } from 'node:crypto';
import { changeDigest, encodeLogRecord } from '../src/store/codec.js';
import { MAX_INTERNED_LOCATIONS } from '../src/store/locations.js';
import { LmdbDirectoryStore, bucketOf } from '../src/store/lmdb-store.js';
import { KeyReader, entryKey, storageKey } from '../src/store/order.js';
import { StorageError, type BatchItem, type DirectoryOrder, type Entry, type ScanFilter, type Snapshot } from '../src/store/types.js';
import { storedFormat, writeFormat1, type Format1Change } from './helpers/format1.js';
import { removeDir, tempDir } from './helpers/server.js';
import { active, B, plain, reserved } from './helpers/store-entries.js';

fc.configureGlobal({ includeErrorInReport: true });

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) removeDir(d);
});

function folder(): string {
  const d = tempDir('store-format-');
  dirs.push(d);
  return d;
}

const ORDERS: DirectoryOrder[] = ['cyrus', 'bytes'];

function byFormat1(order: DirectoryOrder) {
  return (a: Entry, b: Entry) => Buffer.compare(storageKey(a.name, order), storageKey(b.name, order));
}

function serverOf(location: Buffer): string {
  const bang = location.indexOf(0x21);
  return location.toString('latin1', 0, bang < 0 ? location.length : bang);
}

function matches(e: Entry, filter: ScanFilter): boolean {
  const p = filter.locationPrefix;
  if (p && (e.location.length < p.length || !e.location.subarray(0, p.length).equals(p))) return false;
  return !filter.servers || filter.servers.has(serverOf(e.location));
}

/** A scan as plain entries (views copied at each step). */
function scanned(snapshot: Snapshot, filter?: ScanFilter): ReturnType<typeof plain>[] {
  return Array.from(snapshot.scan(filter), plain);
}

// ---- names and keys ----

/** Bytes that matter to the order: the mapped characters, their replacements, neighbours, space, 8-bit. */
const nameByte = fc.constantFrom(
  0x1d,
  0x1f,
  0x21,
  0x2e,
  0x20,
  0x01,
  0x1c,
  0x1e,
  0x22,
  0x2d,
  0x2f,
  0x61,
  0x62,
  0x7f,
  0x80,
  0xe4,
  0xfe,
  0xff,
);
const nameArb = fc.array(nameByte, { maxLength: 12 }).map((bytes) => Buffer.from(bytes));

const TRICKY = [
  '',
  'x!y',
  'x\x1dy',
  'x.y',
  'x\x1fy',
  'a',
  'a.b',
  'a!b',
  'a!b.c',
  'a\x1db\x1fc',
  'a\x1db.c',
  'a!b\x1fc',
  'a!b!c',
  'a.b!c',
  'a.b\x1dc',
  '\xff',
  '\xff\xff',
  '\xff\x1d',
  '\xff!',
  '\xff\xff.',
  'user.joe',
  'user.joe.Sent',
  'user.joe Sent',
  'user.joe\xe4',
  'user!joe',
  'domain.com!user.joe',
  'domain.com!user.joe.Trash',
  ' ',
  ' !',
  '!',
  '.',
  '\x1d',
  '\x1f',
  '!.',
  '\x1d\x1f',
  '!\x1f',
  '\x1d.',
].map(B);

function checkKeys(t: import('ava').ExecutionContext, names: Buffer[], order: DirectoryOrder): void {
  const unique = [...new Map(names.map((n) => [n.toString('latin1'), n])).values()];
  const old = [...unique].sort((a, b) => Buffer.compare(storageKey(a, order), storageKey(b, order)));
  const now = [...unique].sort((a, b) => Buffer.compare(entryKey(a, order), entryKey(b, order)));
  t.deepEqual(
    now.map((n) => n.toString('hex')),
    old.map((n) => n.toString('hex')),
    `${order} order`,
  );
  t.is(new Set(unique.map((n) => entryKey(n, order).toString('hex'))).size, unique.length, `${order} keys unique`);
  const reader = new KeyReader(order);
  for (const n of unique) t.is(reader.name(entryKey(n, order)).toString('hex'), n.toString('hex'), `${order} name back`);
}

test('format-2 keys keep the format-1 order, stay unique and give the name back (tricky names)', (t) => {
  for (const order of ORDERS) checkKeys(t, TRICKY, order);
  // The case a bare sort key would get wrong: format 1 puts the name with the literal 0x1D first.
  t.true(Buffer.compare(entryKey(B('x\x1dy'), 'cyrus'), entryKey(B('x!y'), 'cyrus')) < 0);
  // A clean name's key is its sort key, 0x00 and 0xFF: no copy of the name.
  t.deepEqual(entryKey(B('user.joe'), 'cyrus'), Buffer.concat([B('user\x1fjoe'), Buffer.of(0, 0xff)]));
  t.deepEqual(entryKey(B('user.joe'), 'bytes'), B('user.joe'));
});

test('format-2 keys keep the format-1 order, stay unique and give the name back (random names)', (t) => {
  fc.assert(
    fc.property(fc.array(nameArb, { minLength: 1, maxLength: 30 }), (names) => {
      for (const order of ORDERS) {
        const unique = [...new Map(names.map((n) => [n.toString('latin1'), n])).values()];
        const old = [...unique].sort((a, b) => Buffer.compare(storageKey(a, order), storageKey(b, order))).map((n) => n.toString('hex'));
        const now = [...unique].sort((a, b) => Buffer.compare(entryKey(a, order), entryKey(b, order))).map((n) => n.toString('hex'));
        if (old.join() !== now.join()) return false;
        if (new Set(unique.map((n) => entryKey(n, order).toString('hex'))).size !== unique.length) return false;
        const reader = new KeyReader(order);
        if (!unique.every((n) => reader.name(entryKey(n, order)).equals(n))) return false;
      }
      return true;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('names round-trip through the store in format-1 order, in both orders', async (t) => {
  for (const order of ORDERS) {
    const store = LmdbDirectoryStore.open(folder(), { order });
    const entries = TRICKY.map((n, i) =>
      i % 3 === 2 ? reserved(n.toString('latin1'), `s${i % 4}!p`) : active(n.toString('latin1'), `s${i % 4}!p`, `acl${i}`),
    );
    t.is(await store.applyMany(entries.map((e) => ({ name: e.name, entry: e }))), entries.length);
    const expected = [...entries].sort(byFormat1(order)).map(plain);
    const snap = store.snapshot();
    t.deepEqual([...snap.entries()].map(plain), expected, `${order}: entries()`);
    t.deepEqual(scanned(snap), expected, `${order}: scan()`);
    t.deepEqual(
      scanned(snap, { servers: new Set(['s1']) }),
      expected.filter((e) => e![2].startsWith('s1!')),
      `${order}: one server`,
    );
    for (const e of entries) {
      t.deepEqual(plain(snap.find(e.name)), plain(e));
      t.deepEqual(plain(store.find(e.name)), plain(e));
    }
    snap.close();
    await store.close();
  }
});

// ---- conversion from format 1 ----

/** A history of changes over a model directory: the final entries and every change record. */
function history(order: DirectoryOrder, rounds: number): { entries: Entry[]; log: Format1Change[] } {
  const model = new Map<string, Entry>();
  const log: Format1Change[] = [];
  let seq = 0;
  const names = [
    ...TRICKY,
    ...Array.from({ length: 60 }, (_, i) => B(`user.u${String(i).padStart(4, '0')}${['', '.Sent', '.Trash'][i % 3]}`)),
  ];
  const locations = ['b1!default', 'b2!default', 'b2!other', 'b3', '', '!p', `long${'x'.repeat(300)}!p`, 'b1!default'];
  for (let r = 0; r < rounds; r++) {
    const name = names[(r * 7 + 3) % names.length];
    const key = name.toString('latin1');
    let entry: Entry | null;
    if (r % 5 === 4) entry = null;
    else if (r % 5 === 3) entry = reserved(key, locations[r % locations.length]);
    else entry = active(key, locations[r % locations.length], `u${r}\tlrs\t`);
    if (!entry && !model.has(key)) continue;
    if (entry) model.set(key, entry);
    else model.delete(key);
    log.push({ seq: ++seq, name, entry });
  }
  return { entries: [...model.values()].sort(byFormat1(order)), log };
}

for (const order of ORDERS) {
  test(`a format-1 folder (${order} order) is converted at open and answers exactly as before`, async (t) => {
    const dir = folder();
    const { entries, log } = history(order, 400);
    const dbid = randomUUID();
    const seq = log[log.length - 1].seq;
    const kept = log.slice(50); // the log was pruned at the front
    await writeFormat1(dir, { order, dbid, entries, log: kept, seq });

    // A read-only open must neither convert nor write.
    const ro = t.throws(() => LmdbDirectoryStore.open(dir, { readOnly: true }), { instanceOf: StorageError });
    t.regex(ro.message, /format 1/);
    t.is(await storedFormat(dir), 1);

    const store = LmdbDirectoryStore.open(dir, order === 'cyrus' ? {} : { order });
    t.deepEqual(store.converted, { from: 1, entries: entries.length });
    t.is(store.order, order);
    t.is(store.id, dbid);
    t.is(store.lastSeq, seq);
    const snap = store.snapshot();
    t.is(snap.seq, seq);
    t.deepEqual([...snap.entries()].map(plain), entries.map(plain));
    t.deepEqual(scanned(snap), entries.map(plain));
    for (const filter of [
      { servers: new Set(['b2']) },
      { servers: new Set(['']) },
      { servers: new Set(['b1', 'b3']) },
      { locationPrefix: B('b2!d') },
      { locationPrefix: B('b') },
      { locationPrefix: B('!') },
      { servers: new Set([`long${'x'.repeat(300)}`]) },
    ]) {
      t.deepEqual(scanned(snap, filter), entries.filter((e) => matches(e, filter)).map(plain), JSON.stringify(filter));
    }
    for (const name of [...TRICKY, B('user.u0001'), B('nothing')]) {
      const want = entries.find((e) => e.name.equals(name));
      t.deepEqual(plain(snap.find(name)), plain(want), name.toString('latin1'));
      t.deepEqual(plain(store.find(name)), plain(want));
    }
    // The change log is untouched: same records, same digests.
    t.is(snap.changesSince(10), null);
    const since = snap.changesSince(kept[0].seq - 1);
    t.deepEqual(
      [...since!].map((c) => [c.seq, c.name.toString('latin1'), plain(c.entry)]),
      kept.map((c) => [c.seq, c.name.toString('latin1'), plain(c.entry)]),
    );
    for (const c of kept) t.is(snap.changeDigest(c.seq), changeDigest(encodeLogRecord(c.name, c.entry)));
    t.is(snap.changeDigest(10), null);
    snap.close();

    // Writes after the conversion go on from the same sequence number.
    await store.mutate(B('user.new'), () => ({ kind: 'put', entry: active('user.new', 'b9!default', 'x'), result: null }));
    t.is(store.lastSeq, seq + 1);
    await store.close();
    t.is(await storedFormat(dir), 2);

    const again = LmdbDirectoryStore.open(dir, { order });
    t.is(again.converted, null);
    const s2 = again.snapshot();
    t.deepEqual(scanned(s2), [...entries, active('user.new', 'b9!default', 'x')].sort(byFormat1(order)).map(plain));
    t.deepEqual(scanned(s2, { servers: new Set(['b9']) }), [plain(active('user.new', 'b9!default', 'x'))]);
    s2.close();
    await again.close();
  });
}

test('a folder in a newer format is refused without a write; mustExist and readOnly refuse a missing folder', async (t) => {
  const dir = folder();
  await writeFormat1(dir, { order: 'cyrus', dbid: randomUUID(), entries: [active('a', 'b!p')], log: [], seq: 1, format: 3 });
  for (const options of [{}, { mustExist: true }, { readOnly: true }]) {
    const err = t.throws(() => LmdbDirectoryStore.open(dir, options), { instanceOf: StorageError });
    t.regex(err.message, /format 3/);
  }
  t.is(await storedFormat(dir), 3);
  t.throws(() => LmdbDirectoryStore.open(folder(), { readOnly: true }), { instanceOf: StorageError, message: /no directory/ });
});

test('a read-only store reads what a writer commits later (new locations too) and refuses writes', async (t) => {
  const dir = folder();
  const writer = LmdbDirectoryStore.open(dir, {});
  await writer.applyMany([{ name: B('user.a'), entry: active('user.a', 'b1!p', 'a') }]);
  const reader = LmdbDirectoryStore.open(dir, { readOnly: true });
  await writer.applyMany([
    { name: B('user.b'), entry: active('user.b', 'b2!new', 'b') },
    { name: B('user.c'), entry: reserved('user.c', 'b2!new') },
  ]);
  const snap = reader.snapshot();
  t.deepEqual(scanned(snap), [
    plain(active('user.a', 'b1!p', 'a')),
    plain(active('user.b', 'b2!new', 'b')),
    plain(reserved('user.c', 'b2!new')),
  ]);
  t.deepEqual(scanned(snap, { servers: new Set(['b2']) }), [plain(active('user.b', 'b2!new', 'b')), plain(reserved('user.c', 'b2!new'))]);
  t.deepEqual(plain(reader.find(B('user.c'))), plain(reserved('user.c', 'b2!new')));
  snap.close();
  await t.throwsAsync(reader.applyMany([{ name: B('x'), entry: active('x', 'y') }]), { instanceOf: StorageError, message: /read-only/ });
  await t.throwsAsync(
    reader.mutate(B('x'), () => ({ kind: 'delete', result: null })),
    { instanceOf: StorageError },
  );
  await reader.close();
  await writer.close();
});

// ---- the by-server index ----

/** Every by-server record, as `bucket-hex key-hex`, read straight from the folder (the store closed). */
async function indexRecords(dir: string): Promise<string[]> {
  const root = open({ path: `${dir}/directory.mdb`, overlappingSync: false, maxDbs: 12, compression: false });
  const db = root.openDB<Buffer, Buffer>({ name: 'by-server', keyEncoding: 'binary', encoding: 'binary', dupSort: true });
  const out: string[] = [];
  for (const { key, value } of db.getRange({ start: Buffer.of(0) }))
    out.push(`${Buffer.from(key).toString('hex')} ${Buffer.from(value).toString('hex')}`);
  await root.close();
  return out.sort();
}

const SERVERS = ['b1', 'b2', 'b3', '', 'x'.repeat(300)];
const locationArb = fc
  .tuple(fc.constantFrom(...SERVERS), fc.constantFrom('', '!default', '!other', '!', '!a!b'))
  .map(([server, rest]) => B(server + rest));
const opArb = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('put' as const),
      name: fc.constantFrom(...TRICKY.slice(0, 25)),
      location: locationArb,
      reserve: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), name: fc.constantFrom(...TRICKY.slice(0, 25)) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('batch' as const),
      items: fc.array(fc.record({ name: fc.constantFrom(...TRICKY.slice(0, 25)), location: fc.option(locationArb) }), { maxLength: 8 }),
    }),
  },
);

test('the by-server index agrees with a filtered full scan after random puts, moves and deletes', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...ORDERS), fc.array(opArb, { maxLength: 40 }), async (order, ops) => {
      const dir = folder();
      const store = LmdbDirectoryStore.open(dir, { order });
      const model = new Map<string, Entry>();
      try {
        for (const op of ops) {
          if (op.kind === 'put') {
            const n = op.name.toString('latin1');
            const e = op.reserve ? reserved(n, op.location.toString('latin1')) : active(n, op.location.toString('latin1'), `acl ${n}`);
            await store.mutate(op.name, () => ({ kind: 'put', entry: e, result: null }));
            model.set(n, e);
          } else if (op.kind === 'delete') {
            await store.mutate(op.name, (current) => (current ? { kind: 'delete', result: null } : { kind: 'keep', result: null }));
            model.delete(op.name.toString('latin1'));
          } else {
            const items: BatchItem[] = op.items.map(({ name, location }) => ({
              name,
              entry: location ? active(name.toString('latin1'), location.toString('latin1'), 'b') : null,
            }));
            await store.applyMany(items);
            for (const i of items) {
              if (i.entry) model.set(i.name.toString('latin1'), i.entry);
              else model.delete(i.name.toString('latin1'));
            }
          }
        }
        const expected = [...model.values()].sort(byFormat1(order));
        const snap = store.snapshot();
        const all = scanned(snap);
        if (JSON.stringify(all) !== JSON.stringify(expected.map(plain))) throw new Error('full scan differs from the model');
        const filters: ScanFilter[] = [
          ...SERVERS.map((s) => ({ servers: new Set([s]) })),
          ...SERVERS.map((s) => ({ locationPrefix: B(`${s}!`) })),
          { locationPrefix: B('b2!d') },
          { locationPrefix: B('b2!default'), servers: new Set(['b2']) },
          { servers: new Set(['b9']) },
        ];
        for (const f of filters) {
          const viaIndex = JSON.stringify(scanned(snap, f));
          const viaFull = JSON.stringify(all.filter((e) => matches(active(e![0], e![2]), f)));
          if (viaIndex !== viaFull) throw new Error(`filter ${JSON.stringify(f)}: ${viaIndex} != ${viaFull}`);
        }
        snap.close();
      } finally {
        await store.close();
      }
      // Exactly one index record per entry, under its server.
      const want = [...model.values()]
        .map((e) => `${bucketOf(e.location).toString('hex')} ${entryKey(e.name, order).toString('hex')}`)
        .sort();
      const got = await indexRecords(dir);
      removeDir(dir);
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`index ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
    }),
    { numRuns: 60 },
  );
  t.pass();
});

test('closeConflict and loadMany keep the by-server index too', async (t) => {
  const dir = folder();
  const store = LmdbDirectoryStore.open(dir, {});
  await store.mutate(B('user.a'), () => ({ kind: 'put', entry: active('user.a', 'b1!p', 'a'), result: null }));
  const conflict = await store.mutate(B('user.a'), (current, txn) => ({
    kind: 'keep',
    result: txn.recordConflict({
      name: B('user.a'),
      current: current!,
      claimed: { state: 'active', location: B('b2!p'), acl: B('c') },
      command: 'ACTIVATE',
      user: 'u',
      peer: 'p',
    }),
  }));
  await store.closeConflict(conflict.id, 'claimant', 'op');
  await store.loadMany([{ name: B('user.b'), entry: active('user.b', 'b2!q', 'b') }]);
  const snap = store.snapshot();
  t.deepEqual(scanned(snap, { servers: new Set(['b1']) }), []);
  t.deepEqual(scanned(snap, { servers: new Set(['b2']) }), [plain(active('user.a', 'b2!p', 'c')), plain(active('user.b', 'b2!q', 'b'))]);
  snap.close();
  await store.close();
  t.is((await indexRecords(dir)).length, 2);
});

// ---- interned and inline locations ----

/** The first byte of each stored value by name (0x80 set: inline location), and how many locations are interned. */
async function rawLayout(dir: string): Promise<{ flags: Map<string, number>; interned: number }> {
  const root = open({ path: `${dir}/directory.mdb`, overlappingSync: false, maxDbs: 12, compression: false });
  const entries = root.openDB<Buffer, Buffer>({ name: 'entries2', keyEncoding: 'binary', encoding: 'binary' });
  const locations = root.openDB<Buffer, number>({ name: 'locations', keyEncoding: 'uint32', encoding: 'binary' });
  const reader = new KeyReader('cyrus');
  const flags = new Map<string, number>();
  for (const { key, value } of entries.getRange({ start: Buffer.of(0) })) flags.set(reader.name(key).toString('latin1'), value[0]);
  const interned = locations.getKeysCount();
  await root.close();
  return { flags, interned };
}

test('locations up to 255 bytes are interned, longer ones stored inline', async (t) => {
  const dir = folder();
  const store = LmdbDirectoryStore.open(dir, {});
  const loc255 = `b1!${'p'.repeat(252)}`;
  const loc256 = `b1!${'p'.repeat(253)}`;
  const items = [
    active('user.a', loc255, 'a'),
    active('user.b', loc256, 'b'),
    reserved('user.c', loc256),
    active('user.d', loc255, 'd'),
    active('user.e', '', 'e'),
  ];
  await store.applyMany(items.map((e) => ({ name: e.name, entry: e })));
  const snap = store.snapshot();
  t.deepEqual(scanned(snap), items.map(plain));
  t.deepEqual(scanned(snap, { locationPrefix: B(loc256) }), [plain(items[1]), plain(items[2])]);
  snap.close();
  await store.close();
  const { flags, interned } = await rawLayout(dir);
  t.is(interned, 1);
  t.deepEqual(Object.fromEntries(flags), { 'user.a': 1, 'user.b': 0x81, 'user.c': 0x82, 'user.d': 1, 'user.e': 0x81 });
});

test('past 100,000 interned locations, new ones are stored inline (and every entry still reads back)', async (t) => {
  const dir = folder();
  const store = LmdbDirectoryStore.open(dir, {});
  const name = (i: number) => `user.n${String(i).padStart(6, '0')}`;
  const loc = (i: number) => `b${i % 7}!p${i}`;
  const total = MAX_INTERNED_LOCATIONS + 3;
  for (let start = 0; start < total; start += 20_000) {
    const items: BatchItem[] = [];
    for (let i = start; i < Math.min(total, start + 20_000); i++) items.push({ name: B(name(i)), entry: active(name(i), loc(i), 'x') });
    await store.applyMany(items);
  }
  // A location already interned stays an id.
  await store.applyMany([{ name: B('user.again'), entry: active('user.again', loc(5), 'y') }]);
  const snap = store.snapshot();
  let n = 0;
  for (const e of snap.scan()) {
    if (e.name.toString('latin1') === 'user.again') t.is(e.location.toString('latin1'), loc(5));
    else if (e.location.toString('latin1') !== loc(Number(e.name.toString('latin1').slice(6))))
      t.fail(`wrong location for ${e.name.toString('latin1')}`);
    n++;
  }
  t.is(n, total + 1);
  t.deepEqual(scanned(snap, { locationPrefix: B(loc(total - 1)) }), [plain(active(name(total - 1), loc(total - 1), 'x'))]);
  snap.close();
  await store.close();
  const { flags, interned } = await rawLayout(dir);
  t.is(interned, MAX_INTERNED_LOCATIONS);
  t.is(flags.get(name(MAX_INTERNED_LOCATIONS - 1)), 1);
  for (let i = MAX_INTERNED_LOCATIONS; i < total; i++) t.is(flags.get(name(i)), 0x81);
  t.is(flags.get('user.again'), 1);
  // After a reopen (cache loaded from the folder) the same.
  const again = LmdbDirectoryStore.open(dir, {});
  t.deepEqual(plain(again.find(B(name(7)))), plain(active(name(7), loc(7), 'x')));
  t.deepEqual(plain(again.find(B(name(total - 1)))), plain(active(name(total - 1), loc(total - 1), 'x')));
  await again.close();
});

// ---- loadMany ----

test('loadMany into an empty directory: same entries and sequence numbers, a log that only resumes from its end', async (t) => {
  const dir = folder();
  const store = LmdbDirectoryStore.open(dir, {});
  const entries = Array.from({ length: 250 }, (_, i) =>
    active(`user.u${String(i).padStart(4, '0')}${['', '.Sent'][i % 2]}`, `b${i % 3}!default`, `u${i}`),
  ).sort(byFormat1('cyrus'));
  const seen: number[] = [];
  store.subscribe((c) => seen.push(c.seq));
  let changed = 0;
  for (let i = 0; i < entries.length; i += 100)
    changed += await store.loadMany(entries.slice(i, i + 100).map((e) => ({ name: e.name, entry: e })));
  t.is(changed, 250);
  t.is(store.lastSeq, 250);
  t.deepEqual(
    seen,
    Array.from({ length: 250 }, (_, i) => i + 1),
  );
  const snap = store.snapshot();
  t.deepEqual(scanned(snap), entries.map(plain));
  t.deepEqual(scanned(snap, { servers: new Set(['b1']) }), entries.filter((e) => e.location.toString().startsWith('b1!')).map(plain));
  // Only the last change is logged: a client behind gets a full dump, one that holds 250 resumes.
  for (const after of [0, 1, 100, 200, 248]) t.is(snap.changesSince(after), null, `after ${after}`);
  t.deepEqual(
    [...snap.changesSince(249)!].map((c) => [c.seq, plain(c.entry)]),
    [[250, plain(entries[249])]],
  );
  t.deepEqual([...snap.changesSince(250)!], []);
  t.is(snap.changeDigest(250), changeDigest(encodeLogRecord(entries[249].name, entries[249])));
  t.is(snap.changeDigest(100), null);
  snap.close();
  // Later writes are logged one by one again.
  await store.mutate(B('user.zz'), () => ({ kind: 'put', entry: active('user.zz', 'b0!default', 'z'), result: null }));
  const s2 = store.snapshot();
  t.deepEqual(
    [...s2.changesSince(250)!].map((c) => c.seq),
    [251],
  );
  s2.close();
  await store.close();
});

test('loadMany handles unsorted input, repeats and deletions, and into a non-empty directory logs every change', async (t) => {
  const store = LmdbDirectoryStore.open(folder(), {});
  const items: BatchItem[] = [
    { name: B('user.b'), entry: active('user.b', 'b1!p', 'b') },
    { name: B('user.a'), entry: active('user.a', 'b1!p', 'a') },
    { name: B('user.b'), entry: reserved('user.b', 'b2!p') },
    { name: B('user.c'), entry: null },
    { name: B('user.a'), entry: null },
  ];
  t.is(await store.loadMany(items), 4);
  t.is(store.lastSeq, 4);
  const snap = store.snapshot();
  t.deepEqual(scanned(snap), [plain(reserved('user.b', 'b2!p'))]);
  t.deepEqual(scanned(snap, { servers: new Set(['b1']) }), []);
  t.is(snap.changesSince(0), null);
  snap.close();
  await store.close();

  const full = LmdbDirectoryStore.open(folder(), {});
  await full.applyMany([{ name: B('user.x'), entry: active('user.x', 'b1!p', 'x') }]);
  t.is(
    await full.loadMany([
      { name: B('user.y'), entry: active('user.y', 'b1!p', 'y') },
      { name: B('user.z'), entry: active('user.z', 'b1!p', 'z') },
    ]),
    2,
  );
  const s2 = full.snapshot();
  t.deepEqual(
    [...s2.changesSince(0)!].map((c) => [c.seq, c.name.toString()]),
    [
      [1, 'user.x'],
      [2, 'user.y'],
      [3, 'user.z'],
    ],
  );
  s2.close();
  await full.close();
});
