/**
 * Decides who may log in (spec 3.2): credentials are checked against the
 * user database (or saslauthd); only admins may log in unless non-admins are
 * allowed, and then they are read-only. An authzid other than the authcid
 * needs admin rights.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PLAIN_MECHANISM, type PlainCredentials } from './plain.js';
import { needsRehash, verifyPassword } from './password-hash.js';
import { saslauthdVerify } from './saslauthd.js';
import { decoyScramKeys, scramKeysFromRecord } from './scram-keys.js';
import { SCRAM_MECHANISM, type ScramKeys } from './scram.js';
import type { UserDb } from './user-db.js';

export interface Identity {
  /** The identity the session runs as (the authzid when one was taken). */
  name: string;
  /** Who proved the password. */
  authcid: string;
  /** Admins may write; others, when allowed in at all, may only read. */
  admin: boolean;
}

export interface AuthPolicy {
  /** Extra admin names (e.g. for saslauthd users, who have no record here). */
  admins: readonly string[];
  allowNonAdmins: boolean;
  saslauthdSocket?: string | undefined;
  saslService: string;
  realm: string;
  /** How long a successful verification is remembered, so a backend's per-operation login is cheap; 0 never. */
  cacheTtlMs: number;
  /** Told when a stored hash of an older cost was replaced after a good login (or why it could not be). */
  onRehash?: ((user: string, err?: Error) => void) | undefined;
  /** Mechanisms the configuration allows (`sasl_mech_list`); both when not given. */
  mechanisms?: readonly string[];
}

interface CachedLogin {
  digest: Buffer;
  expires: number;
}

const CACHE_LIMIT = 10_000;

export class Authenticator {
  /** Keyed digests of recently verified passwords; a process-local key, never stored. */
  private readonly cacheKey = randomBytes(32);
  private readonly cache = new Map<string, CachedLogin>();
  /** Verifications in progress, by credential digest. */
  private readonly verifying = new Map<string, Promise<boolean>>();

  constructor(
    private readonly users: UserDb,
    private readonly policy: AuthPolicy,
  ) {}

  /** The identity to run the session as, or null (all refusals look the same to the client). */
  async login(creds: PlainCredentials): Promise<Identity | null> {
    const { authcid, authzid, password } = creds;
    const record = this.users.get(authcid);
    if (!this.mayLogIn(authcid)) return null;
    if (!(await this.checkPassword(authcid, password, record?.hash))) return null;
    // Users from before SCRAM support get their keys at their next good login, so SCRAM can be offered.
    if (record && !record.scram) await this.users.addScramKeys(authcid, password, record.hash);
    if (record && needsRehash(record.hash)) this.rehash(authcid, password, record.hash);
    return this.authorize(authcid, authzid);
  }

  private mayLogIn(authcid: string): boolean {
    return this.isAdmin(authcid) || this.policy.allowNonAdmins;
  }

  private isAdmin(authcid: string): boolean {
    return (this.users.get(authcid)?.admin ?? false) || this.policy.admins.includes(authcid);
  }

  /** The identity for a proven authcid, or null when it may not log in or not take that authzid. */
  authorize(authcid: string, authzid: string): Identity | null {
    if (!this.mayLogIn(authcid)) return null;
    const admin = this.isAdmin(authcid);
    if (authzid === '' || authzid === authcid) return { name: authcid, authcid, admin };
    return admin ? { name: authzid, authcid, admin } : null;
  }

  /** Replaces an old-cost hash in the background: the login is not kept waiting for a second hash. */
  private rehash(user: string, password: Buffer, oldHash: string): void {
    const copy = Buffer.from(password);
    this.users
      .upgradeHash(user, copy, oldHash)
      .then(
        (replaced) => {
          if (replaced) this.policy.onRehash?.(user);
        },
        (err: Error) => this.policy.onRehash?.(user, err),
      )
      .finally(() => copy.fill(0));
  }

  /**
   * Whether SCRAM-SHA-256 can be offered: only when every password is checked
   * here and every user has SCRAM keys; otherwise a Cyrus client would pick it
   * and fail. The reason when not.
   */
  scramAvailability(): { offered: true } | { offered: false; reason: string } {
    if (this.policy.mechanisms && !this.policy.mechanisms.includes(SCRAM_MECHANISM)) {
      return { offered: false, reason: 'sasl_mech_list leaves it out' };
    }
    if (this.policy.saslauthdSocket) return { offered: false, reason: 'passwords are checked by saslauthd' };
    const without = this.users
      .list()
      .filter((u) => !u.scram)
      .map((u) => u.name);
    if (without.length > 0) {
      const names = without.slice(0, 10).join(', ') + (without.length > 10 ? `, ... (${without.length} in all)` : '');
      return { offered: false, reason: `users without SCRAM keys (set their passwords again with 'mupdated user add'): ${names}` };
    }
    return { offered: true };
  }

  /** Whether the configuration allows PLAIN at all (where it may be used is the session's business). */
  get plainEnabled(): boolean {
    return !this.policy.mechanisms || this.policy.mechanisms.includes(PLAIN_MECHANISM);
  }

  /** The user's SCRAM keys, or keys nothing matches for an unknown user (the exchange then fails at its end, like a wrong password). */
  scramKeys(authcid: string): ScramKeys {
    const stored = this.users.get(authcid)?.scram;
    return stored ? scramKeysFromRecord(stored) : decoyScramKeys(this.cacheKey, authcid);
  }

  private async checkPassword(user: string, password: Buffer, hash: string | undefined): Promise<boolean> {
    const digest = createHmac('sha256', this.cacheKey)
      .update(user)
      .update('\0')
      .update(hash ?? '')
      .update('\0')
      .update(password)
      .digest();
    const cached = this.cache.get(user);
    if (cached && cached.expires > Date.now() && timingSafeEqual(cached.digest, digest)) return true;
    // Logins with the same credentials at the same moment (backends reconnecting after a restart)
    // share one verification: each scrypt hash holds 128 MiB while it runs.
    const key = digest.toString('base64');
    let pending = this.verifying.get(key);
    if (!pending) {
      pending = this.verify(user, password, hash).finally(() => this.verifying.delete(key));
      this.verifying.set(key, pending);
    }
    const ok = await pending;
    if (ok && this.policy.cacheTtlMs > 0) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(user, { digest, expires: Date.now() + this.policy.cacheTtlMs });
    }
    return ok;
  }

  private async verify(user: string, password: Buffer, hash: string | undefined): Promise<boolean> {
    if (hash !== undefined) return verifyPassword(password, hash);
    if (!this.policy.saslauthdSocket) return false;
    return saslauthdVerify(this.policy.saslauthdSocket, user, password, this.policy.saslService, this.policy.realm);
  }
}
