/**
 * What the store can hold, checked before a write touches LMDB: a write that
 * would fail part-way (a key over LMDB's size limit, a value the encoder
 * refuses) is refused whole, with nothing written.
 *
 * Names: at most MAX_NAME_BYTES (a longer one does not fit an LMDB key, nor
 * the by-server index's values, which are entry keys) and no NUL byte (the
 * storage keys use 0x00 as separator: order.ts). A client's names are
 * checked on the wire and in the session; a slave's names come from its
 * master and meet only these checks.
 */
import { MAX_NAME_BYTES } from './order.js';
import { StorageError, type BatchItem, type Entry } from './types.js';

/** A write refused before anything of it was written: a name or entry the directory cannot hold. */
export class InvalidWrite extends StorageError {}

/** Why `name` cannot be a key of the directory; null when it can. */
export function nameProblem(name: Buffer): string | null {
  if (!Buffer.isBuffer(name)) return 'the name is not bytes';
  if (name.length > MAX_NAME_BYTES) return `the name is longer than ${MAX_NAME_BYTES} bytes (${name.length})`;
  if (name.indexOf(0) >= 0) return 'the name contains a NUL byte';
  return null;
}

/** Why `entry` cannot be stored under `name` (null: it can, or it is a removal). */
export function entryProblem(name: Buffer, entry: Entry | null): string | null {
  const problem = nameProblem(name);
  if (problem || !entry) return problem;
  if (!Buffer.isBuffer(entry.name) || !entry.name.equals(name)) return 'the entry carries another name';
  if (entry.state !== 'active' && entry.state !== 'reserved') return `unknown entry state ${String(entry.state)}`;
  if (!Buffer.isBuffer(entry.location) || !Buffer.isBuffer(entry.acl)) return 'the location or ACL is not bytes';
  return null;
}

/** Shown in errors: a name cut to a readable length. */
export function shownName(name: Buffer): string {
  const text = Buffer.isBuffer(name) ? name.toString('latin1') : String(name);
  return text.length > 64 ? `${text.slice(0, 64)}... (${text.length} bytes)` : text;
}

/** Throws InvalidWrite when `entry` cannot be stored under `name`. */
export function checkEntry(name: Buffer, entry: Entry | null): void {
  const problem = entryProblem(name, entry);
  if (problem) throw new InvalidWrite(`cannot store "${shownName(name)}": ${problem}`);
}

/** Meta values the store keeps: plain scalars (what the slave's bookkeeping needs). */
function isMetaValue(v: unknown): boolean {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

/** Throws InvalidWrite, before any write, when one item of a batch or one meta value cannot be stored. */
export function checkBatch(items: readonly BatchItem[], meta: Record<string, unknown> = {}): void {
  for (let i = 0; i < items.length; i++) {
    const { name, entry } = items[i];
    const problem = entryProblem(name, entry);
    if (problem)
      throw new InvalidWrite(`item ${i + 1} of ${items.length}, "${shownName(name)}": ${problem}; nothing of the batch was stored`);
  }
  for (const [key, value] of Object.entries(meta)) {
    if (!isMetaValue(value))
      throw new InvalidWrite(`meta key ${key}: only strings, finite numbers, booleans and null are kept; nothing of the batch was stored`);
  }
}
