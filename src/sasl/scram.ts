/**
 * SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash): the keys a server stores and
 * the messages of both sides. Pure: no I/O, nonces and salts are passed in.
 * Channel binding is not offered (no -PLUS mechanism): the gs2 flags `n` and
 * `y` are accepted, `p=` is refused.
 */
import { createHash, createHmac, pbkdf2, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { saslprep } from './saslprep.js';

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';
/** PBKDF2 rounds for new keys: RFC 7677 asks for at least 4096; each client login pays them once. */
export const SCRAM_ITERATIONS = 10_000;
/** Iteration counts a client accepts from a server (below is too weak, above is a denial of service). */
export const MIN_ITERATIONS = 4096;
export const MAX_ITERATIONS = 1_000_000;
const MAX_FIELD = 1024;

const pbkdf2Async = promisify(pbkdf2);

/** What a server keeps instead of the password. */
export interface ScramKeys {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

const hmac = (key: Buffer, text: string | Buffer): Buffer => createHmac('sha256', key).update(text).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

/** The password as SCRAM hashes it: SASLprep'd when that is defined for it, else its bytes as given. */
function normalizedPassword(password: Buffer): Buffer {
  const text = utf8(password);
  const prepped = text === null ? null : saslprep(text);
  return prepped === null ? password : Buffer.from(prepped, 'utf8');
}

async function saltedPassword(password: Buffer, salt: Buffer, iterations: number): Promise<Buffer> {
  return pbkdf2Async(normalizedPassword(password), salt, iterations, 32, 'sha256');
}

export async function deriveScramKeys(password: Buffer, salt: Buffer, iterations: number): Promise<ScramKeys> {
  const salted = await saltedPassword(password, salt, iterations);
  return {
    salt,
    iterations,
    storedKey: sha256(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  };
}

/** RFC 5802 saslname: `,` and `=` escaped as `=2C` and `=3D`. */
export function encodeSaslName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

export function decodeSaslName(text: string): string | null {
  if (/=(?!2C|3D)/.test(text)) return null;
  return text.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/** A nonce: printable ASCII without `,`. */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function utf8(message: Buffer): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(message);
  } catch {
    return null;
  }
}

/** `k=value` attributes of a message, in order; null when one is malformed. */
function attributes(text: string): Array<[string, string]> | null {
  const out: Array<[string, string]> = [];
  for (const part of text.split(',')) {
    if (!/^[A-Za-z]=/.test(part)) return null;
    out.push([part[0], part.slice(2)]);
  }
  return out;
}

export interface ClientFirst {
  /** The gs2 header exactly as sent (`n,,` or `y,a=NAME,`): the client's final message echoes it. */
  gs2Header: string;
  /** Empty when the client named none. */
  authzid: string;
  username: string;
  nonce: string;
  /** client-first-message-bare, part of the AuthMessage. */
  bare: string;
}

export class ScramError extends Error {}

/** Parses client-first-message; throws ScramError when it is malformed or asks for channel binding. */
export function parseClientFirst(message: Buffer): ClientFirst {
  const text = utf8(message);
  if (text === null || message.length > 4 * MAX_FIELD) throw new ScramError('malformed response');
  const m = /^([ny]|p=[^,]*),((?:a=[^,]*)?),(.*)$/s.exec(text);
  if (!m) throw new ScramError('malformed response');
  if (m[1].startsWith('p=')) throw new ScramError('channel binding is not supported');
  const authzid = m[2] === '' ? '' : decodeSaslName(m[2].slice(2));
  const bare = m[3];
  const attrs = attributes(bare);
  if (authzid === null || !attrs || attrs.length < 2) throw new ScramError('malformed response');
  // A leading `m=` is a mandatory extension we do not know: RFC 5802 says fail.
  const [[nKey, nValue], [rKey, nonce]] = attrs as [[string, string], [string, string]];
  if (nKey !== 'n' || rKey !== 'r' || !NONCE.test(nonce) || nonce.length > MAX_FIELD) throw new ScramError('malformed response');
  const username = decodeSaslName(nValue);
  if (!username || username.length > MAX_FIELD || authzid.length > MAX_FIELD) throw new ScramError('malformed response');
  return { gs2Header: `${m[1]},${m[2]},`, authzid, username, nonce, bare };
}

export function serverFirstMessage(clientNonce: string, serverNonce: string, salt: Buffer, iterations: number): string {
  return `r=${clientNonce}${serverNonce},s=${salt.toString('base64')},i=${iterations}`;
}

export interface ClientFinal {
  channelBinding: string;
  nonce: string;
  proof: Buffer;
  /** client-final-message-without-proof, part of the AuthMessage. */
  withoutProof: string;
}

export function parseClientFinal(message: Buffer): ClientFinal {
  const text = utf8(message);
  const at = text?.lastIndexOf(',p=') ?? -1;
  if (text === null || at < 0 || message.length > 4 * MAX_FIELD) throw new ScramError('malformed response');
  const withoutProof = text.slice(0, at);
  const attrs = attributes(withoutProof);
  const proofText = text.slice(at + 3);
  if (!attrs || attrs.length < 2 || attrs[0][0] !== 'c' || attrs[1][0] !== 'r' || !BASE64.test(proofText)) {
    throw new ScramError('malformed response');
  }
  return { channelBinding: attrs[0][1], nonce: attrs[1][1], proof: Buffer.from(proofText, 'base64'), withoutProof };
}

/**
 * Server side of one exchange, once the keys are known (real ones, or made-up
 * ones for an unknown user so the exchange looks the same).
 */
export class ScramServer {
  private readonly serverFirst: string;

  constructor(
    private readonly first: ClientFirst,
    private readonly keys: ScramKeys,
    serverNonce: string,
  ) {
    this.serverFirst = serverFirstMessage(first.nonce, serverNonce, keys.salt, keys.iterations);
  }

  challenge(): Buffer {
    return Buffer.from(this.serverFirst, 'utf8');
  }

  /** Checks the client's proof in constant time; the server-final-message when it holds, else null. */
  finish(message: Buffer): Buffer | null {
    const final = parseClientFinal(message);
    const expectedBinding = Buffer.from(this.first.gs2Header, 'utf8').toString('base64');
    const nonceOk = final.nonce === this.serverFirst.slice(2, this.serverFirst.indexOf(','));
    const authMessage = `${this.first.bare},${this.serverFirst},${final.withoutProof}`;
    const clientSignature = hmac(this.keys.storedKey, authMessage);
    const lengthOk = final.proof.length === clientSignature.length;
    const clientKey = xor(lengthOk ? final.proof : Buffer.alloc(clientSignature.length), clientSignature);
    const proofOk = timingSafeEqual(sha256(clientKey), this.keys.storedKey) && lengthOk;
    if (!proofOk || !nonceOk || final.channelBinding !== expectedBinding) return null;
    return Buffer.from(`v=${hmac(this.keys.serverKey, authMessage).toString('base64')}`, 'utf8');
  }
}

/** Client side: first message, answer to the server's challenge, check of the server's signature. */
export class ScramClient {
  private readonly bare: string;
  private readonly gs2Header: string;
  private expectedServerSignature: Buffer | null = null;

  constructor(
    user: string,
    private readonly password: Buffer,
    authzid: string,
    private readonly nonce: string,
  ) {
    this.gs2Header = `n,${authzid === '' ? '' : `a=${encodeSaslName(authzid)}`},`;
    this.bare = `n=${encodeSaslName(user)},r=${nonce}`;
  }

  first(): Buffer {
    return Buffer.from(this.gs2Header + this.bare, 'utf8');
  }

  /** The client-final-message for the server-first-message; throws ScramError when that is unacceptable. */
  async final(serverFirst: Buffer): Promise<Buffer> {
    const text = utf8(serverFirst);
    const attrs = text === null ? null : attributes(text);
    if (!attrs || attrs.length < 3 || attrs[0][0] !== 'r' || attrs[1][0] !== 's' || attrs[2][0] !== 'i') {
      throw new ScramError(attrs?.[0]?.[0] === 'e' ? `server error: ${attrs[0][1]}` : 'malformed server challenge');
    }
    const [[, nonce], [, saltText], [, iterText]] = attrs as [[string, string], [string, string], [string, string]];
    const iterations = Number(iterText);
    if (!nonce.startsWith(this.nonce) || nonce.length === this.nonce.length || !NONCE.test(nonce)) {
      throw new ScramError('the server changed the nonce');
    }
    if (!/^\d+$/.test(iterText) || iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) {
      throw new ScramError(`unacceptable iteration count ${iterText}`);
    }
    if (!BASE64.test(saltText) || saltText === '') throw new ScramError('malformed salt');
    const salted = await saltedPassword(this.password, Buffer.from(saltText, 'base64'), iterations);
    const clientKey = hmac(salted, 'Client Key');
    const withoutProof = `c=${Buffer.from(this.gs2Header, 'utf8').toString('base64')},r=${nonce}`;
    const authMessage = `${this.bare},${text},${withoutProof}`;
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }

  /** Whether the server-final-message proves the server knows the keys (mutual authentication). */
  verifyServer(serverFinal: Buffer): boolean {
    const m = /^v=([A-Za-z0-9+/=]+)$/.exec(serverFinal.toString('latin1'));
    if (!m || !this.expectedServerSignature) return false;
    const got = Buffer.from(m[1], 'base64');
    return got.length === this.expectedServerSignature.length && timingSafeEqual(got, this.expectedServerSignature);
  }
}
