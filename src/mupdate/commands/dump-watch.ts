/**
 * C45 (and spec 3.8, 3.9): a LIST or UPDATE dump whose reader takes nothing
 * for the configured time ends the connection: LIST with `* BYE`, an UPDATE
 * dump without a word (the session's bye() knows).
 */
import { metricsHooks } from '../../metrics/hooks.js';
import { underStallWatch } from '../dump-stall.js';
import type { CommandContext } from './types.js';

/** Runs a LIST or UPDATE dump under a StallWatch (dump-stall.ts) that the connection's output feeds. */
export function runWatchedDump(ctx: CommandContext, what: 'LIST' | 'UPDATE', dump: () => Promise<void>): Promise<void> {
  return underStallWatch(
    ctx.settings.dumpStallTimeoutMs,
    (watch) => ctx.watchDump(watch),
    metricsHooks.timedDump(what, dump),
    (seconds) => {
      ctx.log.warn(
        { peer: ctx.peer, user: ctx.connection.identity?.name, command: what, seconds },
        'dump stalled: the client read nothing, closing',
      );
      ctx.bye(`${what} stalled: nothing read for ${seconds} s`);
    },
  );
}
