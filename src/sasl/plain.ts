/** The PLAIN mechanism's message (RFC 4616): `authzid NUL authcid NUL password`. */
export const PLAIN_MECHANISM = 'PLAIN';

export interface PlainCredentials {
  authzid: string;
  authcid: string;
  password: Buffer;
}

const MAX_FIELD = 1024;

/** Parses a decoded PLAIN message; null when it is malformed. */
export function parsePlainMessage(message: Buffer): PlainCredentials | null {
  const first = message.indexOf(0);
  if (first < 0) return null;
  const second = message.indexOf(0, first + 1);
  if (second < 0 || message.indexOf(0, second + 1) >= 0) return null;
  const authzid = message.subarray(0, first);
  const authcid = message.subarray(first + 1, second);
  const password = message.subarray(second + 1);
  if (authcid.length === 0 || authzid.length > MAX_FIELD || authcid.length > MAX_FIELD || password.length > MAX_FIELD) {
    return null;
  }
  return { authzid: authzid.toString('utf8'), authcid: authcid.toString('utf8'), password: Buffer.from(password) };
}

/** Builds a PLAIN message (client side). */
export function buildPlainMessage(authzid: string, authcid: string, password: string): Buffer {
  return Buffer.concat([Buffer.from(authzid), Buffer.of(0), Buffer.from(authcid), Buffer.of(0), Buffer.from(password)]);
}

/** Strict base64: only the alphabet, correct padding; `=` alone means empty. Null when invalid. */
export function decodeBase64Strict(text: Buffer): Buffer | null {
  const s = text.toString('latin1');
  if (s === '=') return Buffer.alloc(0);
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  return Buffer.from(s, 'base64');
}
