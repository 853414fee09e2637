/**
 * What can go wrong on the client side of a MUPDATE connection, one class
 * per cause, so callers decide by `instanceof` and never by message text.
 */
import { TEXT } from '../wire/reader.js';

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

/**
 * The reader's texts are the server's BAD answers ("Need command" is a line
 * with no tag and space); a client's log says what the server's line was.
 */
const MALFORMED: Readonly<Record<string, string>> = {
  [TEXT.needCommand]: 'a line that does not start with a tag and a space',
  [TEXT.nullCommand]: 'a tag without a response word',
  [TEXT.missing]: 'a response with too few strings',
  [TEXT.extra]: 'a response with too many strings, or bytes after them',
  [TEXT.badlyFormed]: 'a response with badly formed strings',
};

/** A line from the server that is not a MUPDATE response; `readerText` is the reader's reason. */
export class MalformedResponseError extends MupdateClientError {
  constructor(readerText: string, tag: Buffer | null) {
    const at = tag ? ` (tag ${JSON.stringify(tag.toString('latin1'))})` : '';
    super(`malformed response from the server: ${MALFORMED[readerText] ?? readerText}${at}`);
  }
}
