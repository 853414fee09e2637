import test from 'ava';
import fc from 'fast-check';
import { applyItems, reconcile } from '../src/resync/reconcile.js';
import type { Entry } from '../src/store/types.js';

const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max }).map((a) => Buffer.from(a));
const entry: fc.Arbitrary<Entry> = fc
  .record({
    // A small name alphabet so local and remote share names often.
    name: fc.constantFrom('user.a', 'user.b', 'user.a.Sent', 'user.a-b', 'shared', 'x y', 'user.\xe4').map((n) => Buffer.from(n, 'latin1')),
    state: fc.constantFrom('active' as const, 'reserved' as const),
    location: fc.constantFrom('b1!default', 'b2!default', 'b1!ssd', 'b3').map((l) => Buffer.from(l)),
    acl: bytes(12),
  })
  .map((e) => (e.state === 'reserved' ? { ...e, acl: Buffer.alloc(0) } : e));

const dir = fc.array(entry, { maxLength: 12 }).map((es) => new Map(es.map((e) => [e.name.toString('latin1'), e])));

function canonical(m: ReadonlyMap<string, Entry>): string[] {
  return [...m.values()].map((e) => `${e.name.toString('hex')} ${e.state} ${e.location.toString('hex')} ${e.acl.toString('hex')}`).sort();
}

test('reconcile: applying the diff to the local copy yields the master copy', (t) => {
  fc.assert(
    fc.property(dir, dir, (local, remote) => {
      const items = reconcile(local.values(), remote);
      return JSON.stringify(canonical(applyItems(local, items))) === JSON.stringify(canonical(remote));
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('reconcile: an identical copy needs no change, and every item changes something', (t) => {
  fc.assert(
    fc.property(dir, dir, (local, remote) => {
      if (reconcile(remote.values(), remote).length !== 0) return false;
      const items = reconcile(local.values(), remote);
      // No item is a no-op: removals name local-only entries, puts differ from the local entry.
      return items.every((it) => {
        const mine = local.get(it.name.toString('latin1'));
        if (!it.entry) return !!mine && !remote.has(it.name.toString('latin1'));
        return !mine || canonical(new Map([['k', mine]]))[0] !== canonical(new Map([['k', it.entry]]))[0];
      });
    }),
    { numRuns: 500 },
  );
  t.pass();
});
