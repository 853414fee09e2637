/**
 * Where the directory lives in etcd, under one prefix (default `/mupdated/`):
 *   m/format, m/dbid, m/order      set once, when the first node bootstraps the prefix
 *   m/conflict-seq                 last conflict id handed out
 *   m/head                         touched by every write: its mod_revision is the newest
 *                                  write under the prefix (NOOP's barrier)
 *   e/<name>                       an entry: encodeLogRecord bytes (name, state, location, ACL)
 *   c/<id, 12 digits>              a conflict record (JSON, buffers as base64)
 *   um/<key>                       meta of tools (applyMany's meta)
 *   u/<user>                       login records (JSON)
 */
import { decodeRecord, encodeLogRecord } from '../codec.js';
import type { ConflictRecord, Entry } from '../types.js';

/** The layout this code writes (m/format); a prefix written by a newer one is refused. */
export const CLUSTER_FORMAT = 1;

/** etcd's own limit is 128 operations per transaction (--max-txn-ops); stay well under it. */
export const MAX_TXN_OPS = 120;

export type KeyKind =
  | { kind: 'entry'; name: Buffer }
  | { kind: 'conflict'; id: number }
  | { kind: 'user'; name: string }
  | { kind: 'user-meta'; key: string }
  | { kind: 'meta'; key: string }
  | { kind: 'other' };

export class EtcdLayout {
  private readonly entryPrefix: Buffer;
  private readonly conflictPrefix: Buffer;
  private readonly userPrefix: Buffer;
  private readonly userMetaPrefix: Buffer;
  private readonly metaPrefix: Buffer;

  constructor(readonly prefix: string) {
    const p = (s: string) => Buffer.from(prefix + s, 'latin1');
    this.entryPrefix = p('e/');
    this.conflictPrefix = p('c/');
    this.userPrefix = p('u/');
    this.userMetaPrefix = p('um/');
    this.metaPrefix = p('m/');
  }

  get all(): Buffer {
    return Buffer.from(this.prefix, 'latin1');
  }

  get entries(): Buffer {
    return this.entryPrefix;
  }

  get conflicts(): Buffer {
    return this.conflictPrefix;
  }

  get users(): Buffer {
    return this.userPrefix;
  }

  entry(name: Buffer): Buffer {
    return Buffer.concat([this.entryPrefix, name]);
  }

  conflict(id: number): Buffer {
    return Buffer.concat([this.conflictPrefix, Buffer.from(String(id).padStart(12, '0'))]);
  }

  user(name: string): Buffer {
    return Buffer.concat([this.userPrefix, Buffer.from(name, 'utf8')]);
  }

  userMeta(key: string): Buffer {
    return Buffer.concat([this.userMetaPrefix, Buffer.from(key, 'utf8')]);
  }

  meta(key: 'format' | 'dbid' | 'order' | 'conflict-seq' | 'head'): Buffer {
    return Buffer.concat([this.metaPrefix, Buffer.from(key)]);
  }

  classify(key: Buffer): KeyKind {
    const after = (p: Buffer) => (key.length >= p.length && key.compare(p, 0, p.length, 0, p.length) === 0 ? key.subarray(p.length) : null);
    let rest: Buffer | null;
    if ((rest = after(this.entryPrefix))) return { kind: 'entry', name: Buffer.from(rest) };
    if ((rest = after(this.conflictPrefix))) return { kind: 'conflict', id: Number(rest.toString('latin1')) };
    if ((rest = after(this.userMetaPrefix))) return { kind: 'user-meta', key: rest.toString('utf8') };
    if ((rest = after(this.userPrefix))) return { kind: 'user', name: rest.toString('utf8') };
    if ((rest = after(this.metaPrefix))) return { kind: 'meta', key: rest.toString('latin1') };
    return { kind: 'other' };
  }
}

/** The smallest key after every key with this prefix (etcd's range_end for a prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.of(0);
}

export function encodeEntryValue(entry: Entry): Buffer {
  return encodeLogRecord(entry.name, entry);
}

export function decodeEntryValue(raw: Buffer): Entry | null {
  return decodeRecord(raw).entry;
}

/** JSON with buffers as `{"$b": base64}`: conflict records and other small records. */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(
    JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
      const raw = this[key];
      return Buffer.isBuffer(raw) ? { $b: raw.toString('base64') } : v;
    }),
  );
}

export function decodeJson<T>(raw: Buffer): T {
  return JSON.parse(raw.toString('utf8'), (_key, v: unknown) => {
    if (v && typeof v === 'object' && typeof (v as { $b?: unknown }).$b === 'string')
      return Buffer.from((v as { $b: string }).$b, 'base64');
    return v;
  }) as T;
}

export function encodeConflict(record: ConflictRecord): Buffer {
  return encodeJson(record);
}

export function decodeConflict(raw: Buffer): ConflictRecord {
  return decodeJson<ConflictRecord>(raw);
}

/**
 * A change's sequence number: etcd revision x 1000 + its place among the
 * entry changes of that revision (a transaction carries up to 64 writes, all
 * at one revision). The same on every node, increasing in commit order.
 */
export const SEQ_PER_REVISION = 1000;

export function seqOf(revision: number, index: number): number {
  return revision * SEQ_PER_REVISION + index;
}

export function revisionOfSeq(seq: number): number {
  return Math.floor(seq / SEQ_PER_REVISION);
}
