/**
 * What every workload shares: the sizes of a run, the measurement each
 * returns, the context it runs in, and small helpers (CPU time around a
 * loop, read-back of writes, the names writers use, waiting for an idle
 * server between workloads).
 */
import { MupdateConn, type DataResponse } from './client.js';
import { entryAt } from './dataset.js';
import { closedLoop, cpuMs, expectOk, openMany, sleep, verifyWithFind, WrongAnswer, type Expected } from './measure.js';
import { ADMIN, PASSWORD, type ServerUnderTest } from './servers.js';

export interface Sizes {
  /** Preloaded entries. */
  entries: number;
  /** Entries of the second, smaller directory the `list200k` workload lists (a fifth of entries). */
  smallEntries: number;
  /** Duration of each throughput workload (ms). */
  throughputMs: number;
  /** Duration of the ACTIVATE-while-dumping workload (ms). */
  dumpWriterMs: number;
  /** Clients of the resync workload, each taking one full dump at the same time. */
  resyncClients: number;
  /** Bound on the resync workload (ms): dumps still running then count as not done. */
  resyncMaxMs: number;
  /** Connections opened and closed one after the other before the memory at the end. */
  churnedConnections: number;
  /** How long the server rests after the churn before the memory at the end is read. */
  restMs: number;
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

/** The c-th client's seq-th new entry (names no preloaded entry has). */
export function writeEntry(prefix: string, c: number, i: number): { name: string; location: string; acl: string } {
  const owner = `${prefix}${c}`;
  return { name: `user.${owner}.m${i}`, location: WRITE_LOCATION, acl: `${owner}\tlrswipkxtecdan\t` };
}

/** Server and client CPU spent while `fn` ran. */
export async function withCpu<T>(ctx: Context, fn: () => Promise<T>): Promise<{ result: T; serverCpuMs: number; clientCpuMs: number }> {
  const pids = ctx.server.pids();
  const s0 = cpuMs(pids);
  const c0 = process.cpuUsage();
  const result = await fn();
  const c = process.cpuUsage(c0);
  return { result, serverCpuMs: cpuMs(pids) - s0, clientCpuMs: Math.round((c.user + c.system) / 1000) };
}

/** Reads every written name back with FIND; a mismatch is a wrong answer. */
export async function checkWrites(ctx: Context, expected: Map<string, Expected | null>, details: Record<string, unknown>): Promise<void> {
  const v = await verifyWithFind(ctx.server.port, ADMIN, PASSWORD, expected);
  details.verified = v.checked;
  if (v.wrong) throw new WrongAnswer(`${v.wrong} of ${v.checked} entries read back wrong: ${v.examples.join('; ')}`);
}

/** A FIND of preloaded entry k must answer exactly that entry. */
export function checkFound(name: string, k: number, entry: DataResponse | null): void {
  const e = entryAt(k);
  if (!entry || entry.kind !== 'MAILBOX' || entry.args[0] !== name || entry.args[1] !== e.location || entry.args[2] !== e.acl) {
    throw new WrongAnswer(`FIND ${name}: got ${entry ? `${entry.kind} ${JSON.stringify(entry.args)}` : 'nothing'}`);
  }
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

/**
 * DELETEs the names (8 connections, 16 in flight each), so that a workload
 * whose later checks count the whole directory leaves it as it found it.
 */
export async function deleteAll(ctx: Context, names: string[]): Promise<void> {
  const conns = await openMany(ctx.server.port, Math.min(8, Math.max(1, names.length)), ADMIN, PASSWORD);
  try {
    await closedLoop(conns, 16, 10 * 60_000, names.length, async (conn, _i, seq) => {
      expectOk(await conn.command(`DELETE "${names[seq]}"`), 'done', `DELETE ${names[seq]}`);
    });
  } finally {
    await Promise.allSettled(conns.map((c) => c.logout()));
  }
}
