/** Builders for SASL PLAIN (RFC 4616) AUTHENTICATE commands. */

/** base64 of `authzid NUL authcid NUL password`. */
export function plainB64(authcid: string, password: string, authzid = ''): string {
  return Buffer.from(`${authzid}\0${authcid}\0${password}`, 'utf8').toString('base64');
}

/** `<tag> AUTHENTICATE "PLAIN" {n+}` CRLF `<base64>` CRLF, as the Cyrus client library sends it. */
export function authPlainCommand(tag: string, authcid: string, password: string, authzid = ''): string {
  const ir = plainB64(authcid, password, authzid);
  return `${tag} AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\n`;
}

/** Matches `<tag> NO "<one quoted string>"` (escapes allowed inside). */
export function taggedNoOneString(tag: string): RegExp {
  return new RegExp(`^${tag} NO "(?:[^"\\\\]|\\\\.)*"$`);
}
