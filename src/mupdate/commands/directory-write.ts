/**
 * C37 C50 (and C23's RESERVE+ACTIVATE): what the four directory writes share.
 * Only an admin identity writes; the change is acknowledged only once the
 * store has committed it durably; a storage failure is a tagged NO. Each
 * write module supplies its rule from directory-rules.ts.
 */
import { StorageError, StorageUnavailable } from '../../store/types.js';
import { MAX_NAME_BYTES } from '../../store/order.js';
import * as rules from '../directory-rules.js';
import type { CommandContext, CommandDefinition, CommandInput } from './types.js';

type Decide = ReturnType<typeof rules.remove>;

export interface WriteRule {
  word: 'ACTIVATE' | 'RESERVE' | 'DEACTIVATE' | 'DELETE';
  args: number;
  /** The write creates an entry: a name too long to store is refused as such, not as missing. */
  creates: boolean;
  decide(args: Buffer[], writer: rules.Writer): Decide;
}

/**
 * Starts a write. Resolves, once it is durably committed (or refused), to
 * the function that writes its answer; the session writes answers in command order.
 */
function beginWrite(rule: WriteRule, { tag, args }: CommandInput, ctx: CommandContext): Promise<() => void> {
  const identity = ctx.connection.identity!;
  if (!identity.admin) return Promise.resolve(() => ctx.reply(tag, 'NO', 'permission denied: read-only identity'));
  const name = args[0];
  if (name.length > MAX_NAME_BYTES) {
    // Such a name cannot be stored, so it cannot exist either.
    const text = rule.creates ? `mailbox name longer than ${MAX_NAME_BYTES} bytes` : rules.WRITE_TEXT.missing;
    return Promise.resolve(() => ctx.reply(tag, 'NO', text));
  }
  const writer: rules.Writer = { policy: ctx.settings.conflictPolicy, user: identity.name, authcid: identity.authcid, peer: ctx.peer };
  const logFields = () => ({
    peer: ctx.peer,
    user: identity.name,
    authcid: identity.authcid,
    cmd: rule.word,
    name: name.toString('latin1'),
    location: args[1]?.toString('latin1'),
  });
  // The context stands for this connection, so the store commits a lone client's writes without batching delays.
  return ctx.store.mutate(name, rule.decide(args, writer), ctx).then(
    (outcome) => () => {
      if (outcome.ok) {
        ctx.log.debug(logFields(), 'directory change');
        return ctx.reply(tag, 'OK', rules.WRITE_TEXT.done);
      }
      if (outcome.conflictId !== undefined) {
        ctx.log.warn(
          { ...logFields(), conflict: outcome.conflictId, pushFrom: ctx.memory.pushServer },
          'duplicate mailbox claim queued as a conflict',
        );
      } else {
        ctx.log.info({ ...logFields(), refused: outcome.text }, 'directory change refused');
      }
      ctx.reply(tag, 'NO', outcome.text);
    },
    (err: Error) => () => {
      ctx.log.error({ ...logFields(), err: err.message, storage: err instanceof StorageError }, 'write failed');
      // "directory unavailable: ..." (spec cluster.md 2) tells the operator what to look at.
      ctx.reply(tag, 'NO', err instanceof StorageUnavailable ? err.message : 'directory storage failure');
    },
  );
}

export function directoryWrite(rule: WriteRule): CommandDefinition {
  return {
    word: rule.word,
    args: { min: rule.args, max: rule.args },
    needsLogin: true,
    masterOnly: true,
    beginWrite: (cmd, ctx) => beginWrite(rule, cmd, ctx),
    async run(cmd, ctx) {
      (await beginWrite(rule, cmd, ctx))();
    },
  };
}
