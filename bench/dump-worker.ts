/**
 * The dumpers of activateDuringDumps and resyncDuringWrites
 * (dump-workloads.ts), run in a worker thread: each reads full UPDATE dumps,
 * up to maxRounds of them (log in, UPDATE, read to "streaming starts",
 * disconnect), so that their parsing does not stall the main thread's event
 * loop, where the writer whose latency is measured runs.
 *
 * The writer's counters come through shared memory (an Int32Array over a
 * SharedArrayBuffer, laid out as DUMP_COUNTERS): how many ACTIVATEs were
 * acknowledged (read as a dump starts: the least it must hold) and issued
 * (read once it ends: the most it may hold), and the stop flag. The main
 * thread also posts `{ type: 'stop' }` so that dumps in progress are cut off
 * at once. The worker answers `ready` once the dumpers run and `done` (dump
 * counts, wrong answers, a dumper's failure) once they have all stopped.
 *
 * Loaded as a worker, this module must not import anything that imports
 * `ava`: the main thread's module hook for it (run.ts) does not apply here.
 * The main thread imports it too, for the layout and the message types.
 */
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { MupdateConn, ProtocolError } from './client.js';
import { expectOk, WrongAnswer } from './measure.js';

/** Indices into the shared Int32Array. */
export const DUMP_COUNTERS = { stop: 0, acked: 1, issued: 2, length: 3 } as const;

export interface DumpWorkerData {
  port: number;
  user: string;
  password: string;
  /** Preloaded entries (a dump holds these and the writer's). */
  entries: number;
  /** The last preloaded name: the last entry of every dump. */
  lastName: string;
  /** Names the writer activates start with this. */
  writerPrefix: string;
  dumpers: number;
  /** Bound on each dumper's rounds. */
  maxRounds: number;
  /** DUMP_COUNTERS.length Int32 slots. */
  counters: SharedArrayBuffer;
}

export interface SerializedError {
  kind: 'WrongAnswer' | 'ProtocolError' | 'Error';
  message: string;
  stack: string | undefined;
}

export type ToDumpWorker = { type: 'stop' };

export interface DumpsDone {
  type: 'done';
  /** Completed dumps of each dumper. */
  dumps: number[];
  /** The first few wrong dumps (wrongCount in all). */
  wrong: string[];
  wrongCount: number;
  /** The first dumper that failed other than by being stopped (the others carried on). */
  error: SerializedError | null;
  /** From the dumpers' start until the last of them stopped (ms, this thread's clock). */
  elapsedMs: number;
}

export type FromDumpWorker = { type: 'ready' } | DumpsDone;

export function serializeError(e: unknown): SerializedError {
  const err = e instanceof Error ? e : new Error(String(e));
  const kind = err instanceof WrongAnswer ? 'WrongAnswer' : err instanceof ProtocolError ? 'ProtocolError' : 'Error';
  return { kind, message: err.message, stack: err.stack };
}

/** The error a dumper failed with, as the same class on this side. */
export function deserializeError(s: SerializedError): Error {
  const e =
    s.kind === 'WrongAnswer'
      ? new WrongAnswer(s.message)
      : s.kind === 'ProtocolError'
        ? new ProtocolError(s.message)
        : new Error(s.message);
  if (s.stack) e.stack = `${s.stack}\n    (in the dump worker thread)`;
  return e;
}

/** buf[start, end) begins with prefix. */
function startsWith(buf: Buffer, start: number, end: number, prefix: Buffer): boolean {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

async function runDumpers(data: DumpWorkerData, port: MessagePort): Promise<void> {
  const counters = new Int32Array(data.counters);
  const n = data.entries;
  const last = data.lastName;
  const writerPrefix = Buffer.from(data.writerPrefix, 'latin1');
  let stopRequested = false;
  const stopped = () => stopRequested || Atomics.load(counters, DUMP_COUNTERS.stop) !== 0;
  const live = new Set<MupdateConn>();
  const dumps = new Array<number>(data.dumpers).fill(0);
  const wrong: string[] = [];
  let wrongCount = 0;
  port.on('message', (m: ToDumpWorker) => {
    if (m.type !== 'stop') return;
    stopRequested = true;
    for (const c of live) c.destroy();
  });

  const dumper = async (index: number) => {
    for (let round = 0; round < data.maxRounds && !stopped(); round++) {
      const conn = await MupdateConn.login(data.port, data.user, data.password);
      if (stopped()) {
        conn.destroy();
        break;
      }
      live.add(conn);
      conn.nameOnly = true;
      conn.onStream = () => {
        /* changes streamed after the dump: not this workload's concern */
      };
      const minWrites = Atomics.load(counters, DUMP_COUNTERS.acked);
      let count = 0;
      let writerEntries = 0;
      // the last name: decoded from its bytes only once the dump is complete
      const lastSeen = { name: '', buf: null as Buffer | null, start: 0, end: 0 };
      try {
        const r = await conn.command(
          'UPDATE',
          (d) => {
            count++;
            lastSeen.buf = null;
            lastSeen.name = d.args[0]!;
            if (lastSeen.name.startsWith(data.writerPrefix)) writerEntries++;
          },
          (buf, _kindStart, _kindEnd, s1, e1) => {
            count++;
            lastSeen.buf = buf;
            lastSeen.start = s1;
            lastSeen.end = e1;
            if (startsWith(buf, s1, e1, writerPrefix)) writerEntries++;
          },
        );
        const maxWrites = Atomics.load(counters, DUMP_COUNTERS.issued);
        expectOk(r, 'streaming starts', 'UPDATE');
        const lastName = lastSeen.buf ? lastSeen.buf.toString('latin1', lastSeen.start, lastSeen.end) : lastSeen.name;
        if (count !== n + writerEntries || lastName !== last || writerEntries < minWrites || writerEntries > maxWrites) {
          if (wrongCount++ < 10) {
            wrong.push(
              `dump of ${count} entries (${writerEntries} written during the run, expected ${minWrites}..${maxWrites}; last ${lastName})`,
            );
          }
        }
        dumps[index]++;
      } catch (e) {
        if (!stopped()) throw e;
      } finally {
        live.delete(conn);
        conn.destroy();
      }
    }
  };

  const started = performance.now();
  const runs = dumps.map((_, i) => dumper(i));
  port.postMessage({ type: 'ready' } satisfies FromDumpWorker);
  const outcomes = await Promise.allSettled(runs);
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  port.postMessage({
    type: 'done',
    dumps,
    wrong,
    wrongCount,
    error: failed ? serializeError(failed.reason) : null,
    elapsedMs: performance.now() - started,
  } satisfies FromDumpWorker);
  port.unref();
}

if (!isMainThread && parentPort && (workerData as { role?: string } | null)?.role === 'dumpers') {
  const port = parentPort;
  runDumpers((workerData as { data: DumpWorkerData }).data, port).catch((e: unknown) => {
    // (runDumpers catches the dumpers' failures: this is a bug of its own) fail the worker
    setImmediate(() => {
      throw e;
    });
  });
}
