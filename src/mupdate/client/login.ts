/**
 * Logging in on a MUPDATE connection: SCRAM-SHA-256 when the server offers it
 * (the password never crosses the link), else PLAIN with an initial response.
 */
import { randomBytes } from 'node:crypto';
import { buildPlainMessage } from '../../sasl/plain.js';
import { SCRAM_MECHANISM, ScramClient, ScramError } from '../../sasl/scram.js';
import { ConnectionClosed, LoginRefused, MupdateClientError } from './errors.js';
import { statusText, type Response } from './responses.js';

export interface Credentials {
  user: string;
  password: string;
  /** Authorization id; defaults to the user, as Cyrus clients send it. */
  authzid?: string | undefined;
  /** How long to wait for each answer of the exchange. */
  timeoutMs: number;
}

/** One step of an AUTHENTICATE exchange as the server sends it. */
export type SaslStep = { kind: 'challenge'; data: Buffer } | { kind: 'status'; word: string; text: string };

/** What a login needs of the connection. */
export interface LoginChannel {
  /** The mechanisms of the banner's `* AUTH` line, upper-cased. */
  readonly mechanisms: string[];
  sendRaw(bytes: Buffer): void;
  next(timeoutMs?: number): Promise<Response | null>;
  /** From now until a status line, lines are read as raw SASL lines. */
  startSasl(): void;
  nextSaslStep(timeoutMs: number): Promise<SaslStep>;
}

/** SCRAM-SHA-256 when the server offers it, else PLAIN; null for neither. */
export function loginMechanism(mechanisms: string[]): string | null {
  return [SCRAM_MECHANISM, 'PLAIN'].find((m) => mechanisms.includes(m)) ?? null;
}

export async function logIn(channel: LoginChannel, creds: Credentials): Promise<void> {
  const authzid = creds.authzid ?? creds.user;
  if (loginMechanism(channel.mechanisms) === SCRAM_MECHANISM) return logInScram(channel, creds, authzid);
  const message = buildPlainMessage(authzid, creds.user, creds.password);
  const ir = Buffer.from(message.toString('base64'));
  channel.sendRaw(Buffer.concat([Buffer.from(`A01 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n`), ir, Buffer.from('\r\n')]));
  const r = await channel.next(creds.timeoutMs);
  if (!r) throw new ConnectionClosed('the server closed the connection during login');
  if (r.word !== 'OK') throw new LoginRefused(creds.user, statusText(r));
}

async function logInScram(channel: LoginChannel, creds: Credentials, authzid: string): Promise<void> {
  const client = new ScramClient(creds.user, Buffer.from(creds.password, 'utf8'), authzid, randomBytes(18).toString('base64'));
  const line = (data: Buffer) => Buffer.from(`${data.toString('base64')}\r\n`);
  const ir = client.first().toString('base64');
  channel.startSasl();
  channel.sendRaw(Buffer.from(`A01 AUTHENTICATE "${SCRAM_MECHANISM}" {${ir.length}+}\r\n${ir}\r\n`));
  let step = 0;
  for (;;) {
    const challenge = await channel.nextSaslStep(creds.timeoutMs);
    if (challenge.kind === 'status') {
      if (challenge.word === 'OK' && step === 2) return;
      if (challenge.word === 'OK') throw new MupdateClientError('the server ended SCRAM without proving it knows the password');
      throw new LoginRefused(creds.user, challenge.text);
    }
    try {
      if (step === 0) channel.sendRaw(line(await client.final(challenge.data)));
      else if (step === 1 && client.verifyServer(challenge.data)) channel.sendRaw(Buffer.from('\r\n'));
      else throw new ScramError('the server could not prove it knows the password');
    } catch (err) {
      channel.sendRaw(Buffer.from('*\r\n'));
      throw err instanceof ScramError ? new MupdateClientError(`SCRAM login failed: ${err.message}`) : err;
    }
    step++;
  }
}
