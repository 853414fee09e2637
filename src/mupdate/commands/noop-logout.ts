/**
 * C40 (and C15, C57): NOOP (spec 3.10, 5.4) and LOGOUT (spec 3.11), the two
 * commands legal on a streaming connection. On a stream, NOOP's OK follows
 * every change committed before it (a slave first flushes from its master).
 */
import type { CommandDefinition } from './types.js';

export const noop: CommandDefinition = {
  word: 'NOOP',
  args: { min: 0, max: 0 },
  needsLogin: true,
  whileStreaming: true,
  async run({ tag }, ctx) {
    if (ctx.connection.state === 'streaming') {
      if (ctx.role.kind === 'slave') await ctx.role.syncWithMaster();
      else await ctx.store.sync?.();
      // Everything committed before this NOOP goes out before its OK, in slices that wait for the socket.
      await ctx.connection.stream?.flush();
    }
    ctx.reply(tag, 'OK', 'Noop done');
  },
};

export const logout: CommandDefinition = {
  word: 'LOGOUT',
  args: { min: 0, max: 0 },
  needsLogin: false,
  whileStreaming: true,
  run({ tag }, ctx) {
    ctx.reply(tag, 'OK', 'bye-bye');
    ctx.end();
  },
};
