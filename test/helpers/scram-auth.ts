/** A SCRAM-SHA-256 login over a RawClient, step by step as the Cyrus client library sends it. */
import { ScramClient } from '../../src/sasl/scram.js';
import type { RawClient } from './raw-client.js';

export interface ScramLoginOptions {
  user?: string;
  password?: string;
  authzid?: string;
  tag?: string;
  /** Replaces the client-final-message (to send a broken one). */
  final?: (good: Buffer) => Buffer;
}

export interface ScramLoginResult {
  /** Every line the server sent, challenges included, up to its tagged answer. */
  lines: string[];
  /** The tagged answer. */
  answer: string;
  /** Whether a server signature came and proved the server knows the keys. */
  serverVerified: boolean;
}

export async function scramLogin(c: RawClient, o: ScramLoginOptions = {}): Promise<ScramLoginResult> {
  const tag = o.tag ?? 'A01';
  const user = o.user ?? 'mupdateadmin';
  const client = new ScramClient(user, Buffer.from(o.password ?? 'secret'), o.authzid ?? user, `nonce${Date.now()}`);
  const ir = client.first().toString('base64');
  c.send(`${tag} AUTHENTICATE "SCRAM-SHA-256" {${ir.length}+}\r\n${ir}\r\n`);
  const lines: string[] = [];
  let serverVerified = false;
  for (let step = 0; step < 3; step++) {
    const line = await c.readLine(10_000);
    lines.push(line);
    if (line.startsWith(`${tag} `)) return { lines, answer: line, serverVerified };
    const data = Buffer.from(line, 'base64');
    if (step === 0) {
      const final = await client.final(data);
      c.send(`${(o.final ? o.final(final) : final).toString('base64')}\r\n`);
    } else {
      serverVerified = client.verifyServer(data);
      c.send('\r\n');
    }
  }
  throw new Error(`no tagged answer after three challenges: ${JSON.stringify(lines)}`);
}
