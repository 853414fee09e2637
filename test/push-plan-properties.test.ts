/**
 * planPush merges two sorted lists when it can; the plan must be the one the
 * map-based planning (planByMaps, the way it was always made) gives, for lists
 * in byte order, in Cyrus order, in no order, and with repeated names.
 */
import test from 'ava';
import fc from 'fast-check';
import { planByMaps, planPush, type LocalMailbox, type PushPlan } from '../src/push/push-plan.js';
import { PackedMailboxes } from '../src/push/packed-mailboxes.js';
import { compareNames } from '../src/store/order.js';
import type { Entry } from '../src/store/types.js';

const RUNS = 500;
fc.configureGlobal({ includeErrorInReport: true });

const name = fc
  .array(fc.constantFrom(0x61, 0x62, 0x2e, 0x21, 0x2d, 0x20, 0x1d, 0x1f, 0xe9, 0x22, 0x5c), { maxLength: 5 })
  .map((a) => Buffer.from(a));
const small = fc.constantFrom('backend1!default', 'backend1!p2', 'b2!default').map((s) => Buffer.from(s));
const acl = fc.constantFrom('', 'a\tlrs\t', 'b\tlr\t').map((s) => Buffer.from(s));

const localMailbox: fc.Arbitrary<LocalMailbox> = fc.record({ name, location: small, acl });
const entry: fc.Arbitrary<Entry> = fc.record({
  name,
  state: fc.constantFrom<Entry['state']>('active', 'reserved'),
  location: small,
  acl,
});

type Arrangement = 'bytes' | 'cyrus' | 'unsorted';
/** Sorted (duplicates dropped) by bytes or Cyrus order, or left as generated. */
function arrange<T extends { name: Buffer }>(items: T[], how: Arrangement): T[] {
  if (how === 'unsorted') return items;
  const order = how === 'bytes' ? (a: Buffer, b: Buffer) => Buffer.compare(a, b) : (a: Buffer, b: Buffer) => compareNames(a, b, 'cyrus');
  const sorted = [...items].sort((a, b) => order(a.name, b.name));
  return sorted.filter((x, i) => i === 0 || order(sorted[i - 1].name, x.name) !== 0);
}

function shown(plan: PushPlan) {
  return {
    removeFromMaster: plan.removeFromMaster.map((b) => b.toString('hex')),
    reactivate: plan.reactivate.map((m) => m.name.toString('hex')),
    lookUp: plan.lookUp.map((m) => m.name.toString('hex')),
    inSync: plan.inSync,
  };
}

const arrangement = fc.constantFrom<Arrangement>('bytes', 'cyrus', 'unsorted');

test('planPush gives the map-based plan for lists in byte order, Cyrus order, any order and with repeats', (t) => {
  fc.assert(
    fc.property(
      fc.array(localMailbox, { maxLength: 20 }),
      fc.array(entry, { maxLength: 20 }),
      arrangement,
      arrangement,
      fc.boolean(),
      (local, listed, localOrder, listedOrder, overlap) => {
        // Overlap: the master lists mostly the same names (the in-sync case the merge is for).
        const master = overlap
          ? [...listed, ...local.map((m) => ({ name: m.name, state: 'active' as const, location: m.location, acl: m.acl }))]
          : listed;
        const a = arrange(local, localOrder);
        const b = arrange(master, listedOrder);
        t.deepEqual(shown(planPush(PackedMailboxes.of(a), PackedMailboxes.of(b))), shown(planByMaps(a, b)));
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

test('packed mailboxes give back every entry as added, past the first buffer and table sizes', (t) => {
  // Location and ACL are compared as one run of bytes: the same run split elsewhere is not the same entry.
  const split = PackedMailboxes.of([
    { name: Buffer.from('a'), location: Buffer.from('b1!p'), acl: Buffer.from('x\tlr\t') },
    { name: Buffer.from('b'), location: Buffer.from('b1!px'), acl: Buffer.from('\tlr\t') },
  ]);
  t.false(split.sameLocationAndAcl(0, split, 1));
  t.true(split.sameLocationAndAcl(0, split, 0));
  fc.assert(
    fc.property(fc.array(entry, { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 30_000 }), (entries, wide) => {
      // Wide entries (a long ACL) fill more than one 1 MiB buffer, some one of their own; many entries outgrow the first table of 1,024.
      const many = Array.from({ length: 2100 }, (_, i) => {
        const e = entries[i % entries.length];
        return i % 500 === 0 ? { ...e, acl: Buffer.alloc(wide * 40, 0x61) } : e;
      });
      const packed = PackedMailboxes.of(many);
      t.is(packed.count, many.length);
      const text = (e: Entry) => `${e.state} ${e.name.toString('hex')} ${e.location.toString('hex')} ${e.acl.toString('hex')}`;
      t.is(packed.entries().map(text).join('\n'), many.map(text).join('\n'));
      for (let i = 1; i < many.length; i += 211) {
        t.is(Math.sign(packed.compareName(i - 1, packed, i)), Math.sign(Buffer.compare(many[i - 1].name, many[i].name)));
        const same = many[i - 1].location.equals(many[i].location) && many[i - 1].acl.equals(many[i].acl);
        t.is(packed.sameLocationAndAcl(i - 1, packed, i), same);
      }
    }),
    { numRuns: 30 },
  );
});
