/**
 * The DirectoryStore contract (src/store/types.ts), written once and run
 * against every implementation: the LMDB store in a temp dir
 * (test/store-lmdb.test.ts) and the etcd store on a real 3-member etcd with
 * its LMDB view in a temp dir (test/store-etcd.test.ts).
 *
 * Each test opens a fresh, empty directory from the factory. A backend that
 * can have a second writer on the same directory (another cluster node)
 * gives `peer`; the tests that concern several writers then write through
 * both.
 */
import test from 'ava';
import { storageKey } from '../../src/store/order.js';
import { active, B, plain, reserved } from '../helpers/store-entries.js';
import {
  ConflictRefusal,
  StorageError,
  type Change,
  type ConflictClaim,
  type DirectoryOrder,
  type DirectoryStore,
  type Entry,
} from '../../src/store/types.js';

export interface StoreUnderTest {
  store: DirectoryStore;
  /** A second store on the same directory (another cluster node), when the backend has one. */
  peer?: DirectoryStore;
  /** Closes the stores and removes what the factory made. */
  dispose(): Promise<void>;
}

export type StoreFactory = (order: DirectoryOrder) => Promise<StoreUnderTest>;

function plainChange(c: Change): [string, ReturnType<typeof plain>] {
  return [c.name.toString('latin1'), plain(c.entry)];
}

const put = (entry: Entry) => () => ({ kind: 'put' as const, entry, result: 'put' });
const remove = () => ({ kind: 'delete' as const, result: 'deleted' });

/** Collects what listeners are told until disposed. */
function recorder(store: DirectoryStore): { changes: Change[]; stop(): void } {
  const changes: Change[] = [];
  const stop = store.subscribe((c) => changes.push(c));
  return { changes, stop };
}

