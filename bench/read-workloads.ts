/** Reads under load: FIND of random preloaded names, and the mixed FIND/ACTIVATE/DELETE workload. */
import { entryAt, rng } from './dataset.js';
import { closedLoop, expectOk, openMany, type Expected } from './measure.js';
import { ADMIN, PASSWORD } from './servers.js';
import { checkFound, checkWrites, withCpu, writeEntry, type Context, type Measurement } from './workload-kit.js';

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
