/** Bytes that carry MUPDATE syntax, the building blocks of the fuzzing tests' junk. */

/** CR LF, a bare LF, a lone CR. */
export const LINE_ENDS = ['\r\n', '\n', '\r'];

/** What opens, escapes or closes a quoted string or a literal count. */
export const STRING_SYNTAX = ['"', '\\', '{', '}', '+'];
