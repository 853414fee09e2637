/**
 * C33 C34 C35 (and C52-C54): LIST ["<location prefix>"] (spec 3.8): every
 * entry whose location starts with the prefix, in directory order, then OK.
 * A LIST "<servername>!" right after login marks a backend's startup push
 * (`ctl_mboxlist -m`, spec 7.3), which FIND and the write log then know.
 */
import { runWatchedDump } from './dump-watch.js';
import type { CommandDefinition } from './types.js';

const BANG = 0x21;

export const list: CommandDefinition = {
  word: 'LIST',
  args: { min: 0, max: 1 },
  needsLogin: true,
  async run({ tag, args }, ctx) {
    const prefix = args[0];
    if (ctx.connection.commandsSinceLogin === 1 && prefix && prefix.length > 1 && prefix[prefix.length - 1] === BANG) {
      ctx.memory.pushServer = prefix.subarray(0, prefix.length - 1).toString('latin1');
      ctx.log.info({ peer: ctx.peer, server: ctx.memory.pushServer }, 'backend push session');
    }
    const output = ctx.output;
    const consumer = {
      begin: () => {},
      chunk: (chunk: Buffer, release: () => void): Promise<void> | void => {
        output.writeOwned(chunk, release);
        if (output.backlog > ctx.settings.socketHighWater) return output.drained();
      },
      isCancelled: () => ctx.connection.closed,
    };
    try {
      await runWatchedDump(ctx, 'LIST', () => ctx.dumps.dump(tag, { locationPrefix: prefix }, consumer));
    } catch (err) {
      // A LIST cut short must not end in OK.
      ctx.log.error({ peer: ctx.peer, err: (err as Error).message }, 'LIST failed');
      return ctx.destroy();
    }
    if (ctx.connection.closed) return;
    ctx.reply(tag, 'OK', 'list complete');
  },
};
