/**
 * The server side of one AUTHENTICATE exchange (spec 3.2), whatever the
 * mechanism: challenges go out as bare base64 lines, each answer is one
 * line, `*` cancels. The session only supplies the line I/O and turns the
 * outcome into OK or NO.
 */
import { randomBytes } from 'node:crypto';
import type { Authenticator, Identity } from './authenticator.js';
import { decodeBase64Strict, parsePlainMessage, PLAIN_MECHANISM } from './plain.js';
import { parseClientFirst, SCRAM_MECHANISM, ScramError, ScramServer } from './scram.js';

export interface SaslLineIo {
  /** Sends one challenge line: the base64 of `data` (an empty line for no data). */
  challenge(data: Buffer): void;
  /** The client's next line; null when the connection ended. */
  response(): Promise<Buffer | null>;
  /**
   * Called before a password or proof is checked (the connection's address
   * may have to wait for its failed-login budget); false: the connection is gone.
   */
  beforeCheck?(user: string): Promise<boolean>;
  /** Called when a password or proof was wrong. */
  failedCheck?(): void;
}

/** What one connection may use right now. */
export interface OfferedMechanisms {
  /** PLAIN is configured and safe here (TLS, loopback, or cleartext allowed). */
  plain: boolean;
  plainEnabled: boolean;
  scram: boolean;
  startTls: boolean;
}

/**
 * Where STARTTLS is offered and cleartext is not trusted, nothing is offered
 * before TLS: a client that found SCRAM would log in without TLS and run the
 * whole session in the clear.
 */
export function offeredMechanisms(auth: Authenticator, plainSafeHere: boolean, startTlsOffered: boolean): OfferedMechanisms {
  const plainEnabled = auth.plainEnabled;
  const scram = (plainSafeHere || !startTlsOffered) && auth.scramAvailability().offered;
  return { plain: plainEnabled && plainSafeHere, plainEnabled, scram, startTls: startTlsOffered };
}

/**
 * The banner's `* AUTH` list, strongest first: Cyrus clients take the first
 * one they have (spec 2.3). PLAIN where it would be refused is listed only
 * when nothing else would be and STARTTLS is not offered (never an empty list
 * without STARTTLS).
 */
export function bannerMechanisms(offered: OfferedMechanisms): string[] {
  const listPlain = offered.plain || (offered.plainEnabled && !offered.scram && !offered.startTls);
  return [...(offered.scram ? [SCRAM_MECHANISM] : []), ...(listPlain ? [PLAIN_MECHANISM] : [])];
}

export type SaslOutcome =
  | { kind: 'ok'; identity: Identity; mechanism: string }
  /** `credentialsAt`: when the credentials arrived (the failed-login pause runs from there); null for no pause. */
  | { kind: 'refused'; text: string; credentialsAt: number | null; user?: string; authzid?: string }
  | { kind: 'canceled' }
  | { kind: 'gone' };

/** The text every credential failure gets, so none tells them apart (spec 3.2). */
export const AUTH_FAILURE = 'authentication failure';

type Step = { kind: 'line'; data: Buffer } | { kind: 'refused'; text: string } | { kind: 'canceled' } | { kind: 'gone' };

/** The client's next message, decoded; challenges first with `data`. */
async function exchange(io: SaslLineIo, data: Buffer): Promise<Step> {
  io.challenge(data);
  const line = await io.response();
  if (line === null) return { kind: 'gone' };
  if (line[0] === 0x2a) return { kind: 'canceled' };
  const decoded = decodeBase64Strict(line);
  return decoded ? { kind: 'line', data: decoded } : { kind: 'refused', text: 'invalid base64' };
}

export async function runSaslExchange(
  mechanismArg: Buffer,
  initialResponse: Buffer | undefined,
  io: SaslLineIo,
  auth: Authenticator,
  offered: OfferedMechanisms,
): Promise<SaslOutcome> {
  const mechanism = mechanismArg.toString('latin1').toUpperCase();
  if (mechanism === PLAIN_MECHANISM && !offered.plainEnabled)
    return { kind: 'refused', text: 'no mechanism available', credentialsAt: null };
  if (mechanism === PLAIN_MECHANISM && !offered.plain) {
    return { kind: 'refused', text: 'PLAIN needs TLS on this connection', credentialsAt: null };
  }
  if (!(mechanism === PLAIN_MECHANISM || (mechanism === SCRAM_MECHANISM && offered.scram))) {
    return { kind: 'refused', text: 'no mechanism available', credentialsAt: null };
  }
  let first: Step;
  if (initialResponse === undefined) {
    first = await exchange(io, Buffer.alloc(0));
  } else {
    const decoded = decodeBase64Strict(initialResponse);
    first = decoded ? { kind: 'line', data: decoded } : { kind: 'refused', text: 'invalid base64' };
  }
  if (first.kind === 'refused') return { ...first, credentialsAt: Date.now() };
  if (first.kind !== 'line') return first;
  return mechanism === PLAIN_MECHANISM ? plain(first.data, io, auth) : scram(first.data, io, auth);
}

async function plain(message: Buffer, io: SaslLineIo, auth: Authenticator): Promise<SaslOutcome> {
  // The pause runs from here, so the time to the answer does not tell an unknown user (no hash computed) from a wrong password.
  const credentialsAt = Date.now();
  const creds = parsePlainMessage(message);
  if (!creds) return { kind: 'refused', text: 'malformed response', credentialsAt };
  if (io.beforeCheck && !(await io.beforeCheck(creds.authcid))) return { kind: 'gone' };
  const identity = await auth.login(creds);
  if (!identity) {
    io.failedCheck?.();
    return { kind: 'refused', text: AUTH_FAILURE, credentialsAt, user: creds.authcid, authzid: creds.authzid };
  }
  return { kind: 'ok', identity, mechanism: PLAIN_MECHANISM };
}

/**
 * SCRAM as Cyrus runs it in MUPDATE: server-first as a challenge, then the
 * server-final (`v=`) as another challenge, answered by an empty line, and
 * only then the tagged OK. Whether the identity may log in is decided before
 * `v=` goes out, so a refused identity never learns its password was right.
 */
async function scram(message: Buffer, io: SaslLineIo, auth: Authenticator): Promise<SaslOutcome> {
  let credentialsAt = Date.now();
  try {
    const first = parseClientFirst(message);
    const server = new ScramServer(first, auth.scramKeys(first.username), randomBytes(18).toString('base64'));
    const final = await exchange(io, server.challenge());
    credentialsAt = Date.now();
    if (final.kind === 'refused') return { ...final, credentialsAt };
    if (final.kind !== 'line') return final;
    const refused = { kind: 'refused', text: AUTH_FAILURE, credentialsAt, user: first.username, authzid: first.authzid } as const;
    if (io.beforeCheck && !(await io.beforeCheck(first.username))) return { kind: 'gone' };
    const serverFinal = server.finish(final.data);
    if (!serverFinal) {
      io.failedCheck?.();
      return refused;
    }
    const identity = auth.authorize(first.username, first.authzid);
    if (!identity) return refused;
    const ack = await exchange(io, serverFinal);
    if (ack.kind === 'refused') return { ...ack, credentialsAt: null };
    if (ack.kind !== 'line') return ack;
    if (ack.data.length > 0) return { kind: 'refused', text: 'malformed response', credentialsAt: null };
    return { kind: 'ok', identity, mechanism: SCRAM_MECHANISM };
  } catch (err) {
    if (err instanceof ScramError) return { kind: 'refused', text: err.message, credentialsAt };
    throw err;
  }
}
