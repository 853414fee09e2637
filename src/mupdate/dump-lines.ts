/**
 * A directory dump (LIST, UPDATE) as wire chunks: every entry of a snapshot
 * that passes the filter, as `MAILBOX`/`RESERVE` lines under one tag, encoded
 * straight into chunks of about `chunkSize` bytes. Runs in the server's
 * thread or in a dump worker (dump-worker.ts); both give the same bytes.
 */
import type { ScanFilter, Snapshot } from '../store/types.js';
import { ChunkEncoder, type ChunkAllocator } from './wire/chunk-encoder.js';

export const DUMP_CHUNK_BYTES = 256 * 1024;

export function* dumpChunks(
  snapshot: Snapshot, tag: Buffer, filter: ScanFilter, allocate?: ChunkAllocator, chunkSize = DUMP_CHUNK_BYTES,
): Generator<Buffer> {
  const ready: Buffer[] = [];
  const encoder = new ChunkEncoder(chunkSize, (chunk) => ready.push(chunk), allocate);
  for (const e of snapshot.scan(filter)) {
    if (e.state === 'active') encoder.line(tag, 'MAILBOX', e.name, e.location, e.acl);
    else encoder.line(tag, 'RESERVE', e.name, e.location);
    while (ready.length) yield ready.shift()!;
  }
  encoder.flush();
  while (ready.length) yield ready.shift()!;
}
