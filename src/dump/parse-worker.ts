/**
 * The thread that reads and parses a dump (a file, or standard input) for `mupdated load`, so that
 * parsing runs on one core while the directory writes on the other. It sends
 * packed batches (packed-batch.ts) and stays at most MAX_AHEAD batches ahead
 * of the commits, so a large dump never piles up in memory.
 */
import { createReadStream } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { DumpRecordReader } from './dump-reader.js';
import { BatchPacker } from './packed-batch.js';
import type { FromParser, ToParser } from './parse-protocol.js';
import { toThreadError } from './thread-error.js';

const MAX_AHEAD = 2;
const port = parentPort!;
/** `source`: a file's path, or `-` for standard input. */
const { source, batchSize } = workerData as { source: string; batchSize: number };

let ahead = 0;
let wake: (() => void) | null = null;
port.on('message', (msg: ToParser) => {
  if (msg.type !== 'ack') return;
  ahead--;
  wake?.();
  wake = null;
});

const post = (msg: FromParser, transfer?: ArrayBuffer[]) => port.postMessage(msg, transfer);

async function parse(): Promise<void> {
  const packer = new BatchPacker();
  let skipped = 0;
  const send = () => {
    const data = packer.take();
    post({ type: 'batch', data, skipped }, [data]);
    skipped = 0;
    ahead++;
  };
  const reader = new DumpRecordReader((record) => {
    if (!record.entry) return void skipped++;
    packer.add(record.entry);
    if (packer.count >= batchSize) send();
  });
  // Standard input is read through its descriptor: process.stdin belongs to the main thread.
  const input = source === '-' ? createReadStream('', { fd: 0, autoClose: false }) : createReadStream(source, { highWaterMark: 1 << 20 });
  for await (const chunk of input) {
    reader.push(chunk as Buffer);
    while (ahead >= MAX_AHEAD) await new Promise<void>((resolve) => (wake = resolve));
  }
  reader.end();
  if (packer.count > 0) send();
  post({ type: 'end', skipped });
}

parse().catch((err: unknown) => post({ type: 'error', error: toThreadError(err) }));
