/**
 * Connections and memory: idle authenticated connections held, the server's
 * memory with the directory loaded, and its memory at the end of the suite
 * after connections were opened and closed one batch after the other.
 */
import { descendantsOf } from '../test/helpers/processes.js';
import { MupdateConn, statusText } from './client.js';
import { entryAt } from './dataset.js';
import { expectOk, sleep } from './measure.js';
import { ADMIN, PASSWORD, processMemory } from './servers.js';
import { checkFound, type Context, type Measurement } from './workload-kit.js';

/** RSS (MiB) of the server's processes, with the directory loaded (after LIST and dump). */
export function memory(ctx: Context): Promise<Measurement> {
  const per = ctx.server.pids().map((pid) => ({ pid, ...processMemory(pid) }));
  const rssKb = per.reduce((s, p) => s + (p.rssKb ?? 0), 0);
  return Promise.resolve({ value: rssKb / 1024, correct: per.length > 0, details: { processes: per } });
}

/** The server's processes and all their descendants, each once. */
function serverProcesses(ctx: Context): number[] {
  const all = new Set<number>();
  for (const pid of ctx.server.pids()) {
    all.add(pid);
    for (const d of descendantsOf(pid)) all.add(d);
  }
  return [...all];
}

/** Anonymous memory (RssAnon) and RSS of the server's processes, summed, in MiB, with each process's figures. */
export function serverMemory(ctx: Context): { anonMiB: number; rssMiB: number; processes: Array<Record<string, unknown>> } {
  const per = serverProcesses(ctx).map((pid) => ({ pid, ...processMemory(pid) }));
  const sum = (key: 'anonKb' | 'rssKb') => per.reduce((s, p) => s + (p[key] ?? 0), 0) / 1024;
  return { anonMiB: sum('anonKb'), rssMiB: sum('rssKb'), processes: per };
}

/**
 * Opens and closes `churnedConnections` connections (20 at a time: log in,
 * NOOP, LOGOUT), then measures the server's anonymous memory and RSS: the
 * last workload of the suite, so the figure is what the whole suite left
 * behind. The value is the anonymous memory (MiB); details.rssMiB the RSS.
 */
export async function memoryAtEnd(ctx: Context): Promise<Measurement> {
  const total = ctx.sizes.churnedConnections;
  let done = 0;
  const t0 = performance.now();
  while (done < total && performance.now() - t0 < 120_000) {
    const batch = Math.min(20, total - done);
    await Promise.all(
      Array.from({ length: batch }, async () => {
        const conn = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
        try {
          expectOk(await conn.command('NOOP'), 'Noop done', 'NOOP');
          expectOk(await conn.logout(), 'bye-bye', 'LOGOUT');
        } finally {
          conn.destroy();
        }
      }),
    );
    done += batch;
  }
  const churnSeconds = (performance.now() - t0) / 1000;
  // the last connections' teardown and any deferred frees settle first
  await sleep(1_000);
  const soon = serverMemory(ctx);
  // then the figure of a server at rest, as an operator finds it between bursts
  if (ctx.sizes.restMs > 1_000) await sleep(ctx.sizes.restMs - 1_000);
  const m = ctx.sizes.restMs > 1_000 ? serverMemory(ctx) : soon;
  return {
    value: m.anonMiB,
    correct: m.processes.length > 0 && done === total,
    ...(done === total ? {} : { error: `only ${done} of ${total} connections opened and closed within 120 s` }),
    details: {
      rssMiB: m.rssMiB,
      restSeconds: ctx.sizes.restMs / 1000,
      anonMiBAfter1s: soon.anonMiB,
      rssMiBAfter1s: soon.rssMiB,
      connectionsOpenedAndClosed: done,
      churnSeconds,
      processes: m.processes,
    },
  };
}

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
