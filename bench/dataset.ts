/**
 * The benchmark's directory: a deterministic set of mailboxes both servers
 * preload, so every LIST, dump and FIND answer can be checked exactly.
 *
 * Entry k (0 <= k < N) belongs to user u = floor(k / 5): `user.uNNNNNNN` and
 * its four folders, on `backend<(u % 10) + 1>!default`, with the owner's ACL.
 * The names are generated in Cyrus 3.6 directory order (spec 4.5: a
 * mailbox's children sort right after it, `.` counting as 0x1F), so entry k
 * is also the k-th line of a full LIST or UPDATE dump.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

export const FOLDERS = ['', '.Archive', '.Drafts', '.Sent', '.Trash'] as const;
export const PER_USER = FOLDERS.length;
export const BACKENDS = 10;
export const RIGHTS = 'lrswipkxtecdan';

export interface BenchEntry {
  name: string;
  location: string;
  acl: string;
}

export function userId(u: number): string {
  return `u${String(u).padStart(7, '0')}`;
}

export function backendOf(u: number): string {
  return `backend${(u % BACKENDS) + 1}`;
}

export function entryAt(k: number): BenchEntry {
  const u = Math.floor(k / PER_USER);
  const id = userId(u);
  return { name: `user.${id}${FOLDERS[k % PER_USER]}`, location: `${backendOf(u)}!default`, acl: `${id}\t${RIGHTS}\t` };
}

/**
 * Entries k, k+1, ... as latin1 bytes, built incrementally (a folder suffix
 * per entry, a carry through the user id's digits per user) so that a big
 * listing can be checked byte for byte without building strings: the same
 * bytes as entryAt(k), which checkers should still compare now and then.
 */
export class EntryBytes {
  k = 0;
  /** The name's bytes are name[0, nameLength). */
  readonly name = Buffer.alloc(64);
  nameLength = 0;
  /** One shared buffer per backend: all of it is the location. */
  location: Buffer = LOCATIONS[0];
  /** The ACL's bytes are acl[0, aclLength). */
  readonly acl = Buffer.alloc(64);
  aclLength = 0;
  /** Where the user id's last digit and the folder suffix are in name, and the last digit in acl. */
  private nameDigitsEnd = 0;
  private aclDigitsEnd = 0;

  constructor(k = 0) {
    this.seek(k);
  }

  /** Makes entry k the current one (from entryAt's strings). */
  seek(k: number): void {
    const u = Math.floor(k / PER_USER);
    const id = userId(u);
    const e = entryAt(k);
    this.k = k;
    this.nameLength = this.name.write(e.name, 0, 'latin1');
    this.nameDigitsEnd = e.name.indexOf(id) + id.length;
    this.location = LOCATIONS[u % BACKENDS]!;
    this.aclLength = this.acl.write(e.acl, 0, 'latin1');
    this.aclDigitsEnd = e.acl.indexOf(id) + id.length;
  }

  /** Makes entry k + 1 the current one. */
  next(): void {
    const k = this.k + 1;
    const f = k % PER_USER;
    if (f !== 0) {
      const suffix = FOLDER_BYTES[f];
      const at = this.nameDigitsEnd;
      for (let i = 0; i < suffix.length; i++) this.name[at + i] = suffix[i]!;
      this.nameLength = at + suffix.length;
      this.k = k;
      return;
    }
    // the next user: his id is the last one plus 1 in the same number of digits, else start over from the strings
    const name = this.name;
    const acl = this.acl;
    let i = this.nameDigitsEnd - 1;
    let j = this.aclDigitsEnd - 1;
    while (name[i] === 0x39) {
      name[i--] = 0x30;
      acl[j--] = 0x30;
    }
    if (name[i] < 0x30 || name[i] > 0x39) {
      this.seek(k);
      return;
    }
    name[i] = name[i] + 1;
    acl[j] = acl[j] + 1;
    this.nameLength = this.nameDigitsEnd;
    this.location = LOCATIONS[(k / PER_USER) % BACKENDS]!;
    this.k = k;
  }
}

const FOLDER_BYTES = FOLDERS.map((f) => Buffer.from(f, 'latin1'));
const LOCATIONS = Array.from({ length: BACKENDS }, (_, b) => Buffer.from(entryAt(b * PER_USER).location, 'latin1'));

/** Index of a preloaded name, or -1. */
export function indexOfName(name: string): number {
  const m = /^user\.u(\d{7})(\.[A-Za-z]+)?$/.exec(name);
  if (!m) return -1;
  const f = FOLDERS.indexOf((m[2] ?? '') as (typeof FOLDERS)[number]);
  return f < 0 ? -1 : Number(m[1]) * PER_USER + f;
}

/** Deterministic 32-bit PRNG (mulberry32), so both servers get the same request sequence. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes entries 0..n-1 as a Cyrus 3.6 `ctl_mboxlist -d` JSON dump of a
 * MUPDATE master (spec 7.4: `mbtype` "er", `server`, `partition`, `acl`
 * object). `uniqueid` is included because `ctl_mboxlist -u` skips entries
 * without one; mupdated's loader ignores it.
 */
