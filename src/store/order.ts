/**
 * Storage keys whose plain byte order is the directory order Cyrus clients
 * depend on (spec 4.5). `ctl_mboxlist -m` aborts if LIST order differs from
 * the backend's mailboxes.db, and the Cyrus slave merges assuming it.
 */
import { Scratch } from './scratch.js';
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
 * The format-1 LMDB key of a name: sort key, a 0x00 separator, then the name
 * itself, so the key stays unique even when two names share a sort key. Names
 * never contain NUL (the wire refuses it), so the separator keeps the order of
 * the sort keys. This order is the directory order; format-2 keys
 * (entryKey) sort exactly like these.
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

const NUL = Buffer.of(0);

/** A name without 0x1D and 0x1F bytes: its Cyrus sort key can be turned back into it. */
function isClean(name: Buffer): boolean {
  return name.indexOf(0x1d) < 0 && name.indexOf(0x1f) < 0;
}

/**
 * The format-2 LMDB key of a name, which does not repeat the name.
 *
 * Cyrus order, with S = cyrusSortKey(name):
 * - a clean name (no 0x1D, no 0x1F byte): `S 0x00 0xFF…`, with one 0xFF more
 *   than S has leading 0xFF bytes (almost always a single 0xFF). S alone gives
 *   the name back: every 0x1D in it is the `!` (a clean name has at most one
 *   0x1D in S) and every 0x1F a `.` (a clean S has none before its 0x1D);
 * - any other name: `S 0x00 name`, as in format 1.
 *
 * Why this is exactly the format-1 order (S 0x00 name): every key is
 * `S 0x00 tail`, and S never contains 0x00, so names with different sort keys
 * compare as in format 1 (including when one S is a prefix of the other: the
 * shorter one's 0x00 sorts first, in both formats). Names with the same S
 * compare by tail. Two of them differ first where one has a `!`/`.` that S
 * maps and the other the literal 0x1D/0x1F, which is the smaller byte, so in
 * format 1 the clean name (there is at most one per S) sorts after every
 * other name with its S. Its tail of 0xFF bytes does too: such a name equals
 * S up to the first byte of S that is not 0xFF, and there it has a byte below
 * 0xFF. Tails of other names are those names, which contain 0x1D or 0x1F, so
 * they are never all 0xFF: keys are unique and tell which kind they are.
 * (Just S for clean names would put the clean name first among its sort key:
 * "x!y" would sort before "x\x1Dy", which format 1 puts first.)
 *
 * Bytes order: the name itself (names have no NUL, so this is the order of
 * format 1's `name 0x00`), and 0x00 for the empty name (LMDB has no empty keys).
 */
export function entryKey(name: Buffer, order: DirectoryOrder): Buffer {
  if (order === 'bytes') return name.length === 0 ? Buffer.of(0) : Buffer.from(name);
  const s = cyrusSortKey(name);
  if (!isClean(name)) return Buffer.concat([s, NUL, name]);
  let k = 0;
  while (k < s.length && s[k] === 0xff) k++;
  const out = Buffer.allocUnsafe(s.length + k + 2);
  s.copy(out, 0);
  out[s.length] = 0;
  out.fill(0xff, s.length + 1);
  return out;
}

/**
 * Reads names back from format-2 keys (entryKey) into a scratch buffer, in
 * one pass. The name a call returns is valid until the next call; the key
 * may be a transient view (it is not referred to afterwards).
 */
export class KeyReader {
  private readonly scratch = new Scratch(256);

  constructor(private readonly order: DirectoryOrder) {}

  name(key: Uint8Array): Buffer {
    const n = key.length;
    if (this.order === 'bytes') return n === 1 && key[0] === 0 ? this.scratch.view(0) : this.scratch.copy(key, 0, n);
    const out = this.scratch.room(n);
    let i = 0;
    // Map the sort key back until the separator: right for a clean name.
    for (; i < n; i++) {
      const c = key[i];
      if (c === 0) break;
      out[i] = c === 0x1d ? 0x21 : c === 0x1f ? 0x2e : c;
    }
    const tail = i + 1;
    for (let j = tail; j < n; j++) {
      if (key[j] !== 0xff) {
        // Not a clean name: the name follows the separator.
        for (let k = tail; k < n; k++) out[k - tail] = key[k]!;
        return this.scratch.view(n - tail);
      }
    }
    return this.scratch.view(i);
  }
}
