/**
 * SCRAM keys as a user record keeps them (base64 text), and the made-up keys
 * an unknown user gets so that an exchange for them looks like any other.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { deriveScramKeys, SCRAM_ITERATIONS, type ScramKeys } from './scram.js';

export interface StoredScramKeys {
  salt: string;
  iterations: number;
  storedKey: string;
  serverKey: string;
}

export async function newScramKeys(password: Buffer): Promise<StoredScramKeys> {
  const keys = await deriveScramKeys(password, randomBytes(16), SCRAM_ITERATIONS);
  return {
    salt: keys.salt.toString('base64'),
    iterations: keys.iterations,
    storedKey: keys.storedKey.toString('base64'),
    serverKey: keys.serverKey.toString('base64'),
  };
}

export function scramKeysFromRecord(stored: StoredScramKeys): ScramKeys {
  return {
    salt: Buffer.from(stored.salt, 'base64'),
    iterations: stored.iterations,
    storedKey: Buffer.from(stored.storedKey, 'base64'),
    serverKey: Buffer.from(stored.serverKey, 'base64'),
  };
}

/** Keys no password matches, with a salt that stays the same for a name (so a prober sees nothing change). */
export function decoyScramKeys(secret: Buffer, name: string): ScramKeys {
  return {
    salt: createHmac('sha256', secret).update(`salt\0${name}`).digest().subarray(0, 16),
    iterations: SCRAM_ITERATIONS,
    storedKey: randomBytes(32),
    serverKey: randomBytes(32),
  };
}
