/** The etcd client of a cluster node or tool, and the errors that say what is wrong with etcd. */
import { readFileSync } from 'node:fs';
import { noop } from 'cockatiel';
import { Etcd3, type IOptions } from 'etcd3';
import { StorageError } from '../types.js';

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
export class DirectoryUnavailable extends StorageError {}

/** What is stored under the prefix cannot be used by this version (a newer format, another order). */
export class ClusterMismatch extends StorageError {}

export function etcdClient(s: EtcdSettings): Etcd3 {
  const options: IOptions = {
    hosts: s.endpoints,
    dialTimeout: Math.min(s.writeTimeoutMs, 5_000),
    // No automatic retries: a repeated transaction that had in fact committed would be
    // decided again against its own result. The write queue retries what is safe to.
    faultHandling: { global: noop },
  };
  if (s.ca || s.cert || s.key) {
    if (!s.ca) throw new StorageError('etcd TLS needs --etcd-ca (the CA that signed the members\' certificates)');
    if (!!s.cert !== !!s.key) throw new StorageError('etcd client certificates need both --etcd-cert and --etcd-key');
    try {
      options.credentials = {
        rootCertificate: readFileSync(s.ca),
        ...(s.cert && s.key ? { certChain: readFileSync(s.cert), privateKey: readFileSync(s.key) } : {}),
      };
    } catch (err) {
      throw new StorageError(`cannot read the etcd TLS files: ${(err as Error).message}`);
    }
  }
  return new Etcd3(options);
}

/** Parses `--etcd URL[,URL...]`: http(s)://host:port or host:port. */
export function parseEndpoints(value: string): string[] {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!list.length) throw new StorageError('--etcd needs at least one endpoint (http://host:port)');
  return list.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`));
}

/** Rejects with DirectoryUnavailable when `promise` takes longer than `ms`. */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DirectoryUnavailable(`directory unavailable: etcd did not answer ${what} within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
