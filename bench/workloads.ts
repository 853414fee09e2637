/**
 * The workloads, run the same way against either server. Each returns a
 * measurement and whether every answer was right; a wrong answer makes the
 * measurement incorrect, whatever its speed. Every loop is bounded in time
 * and in count.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { CLI } from '../test/helpers/server.js';
import { MupdateConn, statusText, type DataResponse, type RawTripleHandler } from './client.js';
import { EntryBytes, entryAt, rng } from './dataset.js';
import {
  deserializeError,
  DUMP_COUNTERS,
  type DumpsDone,
  type DumpWorkerData,
  type FromDumpWorker,
  type ToDumpWorker,
} from './dump-worker.js';
import { closedLoop, cpuMs, expectOk, latencySummary, openMany, sleep, verifyWithFind, WrongAnswer, type Expected } from './measure.js';
import { ADMIN, PASSWORD, processMemory, type ServerUnderTest } from './servers.js';

export interface Sizes {
  /** Preloaded entries. */
  entries: number;
  /** Duration of each throughput workload (ms). */
  throughputMs: number;
  /** Duration of the ACTIVATE-while-dumping workload (ms). */
  dumpWriterMs: number;
  propagationSamples: number;
  propagationIntervalMs: number;
  idleConnections: number;
  /** Upper bound on operations of any one loop. */
  maxOps: number;
}

export interface Measurement {
  value: number | null;
  correct: boolean;
  error?: string;
  details: Record<string, unknown>;
}

export interface Context {
  server: ServerUnderTest;
  sizes: Sizes;
  log: (line: string) => void;
}

const WRITE_LOCATION = 'benchw!default';

function writeEntry(prefix: string, c: number, i: number): { name: string; location: string; acl: string } {
  const owner = `${prefix}${c}`;
  return { name: `user.${owner}.m${i}`, location: WRITE_LOCATION, acl: `${owner}\tlrswipkxtecdan\t` };
}

/** Server and client CPU spent while `fn` ran. */
async function withCpu<T>(ctx: Context, fn: () => Promise<T>): Promise<{ result: T; serverCpuMs: number; clientCpuMs: number }> {
  const pids = ctx.server.pids();
  const s0 = cpuMs(pids);
  const c0 = process.cpuUsage();
  const result = await fn();
  const c = process.cpuUsage(c0);
  return { result, serverCpuMs: cpuMs(pids) - s0, clientCpuMs: Math.round((c.user + c.system) / 1000) };
}

async function checkWrites(ctx: Context, expected: Map<string, Expected | null>, details: Record<string, unknown>): Promise<void> {
  const v = await verifyWithFind(ctx.server.port, ADMIN, PASSWORD, expected);
  details.verified = v.checked;
  if (v.wrong) throw new WrongAnswer(`${v.wrong} of ${v.checked} entries read back wrong: ${v.examples.join('; ')}`);
}

// ---------------------------------------------------------------------------
// LIST and UPDATE dumps of the whole directory

/** Compares the k-th entry of a full listing with the preloaded directory. */
function checkNth(d: DataResponse, k: number, what: string): void {
  const e = entryAt(k);
  if (d.kind !== 'MAILBOX' || d.args[0] !== e.name || d.args[1] !== e.location || d.args[2] !== e.acl) {
    throw new WrongAnswer(
      `${what}: entry ${k} is ${d.kind} ${JSON.stringify(d.args)}, expected MAILBOX ${JSON.stringify([e.name, e.location, e.acl])}`,
    );
  }
}

const MAILBOX_BYTES = Buffer.from('MAILBOX', 'latin1');

/** buf[start, end) is exactly expected[0, length). */
function sameBytes(buf: Buffer, start: number, end: number, expected: Buffer, length: number): boolean {
  if (end - start !== length) return false;
  for (let i = 0; i < length; i++) if (buf[start + i] !== expected[i]) return false;
  return true;
}

/**
 * Checks a full listing entry by entry, like checkNth: the k-th data
 * response must be exactly MAILBOX entryAt(k). Responses in the usual
 * three-literal shape arrive raw (onRaw) and are compared byte for byte with
 * the expected bytes, built incrementally (EntryBytes, itself compared with
 * entryAt every 4096 entries), so that the client decodes and builds no
 * strings per entry; any other response goes through checkNth (onData).
 */
