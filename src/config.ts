/**
 * Server settings: defaults, an imapd.conf-style file (`key: value` lines,
 * `#` comments) and command-line flags, in rising priority.
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { DEFAULT_LIMITS, type WireLimits } from './mupdate/wire/limits.js';
import type { EtcdSettings } from './store/etcd/connect.js';
import type { DirectoryOrder } from './store/types.js';
import type { StartTlsMode } from './mupdate/client/tls-policy.js';
import { LOG_LEVELS, type LogFormat } from './log.js';
import {
  ConfigError,
  DEFAULT_PORT,
  SASL_MECHANISMS,
  bool,
  fractionalSecondsMs,
  int,
  logFormat,
  mechanismList,
  parseHostPort,
  secondsMs,
  tlsVersions,
  wholeSeconds,
  type SaslMechanism,
  type TlsVersionRange,
} from './config-values.js';

export {
  ConfigError,
  DEFAULT_PORT,
  MAX_TIMER_SECONDS,
  SASL_MECHANISMS,
  TLS_VERSIONS,
  logFormat,
  parseHostPort,
  parseMasterList,
  type SaslMechanism,
  type TlsVersionName,
  type TlsVersionRange,
} from './config-values.js';

import type { HostPort } from './host-port.js';

export type { HostPort };

/** The longest failedloginpause accepted. */
const MAX_LOGIN_PAUSE_MS = 3600 * 1000;

export interface ServerConfig {
  listen: HostPort;
  dataDir: string;
  servername: string;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  /** TLS versions offered to STARTTLS clients (`tls_versions`, Cyrus's key). */
  tlsVersions: TlsVersionRange;
  /** OpenSSL cipher list for TLS 1.2 and older (`tls_ciphers`, Cyrus's key); unset: Node's default. */
  tlsCiphers?: string | undefined;
  /** `log_level`: fatal, error, warn, info, debug, trace or silent. */
  logLevel: string;
  /** `log_format`; unset: pretty on a terminal, else json. */
  logFormat?: LogFormat | undefined;
  /** A Cyrus imapd.conf to read first (`imapd_conf`, `--imapd-conf`). */
  imapdConf?: string | undefined;
  limits: WireLimits;
  maxConnections: number;
  idleTimeoutMs: number;
  /** Time from the banner to a successful login. */
  loginTimeoutMs: number;
  /** Connections one address may hold that have not logged in yet. */
  maxConnectionsPerHost: number;
  /** Largest command (and SASL line) before login, in bytes. */
  maxCommandBeforeLogin: number;
  /** BAD answers one connection may collect before it is closed. */
  maxBadCommands: number;
  failedLoginPauseMs: number;
  /** Failed AUTHENTICATEs before the connection is closed. */
  maxFailedLogins: number;
  /** Failed logins one address may make per minute, over all its connections. */
  maxFailedLoginsPerHost: number;
  /** PLAIN over a connection that is neither TLS nor loopback. */
  allowPlaintext: boolean;
  /** SASL mechanisms that may be offered (`sasl_mech_list`, Cyrus's key), strongest first. */
  saslMechanisms: SaslMechanism[];
  allowNonAdmins: boolean;
  admins: string[];
  saslauthdSocket?: string | undefined;
  order: DirectoryOrder;
  changeLogRetention: number;
  /** Most distinct pending names per UPDATE stream before it is dropped. */
  streamQueueLimit: number;
  /** A LIST or UPDATE dump whose reader takes nothing for this long is ended (`dump_stall_timeout`, seconds). */
  dumpStallTimeoutMs: number;
  /** Most bytes of pending changes per UPDATE stream before it is dropped. */
  streamQueueBytes: number;
  /** Worker threads for whole-directory dumps (LIST, UPDATE); 0 dumps in the server thread. */
  dumpWorkers: number;
  /** A dump worker with no dump for this long exits, freeing its memory (`dump_worker_idle`, seconds; 0: never). */
  dumpWorkerIdleMs: number;
  /** Bytes buffered for a socket before we stop writing to it and queue instead. */
  socketHighWater: number;
  /** How long a verified password is remembered (`auth_cache_seconds`); 0 verifies every login. */
  authCacheTtlMs: number;
  /** Duplicate-mailbox claims: `queue` for an operator (default) or `cyrus` (last writer wins). */
  conflictPolicy: 'queue' | 'cyrus';
  /** Slave mode: the master to follow and how to log in there (Cyrus's option names). */
  upstream: UpstreamConfig;
  /** Cluster mode: the directory in etcd (spec cluster.md); unset: LMDB alone. */
  etcd: EtcdConfig;
  /** Where /metrics, /healthz and /readyz are served (`metrics_listen`); unset: not at all. */
  metricsListen?: HostPort | undefined;
  /** Slave on a Cyrus frontend: the frontend's sqlite mailboxes database and kick socket. */
  frontend: { db?: string | undefined; kickSocket?: string | undefined };
}

