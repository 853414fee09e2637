/**
 * Login identities in the data folder (`users.mdb`), managed with
 * `mupdated user add`. A separate LMDB environment, so the CLI can add users
 * while the server runs.
 */
import type { RootDatabase } from 'lmdb';
import { lmdbWrite } from '../store/lmdb-commit-failures.js';
import { openLmdb } from '../store/lmdb-open.js';
import { makePrivateFolder } from '../store/private-files.js';
import { hashPassword } from './password-hash.js';
import { newScramKeys, type StoredScramKeys } from './scram-keys.js';

export interface UserRecord {
  name: string;
  admin: boolean;
  hash: string;
  /** SCRAM-SHA-256 keys (records made before SCRAM support have none). */
  scram?: StoredScramKeys;
}

export class UserDb {
  private constructor(private readonly db: RootDatabase<UserRecord, string>) {}

  static open(dataDir: string): UserDb {
    makePrivateFolder(dataDir);
    return new UserDb(openLmdb<UserRecord, string>(`${dataDir}/users.mdb`, { overlappingSync: false }));
  }

  get(name: string): UserRecord | undefined {
    return this.db.get(name);
  }

  async set(name: string, password: Buffer, admin: boolean): Promise<void> {
    if (!/^[^\s\x00]{1,255}$/u.test(name)) throw new Error(`invalid user name '${name}'`);
    const record = { name, admin, hash: await hashPassword(password), scram: await newScramKeys(password) };
    await lmdbWrite(this.db.put(name, record));
  }

  /** Stores a record as another node's database made it (cluster users mirrored from etcd). */
  async putRaw(record: { name: string } & Record<string, unknown>): Promise<void> {
    if (!/^[^\s\x00]{1,255}$/u.test(record.name)) throw new Error(`invalid user name '${record.name}'`);
    await lmdbWrite(this.db.put(record.name, record as unknown as UserRecord));
  }

  /**
   * Replaces `name`'s hash, made at an older cost, by one at today's cost, unless
   * the record changed meanwhile (a password set since then wins). True when replaced.
   */
  async upgradeHash(name: string, password: Buffer, oldHash: string): Promise<boolean> {
    const hash = await hashPassword(password);
    return lmdbWrite(
      this.db.transaction(() => {
        const current = this.db.get(name);
        if (!current || current.hash !== oldHash) return false;
        this.db.putSync(name, { ...current, hash });
        return true;
      }),
    );
  }

  /**
   * Gives a record from before SCRAM support its SCRAM keys, from a password
   * just verified against `hash`; nothing happens if the record changed since.
   */
  async addScramKeys(name: string, password: Buffer, hash: string): Promise<boolean> {
    const scram = await newScramKeys(password);
    return lmdbWrite(
      this.db.transaction(() => {
        const current = this.db.get(name);
        if (!current || current.scram || current.hash !== hash) return false;
        void this.db.put(name, { ...current, scram });
        return true;
      }),
    );
  }

  async remove(name: string): Promise<boolean> {
    return lmdbWrite(this.db.remove(name));
  }

  list(): UserRecord[] {
    return [...this.db.getRange()].map(({ value }) => value);
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