class ListingCheck {
  count = 0;
  private readonly expected = new EntryBytes(0);

  constructor(
    private readonly what: string,
    private readonly onFirst: () => void,
  ) {}

  readonly onData = (d: DataResponse): void => {
    const k = this.count;
    if (k === 0) this.onFirst();
    checkNth(d, k, this.what);
    this.count = k + 1;
    this.expected.next();
  };

  readonly onRaw: RawTripleHandler = (buf, kindStart, kindEnd, s1, e1, s2, e2, s3, e3) => {
    const k = this.count;
    if (k === 0) this.onFirst();
    const x = this.expected;
    if (
      !sameBytes(buf, kindStart, kindEnd, MAILBOX_BYTES, MAILBOX_BYTES.length) ||
      !sameBytes(buf, s1, e1, x.name, x.nameLength) ||
      !sameBytes(buf, s2, e2, x.location, x.location.length) ||
      !sameBytes(buf, s3, e3, x.acl, x.aclLength)
    ) {
      const args = [buf.toString('latin1', s1, e1), buf.toString('latin1', s2, e2), buf.toString('latin1', s3, e3)];
      checkNth({ tag: '', kind: buf.toString('latin1', kindStart, kindEnd), args }, k, this.what);
      throw new Error(`bench bug: the expected bytes of entry ${k} are not entryAt(${k})`);
    }
    if ((k & 4095) === 0) this.selfCheck(k);
    this.count = k + 1;
    x.next();
  };

  /** The incrementally built bytes are entryAt's. */
  private selfCheck(k: number): void {
    const x = this.expected;
    const e = entryAt(k);
    if (
      x.k !== k ||
      x.name.toString('latin1', 0, x.nameLength) !== e.name ||
      x.location.toString('latin1') !== e.location ||
      x.acl.toString('latin1', 0, x.aclLength) !== e.acl
    ) {
      throw new Error(`bench bug: EntryBytes at ${k} (${x.k}) differs from entryAt(${k})`);
    }
  }
}

async function fullListing(ctx: Context, command: 'LIST' | 'UPDATE'): Promise<Measurement> {
  const conn = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
  try {
    let firstMs = 0;
    const t0 = performance.now();
    const check = new ListingCheck(command, () => {
      firstMs = performance.now() - t0;
    });
    const { result: status, serverCpuMs, clientCpuMs } = await withCpu(ctx, () => conn.command(command, check.onData, check.onRaw));
    const seconds = (performance.now() - t0) / 1000;
    const count = check.count;
    expectOk(status, command === 'LIST' ? 'list complete' : 'streaming starts', command);
    if (count !== ctx.sizes.entries) throw new WrongAnswer(`${command} returned ${count} entries, expected ${ctx.sizes.entries}`);
    return { value: seconds, correct: true, details: { entries: count, firstEntryMs: Math.round(firstMs), serverCpuMs, clientCpuMs } };
  } finally {
    conn.destroy();
  }
}

export const listAll = (ctx: Context) => fullListing(ctx, 'LIST');
export const dumpAll = (ctx: Context) => fullListing(ctx, 'UPDATE');

export function memory(ctx: Context): Promise<Measurement> {
  const per = ctx.server.pids().map((pid) => ({ pid, ...processMemory(pid) }));
  const rssKb = per.reduce((s, p) => s + (p.rssKb ?? 0), 0);
  return Promise.resolve({ value: rssKb / 1024, correct: per.length > 0, details: { processes: per } });
}

// ---------------------------------------------------------------------------
// durable ACTIVATE

