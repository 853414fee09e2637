/** scrypt password hashes: `scrypt$N$r$p$salt$hash` (base64 salt and hash). */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Today's cost (current guidance: N=2^17, r=8, p=1): about 128 MiB and a few
 * hundred ms per hash. MUPDATED_SCRYPT_LOG2N (14 to 20) changes N for new
 * hashes, for test suites and very small machines; hashes below the cost in
 * force are replaced at the next good login.
 */
export const SCRYPT_COST = { N: 2 ** costLog2N(process.env.MUPDATED_SCRYPT_LOG2N), r: 8, p: 1 } as const;

function costLog2N(setting: string | undefined): number {
  if (setting === undefined || setting === '') return 17;
  const n = Number(setting);
  if (!Number.isInteger(n) || n < 14 || n > 20) throw new Error(`MUPDATED_SCRYPT_LOG2N: expected 14 to 20, got '${setting}'`);
  return n;
}
const KEYLEN = 32;
/** Stored parameters beyond these are refused rather than allowed to claim gigabytes. */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;
/**
 * Hashes computed at once: each holds 128*N*r bytes (128 MiB at today's cost)
 * while it runs, so a burst of logins queues here instead of taking 512 MiB
 * of libuv's four threads.
 */
const MAX_CONCURRENT = 2;

let running = 0;
const waiting: Array<() => void> = [];

async function withSlot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= MAX_CONCURRENT) await new Promise<void>((resolve) => waiting.push(resolve));
  else running++;
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

function derive(password: Buffer, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  // scrypt needs 128*N*r bytes for its table plus 128*r*p for the blocks; maxmem leaves room for both.
  const maxmem = 128 * n * r + 128 * r * p + 1024 * 1024;
  return withSlot(
    () =>
      new Promise((resolve, reject) => {
        scrypt(password, salt, KEYLEN, { N: n, r, p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
      }),
  );
}

export async function hashPassword(password: Buffer): Promise<string> {
  const { N, r, p } = SCRYPT_COST;
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, r, p);
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

interface StoredHash {
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function parseHash(stored: string): StoredHash | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const powerOfTwo = Number.isSafeInteger(n) && n > 1 && (n & (n - 1)) === 0;
  if (!powerOfTwo || n > MAX_N || !Number.isInteger(r) || r < 1 || r > MAX_R || !Number.isInteger(p) || p < 1 || p > MAX_P) {
    return null;
  }
  return { n, r, p, salt: Buffer.from(parts[4], 'base64'), key: Buffer.from(parts[5], 'base64') };
}

export async function verifyPassword(password: Buffer, stored: string): Promise<boolean> {
  const h = parseHash(stored);
  if (!h) return false;
  const key = await derive(password, h.salt, h.n, h.r, h.p);
  return key.length === h.key.length && timingSafeEqual(key, h.key);
}

/** True when a stored hash was made at a lower cost than today's (it is replaced at the next good login). */
export function needsRehash(stored: string): boolean {
  const h = parseHash(stored);
  if (!h) return false;
  return h.n < SCRYPT_COST.N || h.r < SCRYPT_COST.r || h.p < SCRYPT_COST.p;
}
