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

/**
 * 4 clients take full UPDATE dumps in a loop (log in, UPDATE, read to
 * "streaming starts", disconnect: a slave resyncing), while one writer
 * ACTIVATEs one at a time; the value is the writer's p99 latency.
 */
export async function activateDuringDumps(ctx: Context): Promise<Measurement> {
  const n = ctx.sizes.entries;
  const dumpers = new DumpWorker({
    port: ctx.server.port,
    user: ADMIN,
    password: PASSWORD,
    entries: n,
    lastName: entryAt(n - 1).name,
    writerPrefix: 'user.bdw.m',
    dumpers: 4,
    maxRounds: 10_000,
  });
  const { counters } = dumpers;
  let acked = 0;
  let issued = 0;
  let writer: MupdateConn | null = null;
  try {
    await dumpers.ready;
    await sleep(200);
    const conn = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
    writer = conn;
    const latencies: number[] = [];
    const expected = new Map<string, Expected | null>();
    // how late this thread's event loop ran meanwhile (the client's own share of the writer's latency)
    const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    loopDelay.enable();
    const { result, serverCpuMs, clientCpuMs } = await withCpu(ctx, () =>
      closedLoop([conn], 1, ctx.sizes.dumpWriterMs, ctx.sizes.maxOps, async (w, _i, seq) => {
        const name = `user.bdw.m${seq}`;
        const e = { location: 'benchdw!default', acl: 'bdw\tlrswipkxtecdan\t' };
        Atomics.store(counters, DUMP_COUNTERS.issued, ++issued);
        const t = performance.now();
        const r = await w.activate(name, e.location, e.acl);
        latencies.push(performance.now() - t);
        expectOk(r, 'done', `ACTIVATE ${name}`);
        Atomics.store(counters, DUMP_COUNTERS.acked, ++acked);
        expected.set(name, e);
      }),
    );
    loopDelay.disable();
    const report = await dumpers.stop();
    checkDumps(report);
    const lat = latencySummary(latencies);
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
    await conn.logout();
    await checkWrites(ctx, expected, details);
    // the next dump workload counts the whole directory: leave it as it was
    await deleteAll(ctx, [...expected.keys()]);
    return { value: lat.p99, correct: true, details };
  } finally {
    await dumpers.terminate();
    writer?.destroy();
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
  const n = ctx.sizes.entries;
  const clients = ctx.sizes.resyncClients;
  const writer = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
  let dumpers: DumpWorker | null = null;
  try {
    const d = new DumpWorker({
      port: ctx.server.port,
      user: ADMIN,
      password: PASSWORD,
      entries: n,
      lastName: entryAt(n - 1).name,
      writerPrefix: 'user.brs.m',
      dumpers: clients,
      maxRounds: 1,
    });
    dumpers = d;
    let finished = false;
    d.done.then(
      () => (finished = true),
      () => (finished = true),
    );
    const { counters } = d;
    await d.ready;
    const latencies: number[] = [];
    const expected = new Map<string, Expected | null>();
    const e = { location: 'benchrs!default', acl: 'brs\tlrswipkxtecdan\t' };
    let issued = 0;
    let acked = 0;
    const t0 = performance.now();
    const { serverCpuMs, clientCpuMs } = await withCpu(ctx, async () => {
      while (!finished && performance.now() - t0 < ctx.sizes.resyncMaxMs && issued < ctx.sizes.maxOps) {
        const name = `user.brs.m${issued}`;
        Atomics.store(counters, DUMP_COUNTERS.issued, ++issued);
        const t = performance.now();
        const r = await writer.activate(name, e.location, e.acl);
        latencies.push(performance.now() - t);
        expectOk(r, 'done', `ACTIVATE ${name}`);
        Atomics.store(counters, DUMP_COUNTERS.acked, ++acked);
        expected.set(name, e);
      }
    });
    const allDone = finished;
    const report = allDone ? await d.done : await d.stop();
    checkDumps(report);
    const completed = report.dumps.reduce((a, b) => a + b, 0);
    const lat = latencySummary(latencies);
    const details: Record<string, unknown> = {
      dumpers: clients,
      dumpersIn: 'worker thread',
      completedDumps: completed,
      writes: acked,
      ...lat,
      serverCpuMs,
      clientCpuMs,
    };
    await writer.logout();
    await checkWrites(ctx, expected, details);
    // the next dump workload counts the whole directory: leave it as it was
    await deleteAll(ctx, [...expected.keys()]);
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
    writer.destroy();
  }
}