async function activateLoop(ctx: Context, prefix: string, conns: number, depth: number): Promise<Measurement> {
  const clients = await openMany(ctx.server.port, conns, ADMIN, PASSWORD);
  const expected = new Map<string, Expected | null>();
  const details: Record<string, unknown> = { connections: conns, inFlight: depth };
  try {
    const { result, serverCpuMs, clientCpuMs } = await withCpu(ctx, () =>
      closedLoop(clients, depth, ctx.sizes.throughputMs, ctx.sizes.maxOps, async (conn, c, seq) => {
        const e = writeEntry(prefix, c, seq);
        expectOk(await conn.activate(e.name, e.location, e.acl), 'done', `ACTIVATE ${e.name}`);
        expected.set(e.name, e);
      }),
    );
    Object.assign(details, { ops: result.ops, seconds: result.elapsedMs / 1000, serverCpuMs, clientCpuMs });
    await Promise.all(clients.map((c) => c.logout()));
    await checkWrites(ctx, expected, details);
    return { value: result.perSecond, correct: true, details };
  } finally {
    for (const c of clients) c.destroy();
  }
}

export const activate1x1 = (ctx: Context) => activateLoop(ctx, 'ba', 1, 1);
export const activate16x8 = (ctx: Context) => activateLoop(ctx, 'bp', 16, 8);

/** What a backend does for each mailbox operation: connect, log in, one ACTIVATE, LOGOUT. */
export async function churn(ctx: Context): Promise<Measurement> {
  const expected = new Map<string, Expected | null>();
  const details: Record<string, unknown> = { clients: 8 };
  const { result, serverCpuMs, clientCpuMs } = await withCpu(ctx, () =>
    closedLoop(
      Array.from({ length: 8 }, (_, i) => i),
      1,
      ctx.sizes.throughputMs,
      ctx.sizes.maxOps,
      async (c, _i, seq) => {
        const conn = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
        try {
          const e = writeEntry('bc', c, seq);
          expectOk(await conn.activate(e.name, e.location, e.acl), 'done', `ACTIVATE ${e.name}`);
          expected.set(e.name, e);
          expectOk(await conn.logout(), 'bye-bye', 'LOGOUT');
        } finally {
          conn.destroy();
        }
      },
    ),
  );
  Object.assign(details, { ops: result.ops, seconds: result.elapsedMs / 1000, serverCpuMs, clientCpuMs });
  await checkWrites(ctx, expected, details);
  return { value: result.perSecond, correct: true, details };
}

// ---------------------------------------------------------------------------
// reads

function checkFound(name: string, k: number, entry: DataResponse | null): void {
  const e = entryAt(k);
  if (!entry || entry.kind !== 'MAILBOX' || entry.args[0] !== name || entry.args[1] !== e.location || entry.args[2] !== e.acl) {
    throw new WrongAnswer(`FIND ${name}: got ${entry ? `${entry.kind} ${JSON.stringify(entry.args)}` : 'nothing'}`);
  }
}

export async function find16x8(ctx: Context): Promise<Measurement> {
  const clients = await openMany(ctx.server.port, 16, ADMIN, PASSWORD);
  try {
    const rand = rng(1);
    const { result, serverCpuMs, clientCpuMs } = await withCpu(ctx, () =>
      closedLoop(clients, 8, ctx.sizes.throughputMs, ctx.sizes.maxOps, async (conn) => {
        const k = Math.floor(rand() * ctx.sizes.entries);
        const name = entryAt(k).name;
        const { entry, status } = await conn.find(name);
        expectOk(status, 'Search completed', `FIND ${name}`);
        checkFound(name, k, entry);
      }),
    );
    return {
      value: result.perSecond,
      correct: true,
      details: { connections: 16, inFlight: 8, ops: result.ops, seconds: result.elapsedMs / 1000, serverCpuMs, clientCpuMs },
    };
  } finally {
    await Promise.allSettled(clients.map((c) => c.logout()));
  }
}