/** Waits (bounded) until `cond` holds: a peer's change reaches this store's view asynchronously. */
async function eventually(cond: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

function claimOf(store: DirectoryStore, name: string, location: string): ConflictClaim {
  return {
    name: B(name),
    current: store.find(B(name))!,
    claimed: { state: 'active', location: B(location), acl: B('') },
    command: 'ACTIVATE',
    user: 'backend2',
    peer: '127.0.0.1',
  };
}

/** Registers the conformance tests for one implementation; `label` prefixes every title. */
export function storeConformance(label: string, open: StoreFactory): void {
  const withStore = (order: DirectoryOrder, fn: (s: StoreUnderTest) => Promise<void>) => async () => {
    const s = await open(order);
    try {
      await fn(s);
    } finally {
      await s.dispose();
    }
  };

  test(`${label}: mutate gives decide the current entry; put and delete are stored and found, keep stores nothing`, async (t) => {
    await withStore('cyrus', async ({ store }) => {
      const seen: Array<ReturnType<typeof plain>> = [];
      const name = B('user.a');
      t.is(
        await store.mutate(name, (cur) => {
          seen.push(plain(cur));
          return put(active('user.a', 'b1!p', 'a\tlrs\t'))();
        }),
        'put',
      );
      t.deepEqual(plain(store.find(name)), ['user.a', 'active', 'b1!p', 'a\tlrs\t']);
      t.is(
        await store.mutate(name, (cur) => {
          seen.push(plain(cur));
          return put(reserved('user.a', 'b2!q'))();
        }),
        'put',
      );
      t.deepEqual(plain(store.find(name)), ['user.a', 'reserved', 'b2!q', '']);
      const before = store.lastSeq;
      t.is(
        await store.mutate(name, (cur) => {
          seen.push(plain(cur));
          return { kind: 'keep', result: 'kept' };
        }),
        'kept',
      );
      t.deepEqual(plain(store.find(name)), ['user.a', 'reserved', 'b2!q', '']);
      t.is(store.lastSeq, before, 'keep writes no change');
      t.is(
        await store.mutate(name, (cur) => {
          seen.push(plain(cur));
          return remove();
        }),
        'deleted',
      );
      t.is(store.find(name), undefined);
      t.is(
        await store.mutate(name, (cur) => {
          seen.push(plain(cur));
          return remove();
        }),
        'deleted',
      );
      t.deepEqual(seen, [
        null,
        ['user.a', 'active', 'b1!p', 'a\tlrs\t'],
        ['user.a', 'reserved', 'b2!q', ''],
        ['user.a', 'reserved', 'b2!q', ''],
        null,
      ]);
      t.is(store.find(B('user.A')), undefined, 'names are compared exactly');
    })();
  });

  test(`${label}: names, locations and ACLs are stored as bytes (8-bit, spaces, no case folding)`, async (t) => {
    await withStore('cyrus', async ({ store }) => {
      const odd = active('user.\xe9l\xe8ve. x\x7f', 'Backend 1!\xffp', '\xe9\tlr\t-bob\tw\t');
      await store.mutate(odd.name, put(odd));
      t.deepEqual(plain(store.find(odd.name)), plain(odd));
      t.is(store.find(B('user.\xc9l\xe8ve. x\x7f')), undefined);
    })();
  });

  test(`${label}: lastSeq increases with every change, listeners are told each change once in seq order, and unsubscribing stops them`, async (t) => {
    await withStore('cyrus', async ({ store }) => {
      const rec = recorder(store);
      const seqs: number[] = [store.lastSeq];
      for (let i = 0; i < 5; i++) {
        await store.mutate(B(`user.s${i}`), put(active(`user.s${i}`, 'b1!p')));
        seqs.push(store.lastSeq);
      }
      await store.mutate(B('user.s1'), remove);
      seqs.push(store.lastSeq);
      for (let i = 1; i < seqs.length; i++) t.true(seqs[i] > seqs[i - 1], `lastSeq ${seqs[i]} after ${seqs[i - 1]}`);
      // Concurrent writes: still one told change each, in increasing seq order.
      await Promise.all([5, 6, 7, 8, 9].map((i) => store.mutate(B(`user.s${i}`), put(active(`user.s${i}`, 'b1!p')))));
      t.true(await eventually(() => rec.changes.length === 11));
      const told = rec.changes.map((c) => c.seq);
      t.deepEqual(
        told,
        [...told].sort((a, b) => a - b),
      );
      t.is(new Set(told).size, told.length, 'no seq told twice');
      t.deepEqual(told.slice(0, 6), seqs.slice(1));
      t.is(told[told.length - 1], store.lastSeq);
      t.deepEqual(rec.changes.slice(0, 6).map(plainChange), [
        ...[0, 1, 2, 3, 4].map((i) => [`user.s${i}`, ['user.s' + i, 'active', 'b1!p', '']]),
        ['user.s1', null],
      ]);
      t.deepEqual(plain(rec.changes[5].previous), ['user.s1', 'active', 'b1!p', ''], 'a change carries the entry it replaced');
      t.is(rec.changes[0].previous, null);
      rec.stop();
      await store.mutate(B('user.after'), put(active('user.after', 'b1!p')));
      await new Promise((r) => setTimeout(r, 50));
      t.is(rec.changes.length, 11, 'an unsubscribed listener hears nothing more');
    })();
  });

  test(`${label}: concurrent read-modify-write of one name through every writer loses no update`, async (t) => {
    await withStore('cyrus', async ({ store, peer }) => {
      const name = B('user.counter');
      const bump = (s: DirectoryStore) =>
        s.mutate(name, (cur) => {
          const n = cur ? Number(cur.acl.toString('latin1')) : 0;
          return { kind: 'put', entry: active('user.counter', 'b1!p', String(n + 1)), result: n + 1 };
        });
      const writers = peer ? [store, peer] : [store];
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => bump(writers[i % writers.length])));
      t.deepEqual(
        [...results].sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i + 1),
        'each decision saw the one before',
      );
      await store.sync?.();
      t.is(store.find(name)?.acl.toString('latin1'), '20');
    })();
  });

  test(`${label}: a conflict is recorded once per claim with its count; closeConflict keeps the claimant, the current entry or nothing, once`, async (t) => {
    await withStore('cyrus', async ({ store }) => {
      for (const n of ['user.k1', 'user.k2', 'user.k3']) await store.mutate(B(n), put(active(n, 'b1!p', 'x\tlr\t')));
      const claim = async (n: string, location: string) =>
        store.mutate(B(n), (_cur, txn) => {
          const r = txn.recordConflict(claimOf(store, n, location));
          return { kind: 'keep', result: r.id };
        });
      const seqBefore = store.lastSeq;
      const first = await claim('user.k1', 'b2!p');
      t.is(await claim('user.k1', 'b2!p'), first, 'the same claim again is the same record');
      const second = await claim('user.k2', 'b2!p');
      const third = await claim('user.k3', 'b2!p');
      const other = await claim('user.k1', 'b3!p');
      t.is(new Set([first, second, third, other]).size, 4);
      t.is(store.lastSeq, seqBefore, 'recording a conflict is not a directory change');
      t.deepEqual(
        store
          .listConflicts('open')
          .map((c) => [c.name.toString('latin1'), c.claimed.location.toString('latin1'), c.count])
          .sort(),
        [
          ['user.k1', 'b2!p', 2],
          ['user.k1', 'b3!p', 1],
          ['user.k2', 'b2!p', 1],
          ['user.k3', 'b2!p', 1],
        ],
      );
      t.is(store.openConflictCount(), 4, 'the open count, kept without reading the records');
      const rec1 = store.getConflict(first)!;
      t.is(rec1.status, 'open');
      t.is(rec1.command, 'ACTIVATE');
      t.deepEqual(plain(rec1.current), ['user.k1', 'active', 'b1!p', 'x\tlr\t']);

      const rec = recorder(store);
      const closed = await store.closeConflict(first, 'claimant', 'admin');
      t.is(closed.status, 'resolved');
      t.deepEqual(closed.resolution && [closed.resolution.keep, closed.resolution.by], ['claimant', 'admin']);
      t.deepEqual(plain(store.find(B('user.k1'))), ['user.k1', 'active', 'b2!p', '']);
      t.deepEqual(rec.changes.map(plainChange), [['user.k1', ['user.k1', 'active', 'b2!p', '']]], "listeners see the claimant's entry");
      const kept = await store.closeConflict(second, 'current', 'admin');
      t.is(kept.status, 'resolved');
      t.deepEqual(plain(store.find(B('user.k2'))), ['user.k2', 'active', 'b1!p', 'x\tlr\t']);
      const dismissed = await store.closeConflict(third, 'none', 'admin');
      t.is(dismissed.status, 'dismissed');
      t.deepEqual(plain(store.find(B('user.k3'))), ['user.k3', 'active', 'b1!p', 'x\tlr\t']);
      t.is(rec.changes.length, 1, 'keeping the current entry or dismissing changes nothing');
      rec.stop();

      await t.throwsAsync(store.closeConflict(first, 'current', 'admin'), { instanceOf: ConflictRefusal });
      await t.throwsAsync(store.closeConflict(9_999, 'none', 'admin'), { instanceOf: ConflictRefusal });
      t.is(store.getConflict(first)!.status, 'resolved', 'a refused close changes nothing');
      t.deepEqual(
        store.listConflicts('open').map((c) => c.id),
        [other],
      );
      t.is(store.listConflicts().length, 4);
      t.is(store.openConflictCount(), 1, 'a refused close moves no count');
      // A claim after its record was dismissed opens a new record (a decided one is counted on its decision: below).
      const again = await claim('user.k3', 'b2!p');
      t.false([first, second, third, other].includes(again));
      t.is(store.getConflict(again)!.count, 1);
      t.is(store.openConflictCount(), 2);
    })();
  });

  test(`${label}: a decided conflict stays decided: the losing location's claim is counted on the decision (either keep), not recorded anew, while the directory points where the decision left it`, async (t) => {
    await withStore('cyrus', async ({ store, peer }) => {
      for (const n of ['user.d1', 'user.d2']) await store.mutate(B(n), put(active(n, 'b1!p', 'x\tlr\t')));
      const claimOn = (s: DirectoryStore, n: string, location: string) =>
        s.mutate(B(n), (_cur, txn) => {
          const r = txn.recordConflict(claimOf(s, n, location));
          return { kind: 'keep', result: r };
        });
      const keptCurrent = (await claimOn(store, 'user.d1', 'b2!p')).id;
      const keptClaimant = (await claimOn(store, 'user.d2', 'b2!p')).id;
      await store.closeConflict(keptCurrent, 'current', 'admin');
      await store.closeConflict(keptClaimant, 'claimant', 'admin');
      const seqBefore = store.lastSeq;

      const r1 = await claimOn(store, 'user.d1', 'b2!p');
      t.like(r1, { id: keptCurrent, status: 'resolved', count: 1, refused: 1 });
      t.truthy(r1.lastRefused);
      // keep claimant: the former holder (b1!p) lost
      const r2 = await claimOn(store, 'user.d2', 'b1!p');
      t.like(r2, { id: keptClaimant, status: 'resolved', refused: 1 });
      // a second writer (another node) sees the decision and the count
      const other = peer ?? store;
      await other.sync?.();
      t.true(await eventually(() => other.getConflict(keptCurrent)?.refused === 1));
      t.like(await claimOn(other, 'user.d1', 'b2!p'), { id: keptCurrent, refused: 2 });
      await store.sync?.();
      t.true(await eventually(() => store.getConflict(keptCurrent)?.refused === 2));
      t.is(store.getConflict(keptCurrent)!.status, 'resolved');
      t.deepEqual(store.listConflicts('open'), [], 'nothing recorded anew');
      t.is(store.lastSeq, seqBefore, 'a refused claim is not a directory change');

      // another location is another claim; once the mailbox moved on, the decision no longer applies
      const elsewhere = await claimOn(store, 'user.d1', 'b3!p');
      t.like(elsewhere, { status: 'open', count: 1 });
      await store.mutate(B('user.d1'), put(active('user.d1', 'b4!p', 'x\tlr\t')));
      const moved = await claimOn(store, 'user.d1', 'b2!p');
      t.like(moved, { status: 'open', count: 1 });
      t.not(moved.id, keptCurrent);
      t.is(store.getConflict(keptCurrent)!.refused, 2);
    })();
  });

  test(`${label}: applyMany stores puts and deletes together with its meta, skips unchanged items and counts the changes`, async (t) => {
    await withStore('cyrus', async ({ store }) => {
      t.is(
        await store.applyMany(
          [active('user.m1', 'b1!p'), active('user.m2', 'b1!p'), reserved('user.m3', 'b2!p')].map((e) => ({ name: e.name, entry: e })),
        ),
        3,
      );
      const rec = recorder(store);
      const n = await store.applyMany(
        [
          { name: B('user.m1'), entry: active('user.m1', 'b1!p') },
          { name: B('user.m2'), entry: null },
          { name: B('user.m3'), entry: active('user.m3', 'b2!p', 'a\tlrs\t') },
          { name: B('user.m4'), entry: active('user.m4', 'b3!p') },
          { name: B('user.absent'), entry: null },
        ],
        { 'push:b1': 42, marker: 'x' },
      );
      t.is(n, 3, 'the unchanged entry and the delete of a missing name do not count');
      t.is(store.getMeta('push:b1'), 42);
      t.is(store.getMeta('marker'), 'x');
      t.is(store.getMeta('never-set'), undefined);
      t.is(store.find(B('user.m2')), undefined);
      t.deepEqual(plain(store.find(B('user.m3'))), ['user.m3', 'active', 'b2!p', 'a\tlrs\t']);
      t.true(await eventually(() => rec.changes.length === 3));
      t.deepEqual(rec.changes.map((c) => c.name.toString('latin1')).sort(), ['user.m2', 'user.m3', 'user.m4']);
      rec.stop();
      // Meta alone.
      t.is(await store.applyMany([], { marker: 'y' }), 0);
      t.is(store.getMeta('marker'), 'y');
      // A batch with one item or meta value the store cannot hold is refused whole: nothing of it is stored.
      const before = store.lastSeq;
      await t.throwsAsync(
        store.applyMany([
          { name: B('user.m5'), entry: active('user.m5', 'b1!p') },
          { name: B('user.\0nul'), entry: active('user.\0nul', 'b1!p') },
        ]),
        { instanceOf: StorageError },
      );
      await t.throwsAsync(store.applyMany([{ name: B('user.m6'), entry: active('user.m6', 'b1!p') }], { marker: { nested: true } }), {
        instanceOf: StorageError,
      });
      t.is(store.find(B('user.m5')), undefined);
      t.is(store.find(B('user.m6')), undefined);
      t.is(store.getMeta('marker'), 'y');
      t.is(store.lastSeq, before);
    })();
  });

  test(`${label}: a snapshot holds the directory at its seq, in directory order, while later changes go on; changesSince gives the changes after a seq`, async (t) => {
    for (const order of ['cyrus', 'bytes'] as const) {
      await withStore(order, async ({ store }) => {
        const names = ['user.a', 'user.a.b', 'user.a-b', 'user.ab', 'user.a b', 'user.Z', 'user.\xe9'];
        for (const n of names) await store.mutate(B(n), put(active(n, 'b1!p')));
        const mark = store.lastSeq;
        await store.mutate(B('user.a.b'), put(reserved('user.a.b', 'b2!p')));
        await store.mutate(B('user.ab'), remove);
        let afterLater = 0;
        const snap = store.snapshot();
        try {
          t.is(snap.seq, store.lastSeq);
          await store.mutate(B('user.later'), put(active('user.later', 'b1!p')));
          afterLater = store.lastSeq;
          await store.mutate(B('user.a'), remove);
          t.true(store.lastSeq > snap.seq);
          const expected = names
            .filter((n) => n !== 'user.ab')
            .map(B)
            .sort((a, b) => Buffer.compare(storageKey(a, order), storageKey(b, order)));
          t.deepEqual(
            [...snap.entries()].map((e) => e.name.toString('latin1')),
            expected.map((b) => b.toString('latin1')),
            `${order} order`,
          );
          const scanned: string[] = [];
          for (const e of snap.scan()) scanned.push(e.name.toString('latin1')); // transient entries: copy at once
          t.deepEqual(
            scanned,
            expected.map((b) => b.toString('latin1')),
          );
          t.deepEqual(plain(snap.find(B('user.a'))), ['user.a', 'active', 'b1!p', ''], 'the snapshot does not see later changes');
          t.is(snap.find(B('user.later')), undefined);
          const onB2: string[] = [];
          for (const e of snap.scan({ servers: new Set(['b2']) })) onB2.push(e.name.toString('latin1'));
          t.deepEqual(onB2, ['user.a.b']);
          const since = snap.changesSince(mark);
          t.not(since, null);
          t.deepEqual([...since!].map(plainChange), [
            ['user.a.b', ['user.a.b', 'reserved', 'b2!p', '']],
            ['user.ab', null],
          ]);
          t.deepEqual([...snap.changesSince(snap.seq)!], []);
        } finally {
          snap.close();
        }
        const now = store.snapshot();
        try {
          t.is(now.seq, store.lastSeq);
          t.deepEqual([...now.changesSince(afterLater)!].map(plainChange), [['user.a', null]]);
        } finally {
          now.close();
        }
      })();
    }
  });

  test(`${label}: sync() resolves only once every change committed before it is here and told`, async (t) => {
    await withStore('cyrus', async ({ store, peer }) => {
      const writer = peer ?? store;
      const rec = recorder(store);
      for (let i = 0; i < 20; i++) {
        await writer.mutate(B(`user.y${i}`), put(active(`user.y${i}`, 'b1!p')));
        await store.sync?.();
        t.deepEqual(plain(store.find(B(`user.y${i}`))), [`user.y${i}`, 'active', 'b1!p', ''], `after write ${i}`);
        t.is(rec.changes.length, i + 1);
      }
      rec.stop();
    })();
  });

  test(`${label}: releaseMapping unmaps the local file only while no snapshot is open; reads, writes, snapshots and listeners carry on`, async (t) => {
    await withStore('cyrus', async ({ store }) => {
      const release = store.releaseMapping?.bind(store);
      if (!release) return void t.fail('a store with a local file can release its mapping');
      for (let i = 0; i < 3; i++) await store.mutate(B(`user.m${i}`), put(active(`user.m${i}`, 'b1!p')));
      await store.sync?.();
      const rec = recorder(store);
      const open = store.snapshot();
      t.false(await release(), 'refused while a snapshot is open');
      open.close();
      t.true(await release());
      t.deepEqual(plain(store.find(B('user.m1'))), ['user.m1', 'active', 'b1!p', '']);
      await store.mutate(B('user.after'), put(active('user.after', 'b2!p')));
      await store.sync?.();
      t.true(await eventually(() => rec.changes.length === 1), 'a listener from before is told');
      t.deepEqual(rec.changes.map(plainChange), [['user.after', ['user.after', 'active', 'b2!p', '']]]);
      t.true(await release(), 'and again');
      const snapshot = store.snapshot();
      try {
        t.deepEqual(
          [...snapshot.entries()].map((e) => e.name.toString('latin1')),
          ['user.after', 'user.m0', 'user.m1', 'user.m2'],
        );
      } finally {
        snapshot.close();
      }
      rec.stop();
    })();
  });

  test(`${label}: a closed store refuses writes with a StorageError`, async (t) => {
    const s = await open('cyrus');
    await s.store.close();
    try {
      await t.throwsAsync(s.store.mutate(B('user.closed'), put(active('user.closed', 'b1!p'))), { instanceOf: StorageError });
    } finally {
      await s.dispose();
    }
  });
}