export async function writeMasterDump(path: string, n: number): Promise<void> {
  const out = createWriteStream(path);
  const mtime = String(Math.floor(Date.now() / 1000));
  let chunk = '{\n';
  for (let k = 0; k < n; k++) {
    const u = Math.floor(k / PER_USER);
    const id = userId(u);
    const name = `user.${id}${FOLDERS[k % PER_USER]}`;
    const uniqueid = `b0000000-0000-4000-8000-${String(k).padStart(12, '0')}`;
    chunk +=
      `${k ? ',\n' : ''}"${name}": {"name": "${name}", "mtime": "${mtime}", "uidvalidity": "0", ` +
      `"createdmodseq": "0", "foldermodseq": "0", "mbtype": "er", "partition": "default", "server": "${backendOf(u)}", ` +
      `"acl": {"${id}": "${RIGHTS}"}, "uniqueid": "${uniqueid}", "name_history": []}`;
    if (chunk.length > 1 << 16) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.write(`${chunk}\n}\n`);
  out.end();
  await once(out, 'finish');
}

/**
 * Writes entries 0..n-1 as a Cyrus `flat` database holding exactly the
 * mailboxes.db records a Cyrus 3.6 master writes for ACTIVATE (key `N` + the
 * name with `.` as 0x1F; value `%(T er P <partition> S <server> M <mtime> A
 * %(<id> <rights>))`), for `cvt_cyrusdb ... flat ... twoskip`. Loading with
 * `ctl_mboxlist -u` gives the same directory but commits each entry on its
 * own (about 1 ms each: 17 minutes for a million).
 */
export async function writeCyrusFlat(path: string, n: number): Promise<void> {
  const out = createWriteStream(path);
  const mtime = String(Math.floor(Date.now() / 1000));
  let chunk = '';
  for (let k = 0; k < n; k++) {
    const u = Math.floor(k / PER_USER);
    const id = userId(u);
    chunk += `Nuser\x1f${id}${FOLDERS[k % PER_USER].replace('.', '\x1f')}\t%(T er P default S ${backendOf(u)} M ${mtime} A %(${id} ${RIGHTS}))\n`;
    if (chunk.length > 1 << 16) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.write(chunk);
  out.end();
  await once(out, 'finish');
}

/** The users of the first n entries that live on `backend<b + 1>` (b in 0..9). */
export function usersOf(n: number, b: number): number[] {
  const out: number[] = [];
  for (let u = b; u * PER_USER < n; u += BACKENDS) out.push(u);
  return out;
}

/**
 * A backend's own mailboxes.db (as `ctl_mboxlist -u` writes it for local
 * mailboxes: an `I<uniqueid>` record and an `N<name>` record each) holding
 * exactly the mailboxes the first n entries place on `backend<b + 1>`, as a
 * Cyrus `flat` database for `cvt_cyrusdb`. Returns how many mailboxes.
 */
export async function writeBackendFlat(path: string, n: number, b: number): Promise<number> {
  const out = createWriteStream(path);
  const mtime = String(Math.floor(Date.now() / 1000));
  const users = usersOf(n, b);
  const uid = (k: number) => `b1000000-0000-4000-8000-${String(k).padStart(12, '0')}`;
  const rec = (u: number, f: number) => {
    const k = u * PER_USER + f;
    const id = userId(u);
    return {
      k,
      id,
      key: `user\x1f${id}${FOLDERS[f].replace('.', '\x1f')}`,
      attrs: `P default V ${1_700_000_000 + k} C 1 F 1 M ${mtime} A %(${id} ${RIGHTS})`,
    };
  };
  let chunk = '';
  const flush = async (force = false) => {
    if (chunk.length > 1 << 16 || force) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  };
  for (const pass of ['I', 'N'] as const) {
    for (const u of users) {
      for (let f = 0; f < PER_USER; f++) {
        const r = rec(u, f);
        chunk += pass === 'I' ? `I${uid(r.k)}\t%(T e N ${r.key} ${r.attrs} H ())\n` : `N${r.key}\t%(T e I ${uid(r.k)} ${r.attrs})\n`;
        await flush();
      }
    }
  }
  await flush(true);
  out.end();
  await once(out, 'finish');
  return users.length * PER_USER;
}

/**
 * What `ctl_mboxlist -d` prints on a backend holding the first n entries'
 * mailboxes of `backend<b + 1>` (local mailboxes: no `server` key), for
 * `mupdated push` when the Cyrus programs are not installed.
 */
export async function writeBackendDump(path: string, n: number, b: number): Promise<number> {
  const out = createWriteStream(path);
  const users = usersOf(n, b);
  let chunk = '{\n';
  let first = true;
  for (const u of users) {
    for (let f = 0; f < PER_USER; f++) {
      const k = u * PER_USER + f;
      const id = userId(u);
      const name = `user.${id}${FOLDERS[f]}`;
      chunk +=
        `${first ? '' : ',\n'}"${name}": {"name": "${name}", "mtime": "1700000000", "uidvalidity": "${1_700_000_000 + k}", ` +
        `"createdmodseq": "1", "foldermodseq": "1", "mbtype": "e", "partition": "default", "acl": {"${id}": "${RIGHTS}"}, ` +
        `"uniqueid": "b1000000-0000-4000-8000-${String(k).padStart(12, '0')}", "name_history": []}`;
      first = false;
      if (chunk.length > 1 << 16) {
        if (!out.write(chunk)) await once(out, 'drain');
        chunk = '';
      }
    }
  }
  out.write(`${chunk}\n}\n`);
  out.end();
  await once(out, 'finish');
  return users.length * PER_USER;
}
