/**
 * A dump worker thread: reads the directory from its own LMDB read
 * transactions and encodes whole-directory dumps (LIST, UPDATE) into chunks,
 * so that serialising a million entries never stalls the server's event loop.
 * Several dumps share one worker, a chunk at a time each; a dump gets its next
 * chunk only after the server has written the previous ones (credit), so a
 * slow reader holds one read transaction and a few chunks, nothing more.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LmdbDirectoryStore } from '../store/lmdb-store.js';
import type { Snapshot } from '../store/types.js';
import { dumpChunks } from './dump-lines.js';
import type { ToWorker, FromWorker } from './dump-protocol.js';

interface Job {
  snapshot: Snapshot;
  chunks: Generator<Buffer>;
  credit: number;
}

const port = parentPort!;
const { dataDir } = workerData as { dataDir: string };
const store = LmdbDirectoryStore.open(dataDir, { readOnly: true });
const jobs = new Map<number, Job>();
let scheduled = false;

const post = (msg: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(msg, transfer);

function finish(id: number): void {
  const job = jobs.get(id);
  if (!job) return;
  jobs.delete(id);
  job.chunks.return(undefined);
  job.snapshot.close();
}

/** One chunk for each dump that has credit, then yield to incoming messages. */
function step(): void {
  scheduled = false;
  for (const [id, job] of jobs) {
    if (job.credit <= 0) continue;
    try {
      const next = job.chunks.next();
      if (next.done) {
        finish(id);
        post({ type: 'end', id });
        continue;
      }
      job.credit--;
      const chunk = next.value;
      // Chunks are fresh allocations of their own (never Node's shared pool), so their memory can move.
      const data = chunk.byteOffset === 0 && chunk.buffer.byteLength >= chunk.length && chunk.buffer.byteLength <= 2 * chunk.length + 65536
        ? chunk.buffer as ArrayBuffer : new Uint8Array(chunk).buffer;
      post({ type: 'chunk', id, data, length: chunk.length }, [data]);
    } catch (err) {
      finish(id);
      post({ type: 'error', id, message: (err as Error).message });
    }
  }
  schedule();
}

function schedule(): void {
  if (scheduled) return;
  for (const job of jobs.values()) {
    if (job.credit > 0) {
      scheduled = true;
      setImmediate(step);
      return;
    }
  }
}

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'start') {
    try {
      const snapshot = store.snapshot();
      const filter = {
        locationPrefix: msg.locationPrefix ? Buffer.from(msg.locationPrefix) : undefined,
        servers: msg.servers ? new Set(msg.servers) : undefined,
      };
      jobs.set(msg.id, { snapshot, chunks: dumpChunks(snapshot, Buffer.from(msg.tag), filter), credit: msg.credit });
      post({ type: 'begin', id: msg.id, seq: snapshot.seq });
    } catch (err) {
      post({ type: 'error', id: msg.id, message: (err as Error).message });
    }
  } else if (msg.type === 'ack') {
    const job = jobs.get(msg.id);
    if (job) job.credit++;
  } else if (msg.type === 'cancel') {
    finish(msg.id);
  } else if (msg.type === 'close') {
    for (const id of [...jobs.keys()]) finish(id);
    void store.close().then(() => port.close());
    return;
  }
  schedule();
});
