/**
 * Parsing `--etcd` endpoints, apart from the etcd client: a master without
 * etcd loads none of etcd3, gRPC and protobufjs (a quarter of its start-up).
 */
import { StorageError } from '../types.js';

/** Parses `--etcd URL[,URL...]`: http(s)://host:port or host:port. */
export function parseEndpoints(value: string): string[] {
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!list.length) throw new StorageError('--etcd needs at least one endpoint (http://host:port)');
  return list.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`));
}
