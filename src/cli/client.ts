/**
 * `mupdated client`: a MUPDATE client for people debugging a Murder (ours or
 * Cyrus's). Interactive on a terminal (history, completion, automatic tags,
 * readable rows, `watch`), line-by-line scripted otherwise.
 *
 * This file reads the flags; the client itself is in src/client/ (session.ts,
 * repl.ts, scripted.ts) on the protocol client of src/mupdate/client/.
 */
import { userInfo } from 'node:os';
import { ConfigError, DEFAULT_PORT, MAX_TIMER_SECONDS, parseHostPort, type HostPort } from '../config.js';
import { isLoopbackHost } from '../mupdate/client/tls-policy.js';
import { ConnectionProblem, Interrupted, UsageError } from '../client/errors.js';
import { askPassword, readPasswordFile } from '../client/password.js';
import { colourWanted, type Style } from '../client/render.js';
import { interactive } from '../client/repl.js';
import { scripted } from '../client/scripted.js';
import { ClientSession, type ClientFlags, type Output } from '../client/session.js';
import { tlsOptions, TlsFlagsError } from '../client/tls-flags.js';

export type { ClientFlags };

export const CLIENT_USAGE = `usage: mupdated client [HOST[:PORT]] [--user NAME] [--password-file FILE] [--starttls [--tls-insecure]]
                       [--tls-ca FILE] [--plaintext] [--raw] [--json] [--timeout SECONDS]
  Talks MUPDATE to a master or slave (default 127.0.0.1:${DEFAULT_PORT}), logging in as NAME (SCRAM-SHA-256 or PLAIN)
  (default: your login name). Without --password-file it asks for the password (not echoed).
  On a terminal: a prompt with history (~/.mupdated_history, or $MUPDATED_HISTORY), Tab completion,
  and these commands (arguments typed plainly, quoted when they contain spaces; type help):
    find NAME | list [PREFIX] | stats [PREFIX] | activate NAME LOCATION "ID RIGHTS ..." |
    reserve NAME LOCATION | deactivate NAME LOCATION | delete NAME | noop |
    watch [--dump] [--count N] [HOST ...] | raw TAG COMMAND ... | help | quit
  Otherwise it reads the same commands from standard input, one per line.
  --starttls     require STARTTLS (the certificate and its name are checked); toward a server not on
                 loopback it is required anyway
  --tls-ca FILE  trust the CA certificate(s) in FILE (PEM) instead of the system's
  --tls-insecure do not check the server's certificate
  --plaintext    no TLS, even toward a server not on loopback (the password crosses in clear)
  --raw          also show every protocol line sent (C:) and received (S:)
  --json         one JSON object per response (byte strings escaped as \\t \\\\ \\xNN)
  --timeout S    how long to wait for the server (connect, login, each response line; default 30)
  Colour on a terminal unless NO_COLOR is set.
  Exit status with commands from standard input: 0 every command answered OK; 1 some command got
  NO or BAD or could not be parsed; 2 usage error or connection problem (refused, TLS failure,
  login refused, connection closed or timed out).
`;

export async function runClient(positionals: string[], flags: ClientFlags): Promise<number> {
  // Node warns (DEP0123) when TLS is started towards an IP address; that is no news to a person here.
  process.noDeprecation = true;
  const scriptedMode = !process.stdin.isTTY;
  const style: Style = { color: colourWanted(process.stdout.isTTY, process.env) };
  let current: Output = {
    line: (t) => process.stdout.write(`${t}\n`),
    note: (t) => (scriptedMode ? process.stderr : process.stdout).write(`${t}\n`),
  };
  const out: Output = { line: (t) => current.line(t), note: (t) => current.note(t) };
  try {
    if (positionals.length > 1) throw new UsageError(CLIENT_USAGE);
    let target: HostPort;
    try {
      target = parseHostPort(positionals[0] ?? `127.0.0.1:${DEFAULT_PORT}`, DEFAULT_PORT);
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(`${err.message} (give HOST:PORT, e.g. 127.0.0.1:${DEFAULT_PORT})`);
      throw err;
    }
    const timeout = flags.timeout === undefined ? 30 : Number(flags.timeout);
    if (!(timeout > 0 && timeout <= MAX_TIMER_SECONDS)) throw new UsageError(`--timeout: seconds above 0, at most ${MAX_TIMER_SECONDS}`);
    if (flags['tls-insecure'] && !flags.starttls && isLoopbackHost(target.host)) {
      throw new UsageError('--tls-insecure goes with --starttls');
    }
    try {
      tlsOptions(flags, target.host, 'never');
    } catch (err) {
      if (err instanceof TlsFlagsError) throw new UsageError(err.message);
      throw err;
    }
    const file = flags['password-file'];
    let fixed: string | null = null;
    try {
      if (file !== undefined) fixed = readPasswordFile(file);
    } catch (err) {
      throw new UsageError(`cannot read the password file: ${(err as Error).message}`);
    }
    const user = flags.user ?? userInfo().username;
    const passwordSource = async () => fixed ?? askPassword(`password for ${user} at ${positionals[0] ?? `127.0.0.1:${DEFAULT_PORT}`}: `);
    const session = new ClientSession(target, flags, style, out, !scriptedMode, timeout * 1000, passwordSource);
    await session.connect();
    if (scriptedMode) return await scripted(session, out, !!flags.json);
    return await interactive(session, session.where, (o) => {
      current = o;
    });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(err.message.endsWith('\n') ? err.message : `mupdated client: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ConnectionProblem || err instanceof Interrupted) {
      process.stderr.write(`mupdated client: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
