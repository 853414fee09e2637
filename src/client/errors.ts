/** Why `mupdated client` stops or reports an error; each is shown as one line. */

/** Bad flags or arguments (exit 2). */
export class UsageError extends Error {}

/** The connection is unusable (refused, TLS, login, closed, timed out); the message says why. */
export class ConnectionProblem extends Error {}

/** The password prompt was left with Ctrl-C or Ctrl-D. */
export class Interrupted extends Error {}
