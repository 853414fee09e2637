/**
 * C16 C17 C18 C19 C20 C21 C58 C59 (and C23): AUTHENTICATE "<mechanism>"
 * ["<initial response>"] (spec 3.2). The exchange itself is
 * sasl/sasl-exchange.ts; this module gives it the connection's lines and
 * turns its outcome into OK or NO, after the failed-login pause.
 */
import { runSaslExchange, type SaslLineIo } from '../../sasl/sasl-exchange.js';
import type { CommandContext, CommandDefinition } from './types.js';

/** A failed login: NO after the pause (credential failures), closing after too many. */
async function loginRefused(tag: Buffer, text: string, credentialsAt: number | null, ctx: CommandContext): Promise<void> {
  const wait = credentialsAt === null ? 0 : credentialsAt + ctx.settings.failedLoginPauseMs - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  ctx.reply(tag, 'NO', text);
  if (++ctx.memory.failedLogins >= ctx.settings.maxFailedLogins) ctx.bye('Too many failed logins');
}

export const authenticate: CommandDefinition = {
  word: 'AUTHENTICATE',
  args: { min: 1, max: 2 },
  needsLogin: false,
  refusedAfterLogin: 'already authenticated',
  async run({ tag, args }, ctx) {
    const io: SaslLineIo = {
      challenge: (data: Buffer) => ctx.write(Buffer.from(`${data.toString('base64')}\r\n`)),
      response: () => ctx.readSaslLine(),
      beforeCheck: (user: string) =>
        ctx.waitForGuess(() => ctx.log.warn({ peer: ctx.peer, user }, 'failed-login budget of this address spent, password check waits')),
      failedCheck: () => ctx.failedGuess(),
    };
    const outcome = await runSaslExchange(args[0], args[1], io, ctx.auth, ctx.offeredMechanisms());
    if (ctx.connection.closed || outcome.kind === 'gone') return;
    if (outcome.kind === 'canceled') return ctx.reply(tag, 'NO', 'Client canceled authentication');
    if (outcome.kind === 'refused') {
      if (outcome.user !== undefined) ctx.log.warn({ peer: ctx.peer, user: outcome.user, authzid: outcome.authzid }, 'login refused');
      return loginRefused(tag, outcome.text, outcome.credentialsAt, ctx);
    }
    const { identity, mechanism } = outcome;
    ctx.loggedIn(identity);
    ctx.log.info({ peer: ctx.peer, user: identity.name, authcid: identity.authcid, admin: identity.admin, mechanism }, 'login');
    ctx.reply(tag, 'OK', 'Authenticated');
  },
};
