/** The etcd client of a cluster node or tool, and the errors that say what is wrong with etcd. */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ExponentialBackoff, noop, type IBackoff } from 'cockatiel';
import { ClientRuntimeError, Etcd3, EtcdError, GRPCGenericError, type IOptions } from 'etcd3';
import { StorageError, StorageUnavailable } from '../types.js';

export interface EtcdSettings {
  endpoints: string[];
  prefix: string;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  /** How long a write may wait for a quorum before it is answered NO (etcd_write_timeout). */
  writeTimeoutMs: number;
}

/** etcd did not answer (no quorum, no member reachable, a timeout): the directory cannot be changed now. */
export class DirectoryUnavailable extends StorageUnavailable {}

/** What is stored under the prefix cannot be used by this version (a newer format, another order). */
export class ClusterMismatch extends StorageError {}

/** The TLS files or credentials for etcd are wrong: no retry helps, the operator must fix them. */
export class EtcdCredentialsError extends StorageError {}

/** Reads one TLS file and checks it holds what it should, so a wrong file is named at start. */
function tlsFile(path: string, flag: string, kind: 'certificate' | 'key'): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    throw new EtcdCredentialsError(`cannot read the etcd TLS file ${path} (${flag}): ${(err as Error).message}`);
  }
  try {
    if (kind === 'certificate') new X509Certificate(raw);
    else createPrivateKey(raw);
  } catch {
    throw new EtcdCredentialsError(`${path} (${flag}) is not a PEM ${kind === 'certificate' ? 'certificate' : 'private key'}`);
  }
  return raw;
}

export interface TlsFiles {
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
}

/** The TLS files the settings name, read and checked (none: plain http, or https with the system's CAs). */
export function readTlsFiles(s: EtcdSettings): TlsFiles {
  if (!s.ca && !s.cert && !s.key) return {};
  if (!s.ca) throw new EtcdCredentialsError("etcd TLS needs --etcd-ca (the CA that signed the members' certificates)");
  if (!!s.cert !== !!s.key) throw new EtcdCredentialsError('etcd client certificates need both --etcd-cert and --etcd-key');
  return {
    ca: tlsFile(s.ca, '--etcd-ca', 'certificate'),
    ...(s.cert && s.key ? { cert: tlsFile(s.cert, '--etcd-cert', 'certificate'), key: tlsFile(s.key, '--etcd-key', 'key') } : {}),
  };
}

// etcd3 calls next() on what it is given (as on its own default, a factory), though its type names the product.
const WATCH_BACKOFF = new ExponentialBackoff({ initialDelay: 100, maxDelay: 1_000 }) as unknown as IBackoff<unknown>;

export function etcdClient(s: EtcdSettings): Etcd3 {
  const options: IOptions = {
    hosts: s.endpoints,
    dialTimeout: Math.min(s.writeTimeoutMs, 5_000),
    // No automatic retries: a repeated transaction that had in fact committed would be
    // decided again against its own result. The write queue repeats a failed transaction
    // itself, unchanged, where its compares make the repeat safe (write-queue.ts, commit).
    // No per-host circuit breaker either: after an outage it would keep refusing a member
    // that is back for seconds. A lost watch reconnects within a second, not the library's
    // 30 s, so a node's view (and read-your-writes) follows soon after etcd returns.
    faultHandling: { global: noop, host: () => noop, watchBackoff: WATCH_BACKOFF },
  };
  const files = readTlsFiles(s);
  if (files.ca) {
    options.credentials = {
      rootCertificate: files.ca,
      ...(files.cert && files.key ? { certChain: files.cert, privateKey: files.key } : {}),
    };
  }
  return new Etcd3(options);
}

/** An error of the etcd client (no member reachable, no leader, refused) as DirectoryUnavailable; others unchanged. */
export function asUnavailable(err: unknown, what: string): unknown {
  if (err instanceof GRPCGenericError || err instanceof ClientRuntimeError || err instanceof EtcdError) {
    return new DirectoryUnavailable(`directory unavailable: etcd did not answer ${what}: ${err.message}`);
  }
  return err;
}

/**
 * Rejects with DirectoryUnavailable when `promise` takes longer than `ms`,
 * or fails in the etcd client (so callers tell "etcd is away" from a bug).
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DirectoryUnavailable(`directory unavailable: etcd did not answer ${what} within ${ms / 1000} s`)),
      ms,
    );
  });
  return Promise.race([
    promise.catch((err: unknown) => {
      throw asUnavailable(err, what);
    }),
    timeout,
  ]).finally(() => clearTimeout(timer));
}
