/**
 * A directory dump (LIST, UPDATE) as wire chunks: every entry of a snapshot
 * that passes the filter, as `MAILBOX`/`RESERVE` lines under one tag, encoded
 * straight into chunks of about `chunkSize` bytes. Runs in the server's
 * thread or in a dump worker (dump-worker.ts); both give the same bytes.
 */
import type { DirectoryStore, ScanFilter, Snapshot } from '../store/types.js';
import { ChunkEncoder, type ChunkAllocator } from './wire/chunk-encoder.js';

export const DUMP_CHUNK_BYTES = 256 * 1024;

export function* dumpChunks(
  snapshot: Snapshot,
  tag: Buffer,
  filter: ScanFilter,
  allocate?: ChunkAllocator,
  chunkSize = DUMP_CHUNK_BYTES,
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

/** What a dump's reader does with it. */
export interface DumpConsumer {
  /** The dump is of the snapshot that holds every change up to `seq`; called before the first chunk. */
  begin(seq: number): void;
  /**
   * Writes a chunk; resolves when the next may come (the socket has room).
   * Calls `release` once the chunk's bytes have left (its memory may be reused).
   */
  chunk(data: Buffer, release: () => void): Promise<void> | void;
  /** True once the reader is gone: the dump is stopped. */
  isCancelled(): boolean;
}

/** Where LIST and UPDATE dumps are made: worker threads (dump-pool.ts) or this thread. */
export interface DumpSource {
  /** Streams one dump to `consumer`; resolves when the last chunk has been written (or the reader left). */
  dump(tag: Buffer, filter: ScanFilter, consumer: DumpConsumer): Promise<void>;
  /** Gets ready for a first dump ahead of time (dump workers start); settles once a dump would start at once. */
  warm(): Promise<void>;
  /** Whether worker threads have the directory file open (it stays mapped while one does). */
  readonly threadsOpen: boolean;
  close(): Promise<void>;
}

/** Dumps in the server's own thread (`dump_workers: 0`), a chunk per event turn. */
export class InThreadDumps implements DumpSource {
  constructor(private readonly store: DirectoryStore) {}

  async dump(tag: Buffer, filter: ScanFilter, consumer: DumpConsumer): Promise<void> {
    const snapshot = this.store.snapshot();
    try {
      consumer.begin(snapshot.seq);
      for (const chunk of dumpChunks(snapshot, tag, filter)) {
        if (consumer.isCancelled()) return;
        await consumer.chunk(chunk, () => {});
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      snapshot.close();
    }
  }

  warm(): Promise<void> {
    return Promise.resolve();
  }

  readonly threadsOpen = false;

  async close(): Promise<void> {}
}