export interface UpstreamConfig {
  server?: string | undefined;
  authname?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  retryDelaySeconds: number;
  /** Connect, banner and login toward the master (`client_timeout`, Cyrus's key; at least the retry delay). */
  connectTimeoutSeconds: number;
  dumpTimeoutSeconds: number;
  resume: boolean;
  /** Unset: required toward a master not on loopback, if-offered on loopback. */
  starttls?: StartTlsMode | undefined;
  tlsInsecure: boolean;
  /** PEM file of the CA(s) to trust for the master's certificate instead of the system's. */
  tlsCa?: string | undefined;
}

/** The etcd_* keys: exactly what the etcd client takes. */
export type EtcdConfig = EtcdSettings;

export function defaultConfig(): ServerConfig {
  return {
    listen: { host: '127.0.0.1', port: DEFAULT_PORT },
    dataDir: './data',
    servername: 'mupdated',
    tlsVersions: { min: 'tls1_2', max: 'tls1_3' },
    logLevel: 'info',
    limits: { ...DEFAULT_LIMITS },
    maxConnections: 4096,
    idleTimeoutMs: 3 * 3600 * 1000,
    loginTimeoutMs: 60 * 1000,
    maxConnectionsPerHost: 256,
    maxCommandBeforeLogin: 4096,
    maxBadCommands: 1000,
    failedLoginPauseMs: 3000,
    maxFailedLogins: 10,
    maxFailedLoginsPerHost: 60,
    allowPlaintext: false,
    saslMechanisms: [...SASL_MECHANISMS],
    allowNonAdmins: false,
    admins: [],
    order: 'cyrus',
    changeLogRetention: 1_000_000,
    streamQueueLimit: 200_000,
    dumpStallTimeoutMs: 60_000,
    streamQueueBytes: 8 * 1024 * 1024,
    // One core stays free for the event loop: writers wait least while slaves resync.
    dumpWorkers: Math.max(1, Math.min(4, availableParallelism() - 1)),
    dumpWorkerIdleMs: 30_000,
    socketHighWater: 4 * 1024 * 1024,
    authCacheTtlMs: 10 * 60 * 1000,
    conflictPolicy: 'queue',
    etcd: { endpoints: [], prefix: '/mupdated/', writeTimeoutMs: 5_000 },
    frontend: {},
    upstream: { retryDelaySeconds: 20, connectTimeoutSeconds: 10, dumpTimeoutSeconds: 120, resume: true, tlsInsecure: false },
  };
}

/** Reads `key: value` lines into a map (keys lower-cased). */
export function readConfigFile(path: string): Map<string, string> {
  const out = new Map<string, string>();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    const m = /^([A-Za-z0-9_.-]+)\s*:\s*(.*)$/.exec(t);
    if (!m) throw new ConfigError(`${path}:${i + 1}: expected 'key: value'`);
    out.set(m[1].toLowerCase(), m[2]);
  });
  return out;
}

