/**
 * Writes while clients take full UPDATE dumps (slaves resyncing): a writer's
 * ACTIVATE latency while 4 clients repeat dumps, and while 20 clients each
 * take one dump at the same time (with the time until all 20 are done). The
 * dumpers run in a worker thread (dump-worker.ts), so that the parsing of
 * their dumps does not stall the event loop the writer's latency is measured
 * on; the client's CPU time still counts both threads. Every dump is checked
 * (count, last name, the writer's entries it holds) and every write read back.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { MupdateConn } from './client.js';
import { entryAt } from './dataset.js';
import {
  deserializeError,
  DUMP_COUNTERS,
  type DumpsDone,
  type DumpWorkerData,
  type FromDumpWorker,
  type ToDumpWorker,
} from './dump-worker.js';
import { closedLoop, expectOk, latencySummary, sleep, WrongAnswer, type Expected } from './measure.js';
import { ADMIN, PASSWORD } from './servers.js';
import { checkWrites, deleteAll, withCpu, type Context, type Measurement } from './workload-kit.js';

const LOOP_DELAY_RESOLUTION_MS = 10;

/** How late (ms) a monitorEventLoopDelay timer fired, from its histogram value (ns, which include the resolution). */
function loopLagMs(ns: number): number {
  return Math.max(0, Math.round((ns / 1e6 - LOOP_DELAY_RESOLUTION_MS) * 100) / 100);
}

/** The dumpers of activateDuringDumps, running in their worker thread (dump-worker.ts). */
class DumpWorker {
  readonly counters = new Int32Array(new SharedArrayBuffer(DUMP_COUNTERS.length * Int32Array.BYTES_PER_ELEMENT));
  /** Resolves once the dumpers run; rejects if the worker fails first. */
  readonly ready: Promise<void>;
  /** The dumpers' report, once they have all stopped. */
  readonly done: Promise<DumpsDone>;
  private readonly worker: Worker;

  constructor(data: Omit<DumpWorkerData, 'counters'>) {
    const workerData: { role: 'dumpers'; data: DumpWorkerData } = { role: 'dumpers', data: { ...data, counters: this.counters.buffer } };
    this.worker = new Worker(new URL('./dump-worker.js', import.meta.url), { workerData });
    let onReady: () => void = () => {};
    let onFailure: (e: Error) => void = () => {};
    this.ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onFailure = reject;
    });
    this.done = new Promise<DumpsDone>((resolve, reject) => {
      this.worker.on('message', (m: FromDumpWorker) => {
        if (m.type === 'ready') onReady();
        else resolve(m);
      });
      const fail = (e: Error) => {
        onFailure(e);
        reject(e);
      };
      this.worker.once('error', (e) => fail(e instanceof Error ? e : new Error(String(e))));
      this.worker.once('exit', (code) => fail(new Error(`the dump worker exited (code ${code}) without reporting`)));
    });
    // looked at in turn below; a failure must not go unhandled meanwhile
    this.ready.catch(() => {});
    this.done.catch(() => {});
  }

  /** The dumpers stop (a dump cut off is no error) and report. */
  stop(): Promise<DumpsDone> {
    Atomics.store(this.counters, DUMP_COUNTERS.stop, 1);
    this.worker.postMessage({ type: 'stop' } satisfies ToDumpWorker);
    return this.done;
  }

  /** Ends the worker and its connections, whatever state it is in. */
  async terminate(): Promise<void> {
    Atomics.store(this.counters, DUMP_COUNTERS.stop, 1);
    await this.worker.terminate();
  }
}

/** A dumper's failure or a wrong dump fails the workload. */
function checkDumps(report: DumpsDone): void {
  if (report.error) throw deserializeError(report.error);
  if (report.wrongCount) throw new WrongAnswer(`${report.wrongCount} wrong dumps: ${report.wrong.slice(0, 3).join('; ')}`);
}

/** `count` dumpers of the preloaded directory, up to `maxRounds` dumps each, while a writer adds `<prefix><i>` names. */
function startDumpers(ctx: Context, writerPrefix: string, count: number, maxRounds: number): DumpWorker {
  const n = ctx.sizes.entries;
  return new DumpWorker({
    port: ctx.server.port,
    user: ADMIN,
    password: PASSWORD,
    entries: n,
    lastName: entryAt(n - 1).name,
    writerPrefix,
    dumpers: count,
    maxRounds,
  });
}

/**
 * The writer of a dump workload: one ACTIVATE at a time of `<prefix><i>`,
 * each latency recorded, with the counters the dumpers check their dumps
 * against (acknowledged before a dump starts, issued before it ends).
 */
class CountedWriter {
  issued = 0;
  acked = 0;
  readonly latencies: number[] = [];
  readonly expected = new Map<string, Expected | null>();

  constructor(
    readonly conn: MupdateConn,
    private readonly counters: Int32Array,
    private readonly prefix: string,
    private readonly entry: Expected,
  ) {}

