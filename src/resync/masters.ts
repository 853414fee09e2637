/**
 * A slave's list of masters (`--master A:P,B:P`, or the same in
 * mupdate_server): cluster nodes that all serve one directory. Each connect
 * tries them in the order given and uses the first that answers (connects,
 * greets and accepts the login), as Cyrus's own clients walk the addresses of
 * one host name.
 */
import type { HostPort } from '../host-port.js';
import type { Logger } from '../log.js';
import { MupdateConnection, type ClientOptions } from '../mupdate/client/connection.js';
import { MupdateClientError } from '../mupdate/client/errors.js';
import { defaultStartTls } from '../mupdate/client/tls-policy.js';

/** `host:port` as an operator writes it (IPv6 in brackets). */
export function masterText(m: HostPort): string {
  return m.host.includes(':') ? `[${m.host}]:${m.port}` : `${m.host}:${m.port}`;
}

/** Opens a connection to the first master that answers; throws naming every failure when none does. */
export async function connectFirst(
  masters: HostPort[],
  options: Omit<ClientOptions, 'host' | 'port'>,
  log: Logger,
): Promise<{ conn: MupdateConnection; master: HostPort }> {
  const failures: string[] = [];
  for (const master of masters) {
    try {
      // Unless configured, STARTTLS is required toward each master not on loopback (tls-policy.ts).
      const starttls = options.starttls ?? defaultStartTls(master.host);
      const conn = await MupdateConnection.open({ ...options, starttls, host: master.host, port: master.port }, log);
      return { conn, master };
    } catch (err) {
      if (!(err instanceof MupdateClientError) || masters.length === 1) throw err;
      failures.push(`${masterText(master)}: ${err.message}`);
      log.warn({ master: masterText(master), err: err.message }, 'master does not answer; trying the next');
    }
  }
  throw new MupdateClientError(`no master answered (${failures.join('; ')})`);
}
