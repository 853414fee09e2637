/**
 * The difference between the local copy and a complete dump from the master,
 * by name (never by merging sorted lists: spec 6.2 shows how that loses
 * entries when the two sides sort differently).
 */
import { sameEntry } from '../store/codec.js';
import type { BatchItem, Entry } from '../store/types.js';

/** Items that turn `local` into `remote`: removals of names only local, puts of new or changed entries. */
export function reconcile(local: Iterable<Entry>, remote: ReadonlyMap<string, Entry>): BatchItem[] {
  const items: BatchItem[] = [];
  const seen = new Set<string>();
  for (const entry of local) {
    const key = entry.name.toString('latin1');
    seen.add(key);
    const theirs = remote.get(key);
    if (!theirs) items.push({ name: entry.name, entry: null });
    else if (!sameEntry(entry, theirs)) items.push({ name: theirs.name, entry: theirs });
  }
  for (const [key, entry] of remote) if (!seen.has(key)) items.push({ name: entry.name, entry });
  return items;
}

/** Applies items to a map copy (for tests and for reasoning): the result of reconcile applied to local. */
export function applyItems(local: ReadonlyMap<string, Entry>, items: readonly BatchItem[]): Map<string, Entry> {
  const out = new Map(local);
  for (const { name, entry } of items) {
    const key = name.toString('latin1');
    if (entry) out.set(key, entry);
    else out.delete(key);
  }
  return out;
}

/** A MUPDATE data line (MAILBOX/RESERVE) as an entry; null for anything else. */
export function entryFromData(word: string, args: Buffer[]): Entry | null {
  if (word === 'MAILBOX' && args.length >= 3) {
    return { name: args[0], state: 'active', location: args[1], acl: args[2] };
  }
  if (word === 'RESERVE' && args.length >= 2) {
    return { name: args[0], state: 'reserved', location: args[1], acl: Buffer.alloc(0) };
  }
  return null;
}
