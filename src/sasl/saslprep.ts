/**
 * SASLprep (RFC 4013), as SCRAM applies it to passwords: non-ASCII spaces
 * become a space, "mapped to nothing" characters go, NFKC, and prohibited
 * characters (controls, private use, surrogates, non-characters, unassigned)
 * make the string unusable. The bidirectional-text rule is not checked.
 */

/** RFC 3454 C.1.2: non-ASCII space characters. */
const NON_ASCII_SPACE = /[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/gu;
/** RFC 3454 B.1: commonly mapped to nothing. */
const MAPPED_TO_NOTHING = /[\u00ad\u034f\u1806\u180b-\u180d\u200b-\u200d\u2060\ufe00-\ufe0f\ufeff]/gu;
/** RFC 3454 C.2-C.9, approximated by Unicode categories plus the listed code points. */
const PROHIBITED = /[\p{Cc}\p{Co}\p{Cs}\p{Cn}\u0340\u0341\u200e\u200f\u202a-\u202e\u206a-\u206f\u2ff0-\u2ffb\ufff9-\ufffd]/u;

/** The prepared string, or null when it contains a prohibited character. */
export function saslprep(input: string): string | null {
  const mapped = input.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
  return PROHIBITED.test(mapped) ? null : mapped;
}