/** 90% FIND of preloaded entries, 9% ACTIVATE of new ones, 1% DELETE of names this connection activated. */
export async function mixed(ctx: Context): Promise<Measurement> {
  const clients = await openMany(ctx.server.port, 8, ADMIN, PASSWORD);
  const expected = new Map<string, Expected | null>();
  const ownNames: string[][] = clients.map(() => []);
  const counts = { find: 0, activate: 0, delete: 0 };
  const rands = clients.map((_, c) => rng(100 + c));
  try {
    const { result, serverCpuMs, clientCpuMs } = await withCpu(ctx, () =>
      closedLoop(clients, 8, ctx.sizes.throughputMs, ctx.sizes.maxOps, async (conn, c, seq) => {
        const r = rands[c]();
        if (r >= 0.99 && ownNames[c].length) {
          const name = ownNames[c].pop()!;
          counts.delete++;
          expectOk(await conn.command(`DELETE "${name}"`), 'done', `DELETE ${name}`);
          expected.set(name, null);
        } else if (r >= 0.9 && r < 0.99) {
          const e = writeEntry('bm', c, seq);
          counts.activate++;
          expectOk(await conn.activate(e.name, e.location, e.acl), 'done', `ACTIVATE ${e.name}`);
          expected.set(e.name, e);
          ownNames[c].push(e.name);
        } else {
          const k = Math.floor(rands[c]() * ctx.sizes.entries);
          const name = entryAt(k).name;
          counts.find++;
          const { entry, status } = await conn.find(name);
          expectOk(status, 'Search completed', `FIND ${name}`);
          checkFound(name, k, entry);
        }
      }),
    );
    const details: Record<string, unknown> = {
      connections: 8,
      inFlight: 8,
      ops: result.ops,
      ...counts,
      seconds: result.elapsedMs / 1000,
      serverCpuMs,
      clientCpuMs,
    };
    await checkWrites(ctx, expected, details);
    return { value: result.perSecond, correct: true, details };
  } finally {
    await Promise.allSettled(clients.map((c) => c.logout()));
  }
}

// ---------------------------------------------------------------------------
// UPDATE streams

/**
 * 10 listeners stream (`UPDATE "benchprop"`: only that server's entries, so
 * each initial dump is empty); a writer ACTIVATEs one entry there every
 * interval; each listener's latency is from the writer's OK to the line's
 * arrival (`ports`: a cluster's writer and listeners on two nodes). No NOOPs (Cyrus would flush).
 */
export async function propagation(ctx: Context, ports = { listeners: ctx.server.port, writer: ctx.server.port }): Promise<Measurement> {
  const { propagationSamples: samples, propagationIntervalMs: interval } = ctx.sizes;
  const listeners = await openMany(ports.listeners, 10, ADMIN, PASSWORD);
  const writer = await MupdateConn.login(ports.writer, ADMIN, PASSWORD);
  const okAt = new Map<string, number>();
  const received = listeners.map(() => new Map<string, number>());
  const wrong: string[] = [];
  let arrivedBeforeOk = 0;
  try {
    listeners.forEach((l, i) => {
      l.onStream = (d) => {
        const now = performance.now();
        const name = d.args[0] ?? '';
        if (
          d.kind !== 'MAILBOX' ||
          d.args[1] !== 'benchprop!default' ||
          d.args[2] !== `bprop\tlrswipkxtecdan\t` ||
          !/^user\.bprop\.m\d+$/.test(name)
        ) {
          wrong.push(`listener ${i}: ${d.kind} ${JSON.stringify(d.args)}`);
          return;
        }
        if (!received[i].has(name)) received[i].set(name, now);
      };
    });
    const setupStart = performance.now();
    const starts = await Promise.all(
      listeners.map((l) =>
        l.command('UPDATE "benchprop"', () => {
          wrong.push('initial dump not empty');
        }),
      ),
    );
    for (const s of starts) expectOk(s, 'streaming starts', 'UPDATE "benchprop"');
    const setupMs = performance.now() - setupStart;
    const t0 = performance.now();
    for (let i = 0; i < samples && performance.now() - t0 < samples * interval + 60_000; i++) {
      const name = `user.bprop.m${i}`;
      const next = t0 + (i + 1) * interval;
      const r = await writer.activate(name, 'benchprop!default', 'bprop\tlrswipkxtecdan\t');
      okAt.set(name, performance.now());
      expectOk(r, 'done', `ACTIVATE ${name}`);
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
    }
    // Cyrus flushes every 5 s: wait up to 8 s after the last OK for everything.
    const deadline = performance.now() + 8_000;
    while (performance.now() < deadline && received.some((m) => m.size < okAt.size)) await sleep(20);
    const latencies: number[] = [];
    let missing = 0;
    for (const m of received) {
      for (const [name, ok] of okAt) {
        const at = m.get(name);
        if (at === undefined) {
          missing++;
          continue;
        }
        if (at < ok) arrivedBeforeOk++;
        latencies.push(Math.max(0, at - ok));
      }
    }
    if (wrong.length) throw new WrongAnswer(`unexpected stream lines: ${wrong.slice(0, 3).join('; ')}`);
    if (missing) throw new WrongAnswer(`${missing} of ${okAt.size * listeners.length} changes never reached their listener within 8 s`);
    const lat = latencySummary(latencies);
    return {
      value: lat.p99,
      correct: true,
      details: {
        listeners: listeners.length,
        writes: okAt.size,
        intervalMs: interval,
        ...lat,
        arrivedBeforeOk,
        listenerSetupMs: Math.round(setupMs),
      },
    };
  } finally {
    for (const l of listeners) l.destroy();
    writer.destroy();
  }
}

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

