/**
 * C22: STARTTLS (spec 3.12), known only when TLS is configured, refused after
 * login and after a first successful one. The OK leaves in cleartext; the
 * session then drops whatever the client pipelined and wraps the socket
 * (tls-upgrade.ts).
 */
import type { CommandDefinition } from './types.js';

export const starttls: CommandDefinition = {
  word: 'STARTTLS',
  args: { min: 0, max: 0 },
  needsLogin: false,
  needsTls: true,
  refusedAfterLogin: "Can't Starttls after authentication",
  run({ tag }, ctx) {
    if (ctx.connection.tlsActive) return ctx.bad(tag, 'Already did a successful Starttls');
    ctx.reply(tag, 'OK', 'Begin TLS negotiation now');
    ctx.startTls();
  },
};
