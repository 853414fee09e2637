/**
 * C24 C26 C32 (and C36, C54): FIND "<name>" (spec 3.7): the entry's MAILBOX
 * or RESERVE line, if any, then OK. Names are compared as bytes.
 */
import type { Entry } from '../../store/types.js';
import { serverPart } from '../location.js';
import { entryLine } from '../update-stream.js';
import { statusLine } from '../wire/encoder.js';
import type { CommandContext, CommandDefinition } from './types.js';

const DONE = 'Search completed';

/** In a push session under the queue policy, an entry held by another server is not shown to FIND. */
function hidesFromPush(entry: Entry, ctx: CommandContext): boolean {
  const pushServer = ctx.memory.pushServer;
  return pushServer !== null && ctx.settings.conflictPolicy === 'queue' && serverPart(entry.location) !== pushServer;
}

/** FIND's whole answer: the entry's line (if shown) and the OK. */
function findAnswer(tag: Buffer, name: Buffer, ctx: CommandContext): Buffer {
  const entry = ctx.store.find(name);
  if (entry && hidesFromPush(entry, ctx)) {
    // ctl_mboxlist -m would delete its local copy on seeing another server here (spec 7.3);
    // with no data it sends ACTIVATE instead, which is then queued as a conflict.
    ctx.log.info(
      { peer: ctx.peer, name: name.toString('latin1'), pushFrom: ctx.memory.pushServer, holder: entry.location.toString('latin1') },
      'FIND in a backend push: entry held by another server not shown',
    );
  } else if (entry) {
    return Buffer.concat([entryLine(tag, entry), statusLine(tag, 'OK', DONE)]);
  }
  return statusLine(tag, 'OK', DONE);
}

export const find: CommandDefinition = {
  word: 'FIND',
  args: { min: 1, max: 1 },
  needsLogin: true,
  run({ tag, args }, ctx) {
    ctx.answer(findAnswer(tag, args[0], ctx), 'OK');
  },
  // FIND of a name none of the pending writes touches reads the same entry before their commit as after it.
  answerAhead: ({ tag, args }, ctx) => findAnswer(tag, args[0], ctx),
};
