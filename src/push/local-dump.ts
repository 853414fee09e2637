/** A backend's own active mailboxes from its `ctl_mboxlist -d` dump, packed for the push's plan. */
import { readDump } from '../dump/dump-reader.js';
import { PackedMailboxes } from './packed-mailboxes.js';
import { PlainRecordReader } from './plain-record.js';

/**
 * Reads the dump from `input`. `plainLines`: Cyrus's ordinary lines are read
 * straight from their bytes (plain-record.ts), the rest as text; without it
 * every line is read as text (the tests compare the two).
 */
export async function readLocal(input: AsyncIterable<Buffer | string>, backend: string, plainLines = true): Promise<PackedMailboxes> {
  const out = new PackedMailboxes();
  const serverPrefix = `${backend}!`;
  // A backend's mailboxes share a handful of partitions: one location buffer each (only ever read).
  const locations = new Map<string, Buffer>();
  const locationOf = (partition: string) => {
    let location = locations.get(partition);
    if (!location) locations.set(partition, (location = Buffer.from(`${backend}!${partition}`)));
    return location;
  };
  const plain = new PlainRecordReader(backend, out);
  await readDump(
    input,
    (r) => {
      if (!r.entry || r.entry.state !== 'active') return;
      // A backend's own mailboxes carry no server; entries of other servers are not ours to push.
      if (r.hasServer && !r.entry.location.toString('latin1').startsWith(serverPrefix)) return;
      const location = r.hasServer ? r.entry.location : locationOf(r.partition ?? 'default');
      out.add(r.name, location, r.entry.acl, 'active');
    },
    plainLines ? (bytes, start, end) => plain.take(bytes, start, end) : undefined,
  );
  return out;
}
