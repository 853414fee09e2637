/**
 * The by-server index's keys (see lmdb-databases.ts) and the scan filters
 * (spec 4.3: a location's server part is the bytes before its first `!`).
 */
import { createHash } from 'node:crypto';
import type { Entry, ScanFilter } from './types.js';

/** A by-server key: the server part itself, or for an empty or long one 0x00 + its SHA-256 (no real server part starts with 0x00). */
function serverBucket(server: Buffer): Buffer {
  if (server.length > 0 && server.length <= 255 && server[0] !== 0) return server;
  return Buffer.concat([Buffer.of(0), createHash('sha256').update(server).digest()]);
}

/** The by-server key of an entry: its server part (spec 4.3), the bytes before the first `!` or all of the location. Exported for tests. */
export function bucketOf(location: Buffer): Buffer {
  const bang = location.indexOf(0x21);
  return serverBucket(bang < 0 ? location : location.subarray(0, bang));
}

/**
 * The one by-server bucket that holds every entry a filter can pass, if
 * there is one: a single server, or a location prefix with a `!` (its server
 * part is fixed). The filter itself is still applied to every entry read.
 */
export function filterBucket(filter: ScanFilter | undefined): Buffer | null {
  if (filter?.servers?.size === 1) {
    for (const server of filter.servers) return serverBucket(Buffer.from(server, 'latin1'));
  }
  const prefix = filter?.locationPrefix;
  if (prefix) {
    const bang = prefix.indexOf(0x21);
    if (bang >= 0) return serverBucket(prefix.subarray(0, bang));
  }
  return null;
}

/** A location's server part as text (latin1). */
export function serverOf(location: Buffer): string {
  const bang = location.indexOf(0x21);
  return location.toString('latin1', 0, bang < 0 ? location.length : bang);
}

/** Whether an entry passes a scan filter's location prefix and server set. */
export function passes(view: Entry, prefix: Buffer | undefined, servers: ReadonlySet<string> | undefined): boolean {
  if (prefix && (view.location.length < prefix.length || prefix.compare(view.location, 0, prefix.length) !== 0)) return false;
  return !servers || servers.has(serverOf(view.location));
}
