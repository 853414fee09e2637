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
import { dumpChunks, DUMP_CHUNK_BYTES } from './dump-lines.js';
import type { ToWorker, FromWorker } from './dump-protocol.js';
import { niceThisThread } from './thread-priority.js';

interface Job {
  snapshot: Snapshot;
  chunks: Generator<Buffer>;
  credit: number;
}

/**
 * Dumps yield the CPU to the event loop that answers writes: on two cores a
 * writer's latency otherwise rises with every dump running.
 */
const DUMP_WORKER_NICE = 10;

const port = parentPort!;
niceThisThread(DUMP_WORKER_NICE);
const { dataDir } = workerData as { dataDir: string };
const store = LmdbDirectoryStore.open(dataDir, { mustExist: true, readOnly: true });
const jobs = new Map<number, Job>();
/**
 * Chunk memory handed back by the server thread. Without reuse every chunk is
 * a fresh 256 KiB malloc freed by another thread, and glibc's arenas keep
 * tens of MB per worker that the process never gets back.
 */
const spare: ArrayBuffer[] = [];
const MAX_SPARE = 16;
const allocate = (size: number): Buffer => {
  if (size === DUMP_CHUNK_BYTES && spare.length) return Buffer.from(spare.pop()!);
  return Buffer.allocUnsafeSlow(size);
};
let scheduled = false;

const post = (msg: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(msg, transfer);
post({ type: 'ready' });

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
      // A nearly empty last chunk is copied out; its full-size memory stays here for the next dump.
      const whole = chunk.byteOffset === 0 && chunk.length * 4 >= chunk.buffer.byteLength;
      const data = whole ? (chunk.buffer as ArrayBuffer) : new Uint8Array(chunk).buffer;
      if (!whole && chunk.buffer.byteLength === DUMP_CHUNK_BYTES && spare.length < MAX_SPARE) spare.push(chunk.buffer as ArrayBuffer);
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
      jobs.set(msg.id, { snapshot, chunks: dumpChunks(snapshot, Buffer.from(msg.tag), filter, allocate), credit: msg.credit });
      post({ type: 'begin', id: msg.id, seq: snapshot.seq });
    } catch (err) {
      post({ type: 'error', id: msg.id, message: (err as Error).message });
    }
  } else if (msg.type === 'ack') {
    const job = jobs.get(msg.id);
    if (job) job.credit++;
  } else if (msg.type === 'recycle') {
    if (msg.data.byteLength === DUMP_CHUNK_BYTES && spare.length < MAX_SPARE) spare.push(msg.data);
    return;
  } else if (msg.type === 'cancel') {
    finish(msg.id);
  } else if (msg.type === 'close') {
    for (const id of [...jobs.keys()]) finish(id);
    void store.close().then(() => port.close());
    return;
  }
  schedule();
});