/**
 * 4 clients take full UPDATE dumps in a loop (log in, UPDATE, read to
 * "streaming starts", disconnect: a slave resyncing), while one writer
 * ACTIVATEs one at a time; the value is the writer's p99 latency. The
 * dumpers run in a worker thread (dump-worker.ts), so that the parsing of
 * their dumps does not stall the event loop the writer's latency is
 * measured on; the client's CPU time still counts both threads.
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
    if (report.error) throw deserializeError(report.error);
    if (report.wrongCount) throw new WrongAnswer(`${report.wrongCount} wrong dumps: ${report.wrong.slice(0, 3).join('; ')}`);
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
    return { value: lat.p99, correct: true, details };
  } finally {
    await dumpers.terminate();
    writer?.destroy();
  }
}

// ---------------------------------------------------------------------------
// idle connections

/**
 * Opens up to `idleConnections` authenticated connections (20 at a time),
 * stopping at the first refusal or failure, lets them sit, then sends NOOP
 * on every one: the value is how many were still held and answered.
 */
export async function idleConnections(ctx: Context): Promise<Measurement> {
  const target = ctx.sizes.idleConnections;
  const conns: MupdateConn[] = [];
  let firstFailure: string | null = null;
  const t0 = performance.now();
  try {
    while (conns.length < target && !firstFailure && performance.now() - t0 < 180_000) {
      // 20 logins at a time: with 200 at once Cyrus stops sending banners after ~130 connections
      const batch = Math.min(20, target - conns.length);
      const results = await Promise.allSettled(Array.from({ length: batch }, () => MupdateConn.login(ctx.server.port, ADMIN, PASSWORD)));
      for (const r of results) {
        if (r.status === 'fulfilled') conns.push(r.value);
        else firstFailure ??= `after ${conns.length} connections: ${(r.reason as Error).message}`;
      }
    }
    const opened = conns.length;
    const openSeconds = (performance.now() - t0) / 1000;
    await sleep(2_000);
    let answered = 0;
    for (let i = 0; i < conns.length; i += 500) {
      const rs = await Promise.allSettled(
        conns.slice(i, i + 500).map(async (c) => {
          const r = await c.command('NOOP');
          if (r.kind === 'OK' && statusText(r.rest) === 'Noop done') answered++;
        }),
      );
      void rs;
    }
    let freshFind = 'ok';
    try {
      const probe = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
      const name = entryAt(0).name;
      const { entry, status } = await probe.find(name);
      expectOk(status, 'Search completed', `FIND ${name}`);
      checkFound(name, 0, entry);
      probe.destroy();
    } catch (e) {
      freshFind = (e as Error).message;
    }
    const serverRunning = ctx.server.running();
    return {
      value: answered,
      correct: true,
      details: {
        target,
        opened,
        answeredNoop: answered,
        openSeconds,
        firstFailure,
        freshConnectionFind: freshFind,
        serverRunning,
        // what the server (for Cyrus: master(8), which restarts a dead mupdate) said about a failure
        ...(firstFailure || answered < opened ? { server: ctx.server.diagnostics().slice(-400) } : {}),
      },
    };
  } finally {
    for (const c of conns) c.destroy();
  }
}

// ---------------------------------------------------------------------------
// backend push

