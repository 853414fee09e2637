/** Small measuring tools: bounded closed loops, percentiles, CPU time of processes. */
import { readFileSync } from 'node:fs';
import { MupdateConn, statusText, type StatusResponse } from './client.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class WrongAnswer extends Error {}

/** Throws WrongAnswer unless the status is `OK "<text>"`. */
export function expectOk(r: StatusResponse, text: string, what: string): void {
  if (r.kind !== 'OK' || statusText(r.rest) !== text) throw new WrongAnswer(`${what}: expected OK "${text}", got ${r.kind} ${r.rest}`);
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function latencySummary(samples: number[]): { n: number; p50: number; p99: number; max: number } {
  const s = samples.slice().sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s.length ? s[s.length - 1] : NaN };
}

/** CPU time (ms) used so far by processes, from /proc (gone processes count 0). */
export function cpuMs(pids: number[]): number {
  const hz = 100;
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* gone */
    }
  }
  return (ticks * 1000) / hz;
}

export interface LoopResult {
  ops: number;
  elapsedMs: number;
  perSecond: number;
}

/**
 * Runs `op` on every connection with `depth` in flight each until the time
 * or the count runs out (both bounds always apply).
 */
export async function closedLoop<C>(
  clients: C[],
  depth: number,
  durationMs: number,
  maxOps: number,
  op: (client: C, index: number, seq: number) => Promise<void>,
): Promise<LoopResult> {
  let issued = 0;
  let done = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  const worker = async (client: C, index: number) => {
    while (issued < maxOps && performance.now() < deadline) {
      const seq = issued++;
      await op(client, index, seq);
      done++;
    }
  };
  await Promise.all(clients.flatMap((client, index) => Array.from({ length: depth }, () => worker(client, index))));
  const elapsedMs = performance.now() - start;
  return { ops: done, elapsedMs, perSecond: (done * 1000) / elapsedMs };
}

/** Opens `count` logged-in connections. */
export async function openMany(port: number, count: number, user: string, password: string): Promise<MupdateConn[]> {
  const conns = await Promise.allSettled(Array.from({ length: count }, () => MupdateConn.login(port, user, password)));
  const ok = conns.filter((c): c is PromiseFulfilledResult<MupdateConn> => c.status === 'fulfilled').map((c) => c.value);
  const failed = conns.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed) {
    for (const c of ok) c.destroy();
    throw failed.reason as Error;
  }
  return ok;
}

export interface Expected {
  location: string;
  acl: string;
}

/**
 * Checks with FIND (8 connections, 16 in flight each) that each name holds
 * the expected entry, or none (null). Returns the mismatches (at most 5 shown).
 */
export async function verifyWithFind(
  port: number,
  user: string,
  password: string,
  expected: Map<string, Expected | null>,
): Promise<{ checked: number; wrong: number; examples: string[] }> {
  const names = [...expected.keys()];
  const conns = await openMany(port, Math.min(8, Math.max(1, names.length)), user, password);
  let wrong = 0;
  const examples: string[] = [];
  try {
    await closedLoop(conns, 16, 30 * 60_000, names.length, async (conn, _i, seq) => {
      const name = names[seq];
      const want = expected.get(name)!;
      const { entry, status } = await conn.find(name);
      expectOk(status, 'Search completed', `FIND ${name}`);
      const got = entry ? `${entry.kind} ${entry.args.join('|')}` : 'nothing';
      const exp = want ? `MAILBOX ${name}|${want.location}|${want.acl}` : 'nothing';
      if (got !== exp) {
        wrong++;
        if (examples.length < 5) examples.push(`FIND ${JSON.stringify(name)}: got ${JSON.stringify(got)}, expected ${JSON.stringify(exp)}`);
      }
    });
  } finally {
    await Promise.allSettled(conns.map((c) => c.logout()));
  }
  return { checked: names.length, wrong, examples };
}
