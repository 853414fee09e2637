/**
 * `mupdated push`: reads its flags and runs the push (push/push-run.ts).
 *
 * Exit codes: 0 the master now matches the dump; 1 could not connect, log in
 * or LIST; 2 bad usage or unreadable dump; 3 done, but some mailboxes need
 * review (held by another server on the master, or a write was refused).
 */
import { parseHostPort } from '../config-values.js';
import { MupdateConnection } from '../mupdate/client/connection.js';
import { MupdateClientError } from '../mupdate/client/errors.js';
import { DumpUnreadableError, pushDump } from '../push/push-run.js';
import { readPasswordFile } from '../client/password.js';
import { tlsOptions, TlsFlagsError, type TlsFlags } from '../client/tls-flags.js';

export interface PushFlags extends TlsFlags {
  master?: string | undefined;
  user?: string | undefined;
  'password-file'?: string | undefined;
  server?: string | undefined;
  'dry-run'?: boolean | undefined;
  window?: string | undefined;
}

const USAGE =
  'usage: mupdated push --master HOST:PORT --user NAME --password-file FILE --server BACKEND [--dry-run]\n' +
  '                     [--starttls | --plaintext] [--tls-ca FILE] [--tls-insecure] DUMP|-';

class UsageError extends Error {}

export async function runPush(dump: string | undefined, flags: PushFlags): Promise<number> {
  try {
    if (!dump || !flags.master || !flags.user || !flags['password-file'] || !flags.server) throw new UsageError(USAGE);
    return await push(dump, flags as Required<PushFlags>);
  } catch (err) {
    if (err instanceof UsageError || err instanceof DumpUnreadableError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    if (err instanceof MupdateClientError) {
      process.stderr.write(`mupdated push: ${err.message}\n`);
      return 1;
    }
    if (err instanceof Error && err.name === 'DumpFormatError') {
      process.stderr.write(`mupdated push: cannot read the dump: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

async function push(dump: string, flags: Required<PushFlags>): Promise<number> {
  const window = flags.window ? Number(flags.window) : 64;
  if (!Number.isInteger(window) || window < 1) throw new UsageError('--window: a whole number >= 1');
  const password = readPasswordFile(flags['password-file']);
  const connect = () => {
    const at = parseHostPort(flags.master);
    let tls: ReturnType<typeof tlsOptions>;
    try {
      tls = tlsOptions(flags, at.host, 'if-offered');
    } catch (err) {
      if (err instanceof TlsFlagsError) throw new UsageError(`mupdated push: ${err.message}`);
      throw err;
    }
    return MupdateConnection.open({ host: at.host, port: at.port, user: flags.user, password, timeoutMs: 15_000, ...tls });
  };
  return pushDump(dump, {
    backend: flags.server,
    connect,
    window,
    dryRun: flags['dry-run'] === true,
    out: (line) => process.stdout.write(`${line}\n`),
  });
}
