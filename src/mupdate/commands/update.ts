/**
 * C38 C39 C41 C43 C44 C45 C46 (and C63): UPDATE ["<host>" ...] (spec 3.9,
 * 5.3-5.5): the whole directory (or the listed hosts' part), OK, then every
 * change as it commits. XRESUME "<dbid>" "<seq>" ["<digest>"] (mupdated
 * extension, README) streams only what changed after `seq`.
 */
import { UpdateStream, type ResumeRequest } from '../update-stream.js';
import { runWatchedDump } from './dump-watch.js';
import type { CommandContext, CommandDefinition, CommandInput } from './types.js';

/** A slave that falls too far behind is closed; it will resync (C45). */
function streamOverflow(ctx: CommandContext, pending: { names: number; bytes: number }): void {
  ctx.log.warn(
    {
      peer: ctx.peer,
      user: ctx.connection.identity?.name,
      pendingNames: pending.names,
      pendingBytes: pending.bytes,
      limits: { names: ctx.settings.streamQueueLimit, bytes: ctx.settings.streamQueueBytes },
    },
    'UPDATE stream fell too far behind, closing',
  );
  ctx.bye('Stream backlog too large, please resync');
}

async function startUpdate(tag: Buffer, hostArgs: Buffer[], ctx: CommandContext, resume?: ResumeRequest): Promise<void> {
  // Gone while the command waited (XRESUME's catch-up on a cluster node): a stream now would never be stopped.
  if (ctx.connection.closed) return;
  const hosts = hostArgs.length ? new Set(hostArgs.map((h) => h.toString('latin1'))) : null;
  const stream = new UpdateStream(
    tag,
    hosts,
    ctx.output,
    {
      queueLimit: ctx.settings.streamQueueLimit,
      queueBytes: ctx.settings.streamQueueBytes,
      highWater: ctx.settings.socketHighWater,
    },
    (pending) => streamOverflow(ctx, pending),
  );
  ctx.startStreaming(stream);
  ctx.log.info({ peer: ctx.peer, user: ctx.connection.identity?.name, hosts: hosts ? [...hosts] : 'all' }, 'UPDATE stream starts');
  try {
    await runWatchedDump(ctx, 'UPDATE', () => stream.run(ctx.store, ctx.dumps, resume));
  } catch (err) {
    // A dump cut short must not end in OK: the client would take it as the whole directory.
    ctx.log.error({ peer: ctx.peer, err: (err as Error).message }, 'UPDATE dump failed');
    return ctx.destroy();
  }
  if (ctx.connection.closed || stream.overflowed) return;
  ctx.reply(tag, 'OK', 'streaming starts');
  stream.goLive();
}

export const update: CommandDefinition = {
  word: 'UPDATE',
  // Cyrus takes at most 30 hosts (C43).
  args: { min: 0, max: 30, hosts: true },
  needsLogin: true,
  run: ({ tag, args }: CommandInput, ctx) => startUpdate(tag, args, ctx),
};

export const xresume: CommandDefinition = {
  word: 'XRESUME',
  args: { min: 2, max: 3 },
  needsLogin: true,
  async run({ tag, args }, ctx) {
    // Decimal digits only: Number() would also take "", " ", "0x10" or "1e3".
    const text = args[1].toString('latin1');
    const after = /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(after)) return ctx.bad(tag, 'Badly formed arguments');
    // A cluster node first catches up, so a slave that followed another node resumes here.
    await ctx.store.sync?.();
    return startUpdate(tag, [], ctx, { dbid: args[0].toString('latin1'), after, digest: args[2]?.toString('latin1') });
  },
};