export interface PushSetup {
  /** The backend's imapd.conf (its mupdate_server line is pointed at each server in turn). */
  backendConfig: string;
  /** `ctl_mboxlist -d` of the backend, for `mupdated push`. */
  dumpPath: string;
  passwordFile: string;
  mailboxes: number;
  cyrusBin: string;
  /** Sample of (name, expected entry) to read back after each push. */
  sample: Array<{ name: string; location: string; acl: string }>;
}

function timed(
  file: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

export function pointBackendAt(setup: PushSetup, port: number, readFile: (p: string) => string): void {
  const text = readFile(setup.backendConfig).replace(/^mupdate_server: .*$/m, `mupdate_server: 127.0.0.1:${port}`);
  writeFileSync(setup.backendConfig, text);
}

async function checkSample(ctx: Context, setup: PushSetup): Promise<void> {
  const expected = new Map<string, Expected | null>(setup.sample.map((s) => [s.name, { location: s.location, acl: s.acl }]));
  const v = await verifyWithFind(ctx.server.port, ADMIN, PASSWORD, expected);
  if (v.wrong) throw new WrongAnswer(`after the push ${v.wrong} sampled entries changed: ${v.examples.join('; ')}`);
}

/** The real `ctl_mboxlist -m` of an in-sync backend against the server. */
export async function pushWithCtlMboxlist(ctx: Context, setup: PushSetup, readFile: (p: string) => string): Promise<Measurement> {
  pointBackendAt(setup, ctx.server.port, readFile);
  const r = await timed(join(setup.cyrusBin, 'ctl_mboxlist'), ['-C', setup.backendConfig, '-m'], 10 * 60_000);
  if (r.code !== 0 || r.stdout.trim() !== '') {
    throw new WrongAnswer(
      `ctl_mboxlist -m exited ${r.code}; stdout ${JSON.stringify(r.stdout.slice(0, 300))}; stderr ${JSON.stringify(r.stderr.slice(0, 300))}`,
    );
  }
  await checkSample(ctx, setup);
  return { value: r.ms / 1000, correct: true, details: { mailboxes: setup.mailboxes, exit: r.code } };
}

/** `mupdated push` of the same backend's dump. */
export async function pushWithMupdated(ctx: Context, setup: PushSetup): Promise<Measurement> {
  const nodeArgs = (process.env.BENCH_MUPDATED_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const r = await timed(
    process.execPath,
    [
      ...nodeArgs,
      CLI,
      'push',
      '--master',
      `127.0.0.1:${ctx.server.port}`,
      '--user',
      'backend1',
      '--password-file',
      setup.passwordFile,
      '--server',
      'backend1',
      setup.dumpPath,
    ],
    10 * 60_000,
  );
  const summary = `# ${setup.mailboxes} in sync, 0 removed, 0 activated, 0 to review, 0 refused`;
  if (r.code !== 0 || r.stdout.trim() !== summary) {
    throw new WrongAnswer(
      `mupdated push exited ${r.code}; stdout ${JSON.stringify(r.stdout.slice(0, 300))} (expected ${JSON.stringify(summary)}); stderr ${JSON.stringify(r.stderr.slice(0, 300))}`,
    );
  }
  await checkSample(ctx, setup);
  return { value: r.ms / 1000, correct: true, details: { mailboxes: setup.mailboxes, exit: r.code, summary: r.stdout.trim() } };
}

/**
 * Waits until the server answers a FIND within 20 ms three times in a row
 * (at most 120 s). A Cyrus master keeps scanning a dump under its global lock
 * after its client has gone, which would otherwise be billed to the next
 * workload. Returns the seconds waited.
 */
export async function settle(ctx: Context): Promise<number> {
  const t0 = performance.now();
  let conn: MupdateConn | null = null;
  try {
    conn = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
    let fast = 0;
    while (fast < 3 && performance.now() - t0 < 120_000) {
      const t = performance.now();
      await conn.find(entryAt(0).name);
      fast = performance.now() - t < 20 ? fast + 1 : 0;
      if (!fast) await sleep(100);
    }
  } catch {
    // a server that cannot answer shows that in the next workload
  } finally {
    conn?.destroy();
  }
  return (performance.now() - t0) / 1000;
}
