/**
 * Storage keys whose plain byte order is the directory order Cyrus clients
 * depend on (spec 4.5). `ctl_mboxlist -m` aborts if LIST order differs from
 * the backend's mailboxes.db, and the Cyrus slave merges assuming it.
 */
import type { DirectoryOrder } from './types.js';

/** Cyrus 3.6 order: the part before the first `!` then 0x1D, `.` mapped to 0x1F. */
export function cyrusSortKey(name: Buffer): Buffer {
  const out = Buffer.from(name);
  const bang = out.indexOf(0x21);
  if (bang >= 0) out[bang] = 0x1d;
  for (let i = bang + 1; i < out.length; i++) if (out[i] === 0x2e) out[i] = 0x1f;
  return out;
}

/**
 * The LMDB key of a name: sort key, a 0x00 separator, then the name itself,
 * so the key stays unique even when two names share a sort key. Names never
 * contain NUL (the wire refuses it), so the separator keeps the order of the
 * sort keys.
 */
export function storageKey(name: Buffer, order: DirectoryOrder): Buffer {
  if (order === 'bytes') return name.length === 0 ? Buffer.of(0) : Buffer.concat([name, Buffer.of(0)]);
  return Buffer.concat([cyrusSortKey(name), Buffer.of(0), name]);
}

export function compareNames(a: Buffer, b: Buffer, order: DirectoryOrder): number {
  return Buffer.compare(storageKey(a, order), storageKey(b, order));
}

/** Longest name that fits an LMDB key (1978 bytes) in either order. */
export const MAX_NAME_BYTES = 980;
