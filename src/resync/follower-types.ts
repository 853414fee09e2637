/** What a slave's follower is given, and what it reports (status.json, metrics). */
import type { Logger } from '../log.js';
import type { HostPort } from '../host-port.js';
import type { SlaveLag } from '../metrics/slave-lag.js';
import type { ClientOptions } from '../mupdate/client/connection.js';
import type { DirectoryStore } from '../store/types.js';

export interface FollowerOptions {
  upstream: Omit<ClientOptions, 'timeoutMs' | 'host' | 'port'>;
  /** The masters to follow, tried in this order at every connect (cluster nodes serving one directory). */
  masters: HostPort[];
  /** Seconds of silence before a keep-alive NOOP, and the base reconnect delay (mupdate_retry_delay). */
  retryDelaySeconds: number;
  /** Longest wait for the next line of a dump before it is abandoned. */
  dumpTimeoutMs: number;
  /** Connect, banner and login toward a master (`client_timeout`); the retry delay if that is longer. Default 10 s. */
  connectTimeoutMs?: number | undefined;
  /** Ask a mupdated master for changes only (XRESUME). */
  resume: boolean;
  store: DirectoryStore;
  log: Logger;
  /** Where status.json is written (the data folder). */
  statusFile?: string | undefined;
  /** How far behind it is, for the metrics. */
  lag: SlaveLag;
}

export interface FollowerStatus {
  state: 'starting' | 'connecting' | 'syncing' | 'streaming' | 'waiting' | 'stopped';
  connected: boolean;
  /** The master connected to (or, before the first connect, the first of the list). */
  master: string;
  masterKind: 'mupdated' | 'cyrus' | null;
  lastFullSync: string | null;
  lastSyncKind: 'full' | 'incremental' | null;
  /** Records received by the last incremental resume (what the master sent, counted on the wire). */
  lastResumeRecords: number | null;
  lastAppliedChange: string | null;
  upstreamSeq: number | null;
  entries: number | null;
  lastError: string | null;
}