/** Applies file settings onto a config. Unknown keys are errors, so typos never go unnoticed. */
export function applySettings(config: ServerConfig, settings: Map<string, string>, ignore: readonly string[] = []): void {
  for (const [key, v] of settings) {
    switch (key) {
      case 'listen':
        config.listen = parseHostPort(v);
        break;
      case 'data':
      case 'data_dir':
        config.dataDir = v;
        break;
      case 'servername':
        config.servername = v;
        break;
      case 'tls_server_cert':
      case 'tls_cert':
        config.tlsCert = v;
        break;
      case 'tls_server_key':
      case 'tls_key':
        config.tlsKey = v;
        break;
      case 'tls_versions':
        config.tlsVersions = tlsVersions(key, v);
        break;
      case 'tls_ciphers':
        config.tlsCiphers = v;
        break;
      case 'log_level':
        if (!(LOG_LEVELS as readonly string[]).includes(v))
          throw new ConfigError(`${key}: expected one of ${LOG_LEVELS.join(' ')}, got '${v}'`);
        config.logLevel = v;
        break;
      case 'log_format':
        config.logFormat = logFormat(key, v);
        break;
      case 'imapd_conf':
        config.imapdConf = v;
        break;
      case 'client_timeout':
        config.upstream.connectTimeoutSeconds = wholeSeconds(key, v, 1);
        break;
      case 'admins':
        config.admins = v.split(/[\s,]+/).filter(Boolean);
        break;
      case 'allowplaintext':
        config.allowPlaintext = bool(key, v);
        break;
      case 'sasl_mech_list':
        config.saslMechanisms = mechanismList(key, v);
        break;
      case 'allow_non_admins':
        config.allowNonAdmins = bool(key, v);
        break;
      case 'saslauthd_socket':
        config.saslauthdSocket = v;
        break;
      case 'mupdate_connections_max':
      case 'max_connections':
        config.maxConnections = int(key, v, 1);
        break;
      case 'idle_timeout':
        config.idleTimeoutMs = secondsMs(key, v, 900);
        break;
      case 'max_bad_commands':
        config.maxBadCommands = int(key, v, 1);
        break;
      case 'failedloginpause':
      case 'failed_login_pause':
        config.failedLoginPauseMs = Math.round(Number(v) * 1000);
        break;
      case 'max_failed_logins':
        config.maxFailedLogins = int(key, v, 1);
        break;
      case 'max_failed_logins_per_host':
        config.maxFailedLoginsPerHost = int(key, v, 1);
        break;
      case 'login_timeout':
        config.loginTimeoutMs = secondsMs(key, v, 1);
        break;
      case 'max_connections_per_host':
        config.maxConnectionsPerHost = int(key, v, 1);
        break;
      case 'max_command_before_login':
        config.maxCommandBeforeLogin = int(key, v, 512);
        break;
      case 'directory_order':
        if (v !== 'cyrus' && v !== 'bytes') throw new ConfigError(`${key}: expected cyrus or bytes`);
        config.order = v;
        break;
      case 'improved_mboxlist_sort':
        config.order = bool(key, v) ? 'cyrus' : 'bytes';
        break;
      case 'change_log_retention':
        config.changeLogRetention = int(key, v, 1);
        break;
      case 'stream_queue_limit':
        config.streamQueueLimit = int(key, v, 1);
        break;
      case 'dump_stall_timeout':
        config.dumpStallTimeoutMs = secondsMs(key, v, 1);
        break;
      case 'stream_queue_bytes':
        config.streamQueueBytes = int(key, v, 4096);
        break;
      case 'dump_workers':
        config.dumpWorkers = Math.min(int(key, v, 0), 16);
        break;
      case 'dump_worker_idle':
        config.dumpWorkerIdleMs = secondsMs(key, v, 0);
        break;
      case 'max_string':
        config.limits.maxString = int(key, v, 1024);
        break;
      case 'max_command':
        config.limits.maxCommand = int(key, v, 4096);
        break;
      case 'auth_cache_seconds':
        config.authCacheTtlMs = secondsMs(key, v, 0);
        break;
      case 'conflict_policy':
        if (v !== 'queue' && v !== 'cyrus') throw new ConfigError(`${key}: expected queue or cyrus`);
        config.conflictPolicy = v;
        break;
      case 'mupdate_server':
        config.upstream.server = v;
        break;
      case 'mupdate_authname':
        config.upstream.authname = v;
        break;
      case 'mupdate_username':
        config.upstream.username = v;
        break;
      case 'mupdate_password':
        config.upstream.password = v;
        break;
      case 'mupdate_retry_delay':
        config.upstream.retryDelaySeconds = wholeSeconds(key, v, 0);
        break;
      case 'slave_dump_timeout':
        config.upstream.dumpTimeoutSeconds = wholeSeconds(key, v, 1);
        break;
      case 'slave_resume':
        config.upstream.resume = bool(key, v);
        break;
      case 'slave_starttls':
        if (v !== 'never' && v !== 'if-offered' && v !== 'required')
          throw new ConfigError(`${key}: expected never, if-offered or required`);
        config.upstream.starttls = v;
        break;
      case 'slave_tls_insecure':
        config.upstream.tlsInsecure = bool(key, v);
        break;
      case 'metrics_listen':
        config.metricsListen = parseHostPort(v);
        break;
      case 'frontend_db':
        config.frontend.db = v;
        break;
      case 'kick_socket':
        config.frontend.kickSocket = v;
        break;
      case 'etcd_endpoints':
        config.etcd.endpoints = v.split(/[\s,]+/).filter(Boolean);
        break;
      case 'etcd_prefix':
        config.etcd.prefix = v;
        break;
      case 'etcd_ca':
        config.etcd.ca = v;
        break;
      case 'etcd_cert':
        config.etcd.cert = v;
        break;
      case 'etcd_key':
        config.etcd.key = v;
        break;
      case 'etcd_write_timeout':
        config.etcd.writeTimeoutMs = fractionalSecondsMs(key, v);
        break;
      case 'slave_tls_ca':
        config.upstream.tlsCa = v;
        break;
      default:
        if (!ignore.includes(key)) throw new ConfigError(`unknown setting '${key}'`);
    }
  }
  if (!(config.etcd.writeTimeoutMs > 0)) throw new ConfigError('etcd_write_timeout: expected seconds > 0');
  // A timer longer than 2^31-1 ms would fire at once: an hour is already more than any login needs.
  if (!(config.failedLoginPauseMs >= 0 && config.failedLoginPauseMs <= MAX_LOGIN_PAUSE_MS)) {
    throw new ConfigError(`failedloginpause: expected seconds from 0 to ${MAX_LOGIN_PAUSE_MS / 1000}`);
  }
}
