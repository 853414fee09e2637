/**
 * Durable writes: ACTIVATE at several depths, the backends' connect-per-write
 * churn, and a Murder CREATE (RESERVE, then ACTIVATE of the same name). Every
 * acknowledged write is read back with FIND afterwards.
 */
import { MupdateConn } from './client.js';
import { closedLoop, expectOk, openMany, type Expected } from './measure.js';
import { ADMIN, PASSWORD } from './servers.js';
import { checkWrites, withCpu, writeEntry, type Context, type Measurement } from './workload-kit.js';

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

/**
 * What a backend does for each CREATE in a Murder: RESERVE the name, wait for
 * its OK, ACTIVATE it, wait for its OK, then the next name; one connection,
 * one command in flight. The value is CREATEs (RESERVE + ACTIVATE pairs) per
 * second.
 */
export async function createSequential(ctx: Context): Promise<Measurement> {
  const conn = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
  const expected = new Map<string, Expected | null>();
  const details: Record<string, unknown> = { connections: 1, inFlight: 1 };
  try {
    const { result, serverCpuMs, clientCpuMs } = await withCpu(ctx, () =>
      closedLoop([conn], 1, ctx.sizes.throughputMs, ctx.sizes.maxOps, async (c, _i, seq) => {
        const e = writeEntry('bcr', 0, seq);
        expectOk(await c.command(`RESERVE "${e.name}" "${e.location}"`), 'done', `RESERVE ${e.name}`);
        expectOk(await c.activate(e.name, e.location, e.acl), 'done', `ACTIVATE ${e.name}`);
        expected.set(e.name, e);
      }),
    );
    Object.assign(details, { creates: result.ops, seconds: result.elapsedMs / 1000, serverCpuMs, clientCpuMs });
    await conn.logout();
    await checkWrites(ctx, expected, details);
    return { value: result.perSecond, correct: true, details };
  } finally {
    conn.destroy();
  }
}
