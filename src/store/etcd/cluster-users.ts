/**
 * Login records of a cluster, in etcd under `<prefix>u/<name>`: whatever the
 * node's user database stores for a name, as JSON with buffers as base64
 * (opaque here). `mupdated
 * user ... --etcd` writes them; every node mirrors them into its users.mdb
 * (user-mirror.ts), so logins are checked locally.
 */
import type { Etcd3 } from 'etcd3';
import { withDeadline } from './connect.js';
import { decodeJson, encodeJson, prefixEnd, type EtcdLayout } from './layout.js';

/** A login record as the user database keeps it; only `name` is looked at here. */
export interface OpaqueUserRecord {
  name: string;
  [field: string]: unknown;
}

export interface UsersAt {
  users: OpaqueUserRecord[];
  /** The etcd revision the list was read at (a watch resumes after it). */
  revision: number;
}

export async function readClusterUsers(client: Etcd3, layout: EtcdLayout, timeoutMs: number): Promise<UsersAt> {
  const users: OpaqueUserRecord[] = [];
  let key = layout.users;
  let revision = 0;
  for (;;) {
    const res = await withDeadline(
      client.kv.range({
        key,
        range_end: prefixEnd(layout.users),
        limit: 1_000,
        ...(revision ? { revision: String(revision) } : {}),
      }),
      timeoutMs,
      'a read of the users',
    );
    if (!revision) revision = Number(res.header.revision);
    for (const kv of res.kvs) users.push(decodeUser(kv.value));
    if (!res.more || !res.kvs.length) break;
    key = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.of(0)]);
  }
  return { users, revision };
}

export async function putClusterUser(client: Etcd3, layout: EtcdLayout, record: OpaqueUserRecord, timeoutMs: number): Promise<void> {
  await withDeadline(client.kv.put({ key: layout.user(record.name), value: encodeJson(record) }), timeoutMs, 'a user change');
}

/** True when there was such a user. */
export async function removeClusterUser(client: Etcd3, layout: EtcdLayout, name: string, timeoutMs: number): Promise<boolean> {
  const res = await withDeadline(client.kv.deleteRange({ key: layout.user(name) }), timeoutMs, 'a user change');
  return Number(res.deleted) > 0;
}

export function decodeUser(raw: Buffer): OpaqueUserRecord {
  const record = decodeJson<OpaqueUserRecord>(raw);
  if (!record || typeof record !== 'object' || typeof record.name !== 'string') throw new Error('a login record in etcd has no name');
  return record;
}
