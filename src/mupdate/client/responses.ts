/** What a MUPDATE server answers, as the client reads it: responses, status words, a command's result. */
import type { ArgPolicy } from '../wire/reader.js';

export interface Response {
  tag: string;
  word: string;
  args: Buffer[];
}

/** A command's answer: its status line and the data lines before it. */
export interface CommandResult {
  status: string;
  text: string;
  tag: string;
  data: Response[];
}

/** The words of a status line; any other word is a data line. */
export const STATUS_WORDS: ReadonlySet<string> = new Set(['OK', 'NO', 'BAD', 'BYE']);

export function isStatus(r: Response): boolean {
  return STATUS_WORDS.has(r.word);
}

/** The text of a status line's raw rest: a quoted string unquoted, bare words as they are. */
export function statusText(r: Response): string {
  const raw = r.args[0]?.toString('utf8') ?? '';
  const m = /^"((?:[^"\\]|\\.)*)"$/s.exec(raw);
  return m ? m[1].replace(/\\(.)/gs, '$1') : raw;
}

/** A status line read as a command's result, with the data lines that came before it. */
export function commandResult(status: Response, data: Response[]): CommandResult {
  return { status: status.word, text: statusText(status), tag: status.tag, data };
}

/** How many arguments each data line has; any other word keeps its rest of line as one raw argument. */
export const RESPONSE_SHAPES: Readonly<Record<string, ArgPolicy>> = {
  MAILBOX: { kind: 'args', min: 3, max: 4 },
  RESERVE: { kind: 'args', min: 2, max: 3 },
  DELETE: { kind: 'args', min: 1, max: 2 },
  XSYNC: { kind: 'args', min: 3, max: 4 },
  XRESUME: { kind: 'args', min: 1, max: 1 },
};

export const RESPONSE_LIMITS = { maxTag: 256, maxWord: 256, maxString: 1 << 20, maxCommand: 4 << 20, maxSaslLine: 1 << 16 };
