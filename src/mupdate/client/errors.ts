/**
 * What can go wrong on the client side of a MUPDATE connection, one class
 * per cause, so callers decide by `instanceof` and never by message text.
 */

/** Any failure of the connection, its login or a response (the message says what happened). */
export class MupdateClientError extends Error {}

/** No answer in time: while connecting, or while waiting for a response. */
export class TimeoutError extends MupdateClientError {
  constructor(
    readonly phase: 'connect' | 'response',
    message: string,
  ) {
    super(message);
  }
}

/** The TCP connection could not be made; `code` is the system's (ECONNREFUSED, ENOTFOUND, ...). */
export class ConnectFailed extends MupdateClientError {
  constructor(
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** The server closed the connection (or the stream ended) while an answer was awaited. */
export class ConnectionClosed extends MupdateClientError {}

/** The server's banner was a BYE: it refuses the connection. */
export class BannerRefused extends MupdateClientError {}

/** TLS is required but the server's banner does not offer STARTTLS. */
export class StartTlsUnavailable extends MupdateClientError {}

/** The server answered STARTTLS with something other than OK. */
export class StartTlsRefused extends MupdateClientError {}

/** The TLS handshake failed; `reason` is the TLS library's words (a certificate problem, ...). */
export class TlsFailed extends MupdateClientError {
  constructor(readonly reason: string) {
    super(`TLS failed: ${reason}`);
  }
}

/** The server refused the credentials; `reason` is the text of its answer. */
export class LoginRefused extends MupdateClientError {
  constructor(
    readonly user: string,
    readonly reason: string,
  ) {
    super(`login as ${user} refused by the server: ${reason}`);
  }
}
