/**
 * What a connection is configured with: the server's role (master or slave)
 * and the settings every session shares. Commands read these; only the
 * server and the CLI build them.
 */
import type { SecureContext } from 'node:tls';
import type { Logger } from '../log.js';
import type { Authenticator } from '../sasl/authenticator.js';
import type { DirectoryStore } from '../store/types.js';
import type { Admission } from './admission.js';
import type { ConflictPolicy } from './directory-rules.js';
import type { DumpSource } from './dump-lines.js';
import type { WireLimits } from './wire/limits.js';

export type Role =
  | { kind: 'master' }
  | {
      kind: 'slave';
      /** The configured master, shown in the banner as `mupdate://<master>`. */
      master: string;
      /** Resolves once the slave has flushed from its own master (NOOP fan-out, spec 3.10). */
      syncWithMaster(): Promise<void>;
      /** Resolves once the copy is complete; until then clients get no banner (spec 6.6, C65). */
      ready: Promise<void>;
      isReady(): boolean;
    };

export interface SessionSettings {
  servername: string;
  limits: WireLimits;
  idleTimeoutMs: number;
  /** Time a connection has from its banner to a successful login. */
  loginTimeoutMs: number;
  /** Largest command (and SASL line) accepted before login, in bytes. */
  maxCommandBeforeLogin: number;
  maxBadCommands: number;
  failedLoginPauseMs: number;
  maxFailedLogins: number;
  allowPlaintext: boolean;
  streamQueueLimit: number;
  streamQueueBytes: number;
  socketHighWater: number;
  /** A LIST or UPDATE dump whose reader takes nothing for this long is ended. */
  dumpStallTimeoutMs: number;
  conflictPolicy: ConflictPolicy;
}

/** What the server gives each connection; `S` is the session (session.ts names it, avoiding an import cycle). */
export interface SessionDeps<S> {
  settings: SessionSettings;
  store: DirectoryStore;
  auth: Authenticator;
  log: Logger;
  role: Role;
  tls?: SecureContext | undefined;
  /** Where whole-directory dumps (LIST, UPDATE) are made: worker threads or this thread. */
  dumps: DumpSource;
  /** Per-address limits; the server took a not-logged-in slot of `host` for this connection. */
  admission: Admission;
  /** Called once when the connection is gone. */
  ended(session: S): void;
}

/** The session's own answers (each command's are in its module). */
export const SESSION_TEXTS = {
  unrecognized: 'Unrecognized command',
  pleaseLogin: 'Please login first',
  streaming: 'not legal when streaming',
  readOnly: 'read-only session',
} as const;