  async write(): Promise<void> {
    const name = `${this.prefix}${this.issued}`;
    Atomics.store(this.counters, DUMP_COUNTERS.issued, ++this.issued);
    const t = performance.now();
    const r = await this.conn.activate(name, this.entry.location, this.entry.acl);
    this.latencies.push(performance.now() - t);
    expectOk(r, 'done', `ACTIVATE ${name}`);
    Atomics.store(this.counters, DUMP_COUNTERS.acked, ++this.acked);
    this.expected.set(name, this.entry);
  }

  /** Logs out, reads every write back, then deletes them: the next dump workload counts the whole directory. */
  async finish(ctx: Context, details: Record<string, unknown>): Promise<void> {
    await this.conn.logout();
    await checkWrites(ctx, this.expected, details);
    await deleteAll(ctx, [...this.expected.keys()]);
  }
}

/**
 * 4 clients take full UPDATE dumps in a loop (log in, UPDATE, read to
 * "streaming starts", disconnect: a slave resyncing), while one writer
 * ACTIVATEs one at a time; the value is the writer's p99 latency.
 */
export async function activateDuringDumps(ctx: Context): Promise<Measurement> {
  const dumpers = startDumpers(ctx, 'user.bdw.m', 4, 10_000);
  let conn: MupdateConn | null = null;
  try {
    await dumpers.ready;
    await sleep(200);
    conn = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
    const writer = new CountedWriter(conn, dumpers.counters, 'user.bdw.m', { location: 'benchdw!default', acl: 'bdw\tlrswipkxtecdan\t' });
    // how late this thread's event loop ran meanwhile (the client's own share of the writer's latency)
    const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    loopDelay.enable();
    const { result, serverCpuMs, clientCpuMs } = await withCpu(ctx, () =>
      closedLoop([writer], 1, ctx.sizes.dumpWriterMs, ctx.sizes.maxOps, (w) => w.write()),
    );
    loopDelay.disable();
    const report = await dumpers.stop();
    checkDumps(report);
    const lat = latencySummary(writer.latencies);
    const completedDumps = report.dumps.reduce((a, b) => a + b, 0);
    const details: Record<string, unknown> = {
      dumpers: 4,
      dumpersIn: 'worker thread',
      completedDumps,
      dumpsPerDumper: report.dumps,
      writes: result.ops,
      seconds: result.elapsedMs / 1000,
      ...lat,
      serverCpuMs,
      clientCpuMs,
      writerLoopLagMs: { p99: loopLagMs(loopDelay.percentile(99)), max: loopLagMs(loopDelay.max) },
    };
    await writer.finish(ctx, details);
    return { value: lat.p99, correct: true, details };
  } finally {
    await dumpers.terminate();
    conn?.destroy();
  }
}

/**
 * `resyncClients` (20) clients each take one full UPDATE dump, all at once,
 * while one writer ACTIVATEs one at a time until the last dump is done (at
 * most `resyncMaxMs`). The value is the seconds from the dumpers' start until
 * all dumps are complete (null if some were still running at the bound);
 * the details hold the writer's latencies.
 */
export async function resyncDuringWrites(ctx: Context): Promise<Measurement> {
  const clients = ctx.sizes.resyncClients;
  const conn = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
  let dumpers: DumpWorker | null = null;
  try {
    const d = startDumpers(ctx, 'user.brs.m', clients, 1);
    dumpers = d;
    let finished = false;
    d.done.then(
      () => (finished = true),
      () => (finished = true),
    );
    const writer = new CountedWriter(conn, d.counters, 'user.brs.m', { location: 'benchrs!default', acl: 'brs\tlrswipkxtecdan\t' });
    await d.ready;
    // at the bound the dumps are cut off at once, even while the writer waits for an answer (Cyrus: behind the dumps)
    let timeUp = false;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        timeUp = true;
        resolve();
      }, ctx.sizes.resyncMaxMs);
    });
    const {
      result: { allDone, report },
      serverCpuMs,
      clientCpuMs,
    } = await withCpu(ctx, async () => {
      const writes = (async () => {
        while (!finished && !timeUp && writer.issued < ctx.sizes.maxOps) await writer.write();
      })();
      // (awaited below; must not go unhandled if the dumpers fail first)
      writes.catch(() => {});
      await Promise.race([writes, bound, d.done.catch(() => {})]);
      const done = finished;
      const dumps = done ? await d.done : await d.stop();
      clearTimeout(timer);
      await writes;
      return { allDone: done, report: dumps };
    });
    checkDumps(report);
    const completed = report.dumps.reduce((a, b) => a + b, 0);
    const lat = latencySummary(writer.latencies);
    const details: Record<string, unknown> = {
      dumpers: clients,
      dumpersIn: 'worker thread',
      completedDumps: completed,
      writes: writer.acked,
      ...lat,
      serverCpuMs,
      clientCpuMs,
    };
    await writer.finish(ctx, details);
    if (!allDone || completed !== clients) {
      return {
        value: null,
        correct: true,
        error: `${completed} of ${clients} dumps done within ${ctx.sizes.resyncMaxMs / 1000} s`,
        details,
      };
    }
    return { value: report.elapsedMs / 1000, correct: true, details };
  } finally {
    await dumpers?.terminate();
    conn.destroy();
  }
}
