/**
 * What a person types at `mupdated client`, turned into MUPDATE commands.
 *
 * Words are separated by spaces (or TABs); a word that starts with `"` runs to
 * the closing `"`. In both kinds of word these escapes work: `\t` `\n` `\r`
 * `\\` `\"` `\ ` (a space) and `\xNN` (any byte). Other characters are sent as
 * their UTF-8 bytes. `quoteArg` writes bytes back in this syntax, so whatever
 * the client shows can be typed back and means exactly the same bytes.
 */

export class InputError extends Error {}

const SP = 0x20;
const TAB = 0x09;

/** Splits a typed line into argument bytes. */
export function splitWords(line: string): Buffer[] {
  const words: Buffer[] = [];
  let i = 0;
  const n = line.length;
  const isSpace = (c: string | undefined) => c === ' ' || c === '\t';
  while (i < n) {
    while (i < n && isSpace(line[i])) i++;
    if (i >= n) break;
    const bytes: number[] = [];
    const quoted = line[i] === '"';
    if (quoted) i++;
    let closed = false;
    while (i < n) {
      const c = line[i];
      if (quoted && c === '"') {
        closed = true;
        i++;
        break;
      }
      if (!quoted && isSpace(c)) break;
      if (c === '\\') {
        const e = line[i + 1];
        if (e === undefined) throw new InputError('a backslash at the end of the line (type \\\\ for a backslash)');
        if (e === 'x') {
          const hex = line.slice(i + 2, i + 4);
          if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new InputError(`\\x needs two hex digits (got '\\x${hex}')`);
          bytes.push(parseInt(hex, 16));
          i += 4;
          continue;
        }
        const simple: Record<string, number> = { t: 0x09, n: 0x0a, r: 0x0d, '\\': 0x5c, '"': 0x22, ' ': 0x20 };
        const b = simple[e];
        if (b === undefined) {
          throw new InputError(`unknown escape '\\${e}' (escapes: \\t \\n \\r \\\\ \\" \\xNN; type \\\\ for a backslash)`);
        }
        bytes.push(b);
        i += 2;
        continue;
      }
      const cp = line.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
      i += ch.length;
    }
    if (quoted && !closed) throw new InputError('a quoted argument is not closed (missing ")');
    if (quoted && i < n && !isSpace(line[i])) throw new InputError('put a space after a closing quote');
    words.push(Buffer.from(bytes));
  }
  return words;
}

/** Bytes as one typeable argument: bare when that is unambiguous, else in quotes. */
export function quoteArg(b: Buffer): string {
  let out = '';
  let needQuotes = b.length === 0;
  for (const c of b) {
    if (c === SP || c === 0x22) needQuotes = true;
    if (c === TAB) out += '\\t';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x22) out += '\\"';
    else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  if (!needQuotes) return out;
  return `"${out}"`;
}

/** Bytes as one typeable argument without quotes (a space as `\ `), for completing what was typed bare. */
export function bareArg(b: Buffer): string {
  if (b.length === 0) return '""';
  const q = quoteArg(b);
  if (!q.startsWith('"')) return q;
  return q.slice(1, -1).replace(/ /g, '\\ ');
}

/**
 * The ACL argument of `activate`: either one argument containing a TAB, sent
 * as it is (Cyrus's own `id<TAB>rights<TAB>` form), or `id rights` pairs
 * (in one quoted argument or as separate words) turned into that form.
 */
export function aclFromWords(words: Buffer[]): Buffer {
  if (words.length === 1 && words[0].includes(TAB)) return words[0];
  if (words.some((w) => w.includes(TAB))) {
    throw new InputError('an ACL containing \\t is sent as typed: give it as one argument, e.g. "bob\\tlrs\\t"');
  }
  const parts: Buffer[] = [];
  for (const w of words) {
    let start = 0;
    for (let k = 0; k <= w.length; k++) {
      if (k === w.length || w[k] === SP) {
        if (k > start) parts.push(w.subarray(start, k));
        start = k + 1;
      }
    }
  }
  if (parts.length % 2 !== 0) {
    throw new InputError('the ACL needs identifier/rights pairs, e.g. "bob lrswipkxtecdan anyone p" (or "" for none)');
  }
  const out: Buffer[] = [];
  for (const p of parts) out.push(p, Buffer.of(TAB));
  return Buffer.concat(out);
}

export type ParsedCommand =
  /** A MUPDATE command sent with an automatic tag. */
  | { kind: 'protocol'; name: string; word: string; args: Buffer[] }
  /** A protocol line sent exactly as typed (the user writes the tag). */
  | { kind: 'raw'; name: 'raw'; line: string }
  | { kind: 'watch'; name: 'watch'; hosts: Buffer[]; dump: boolean; count: number | null }
  | { kind: 'stats'; name: 'stats'; prefix: Buffer | null }
  | { kind: 'help'; name: 'help'; topic: string | null }
  | { kind: 'quit'; name: 'quit' };

export interface CommandSpec {
  name: string;
  usage: string;
  help: string;
}

export const COMMANDS: CommandSpec[] = [
  { name: 'find', usage: 'find NAME', help: 'look up one mailbox (exact, case-sensitive name)' },
  { name: 'list', usage: 'list [PREFIX]', help: 'every entry, or those whose location starts with PREFIX' },
  { name: 'stats', usage: 'stats [PREFIX]', help: 'entries per server and partition, counted from a LIST' },
  {
    name: 'activate',
    usage: 'activate NAME LOCATION ACL',
    help: 'create/overwrite an active entry; ACL: "id rights ...", "" or "id\\trights\\t"',
  },
  { name: 'reserve', usage: 'reserve NAME LOCATION', help: 'reserve a name at a location' },
  { name: 'deactivate', usage: 'deactivate NAME LOCATION', help: 'turn an active entry into a reservation at LOCATION' },
  { name: 'delete', usage: 'delete NAME', help: 'remove an entry' },
  { name: 'noop', usage: 'noop', help: 'NOOP (checks that the connection is alive)' },
  {
    name: 'watch',
    usage: 'watch [HOST ...]',
    help: 'UPDATE on a second connection: each change live until Ctrl-C; --dump prints the entries first, --count N stops after N changes',
  },
  { name: 'raw', usage: 'raw TAG COMMAND ...', help: 'send a protocol line exactly as typed and show the answer' },
  { name: 'help', usage: 'help [COMMAND]', help: 'this list' },
  { name: 'quit', usage: 'quit', help: 'log out and leave (also exit, logout, Ctrl-D)' },
];

export const COMMAND_NAMES = COMMANDS.map((c) => c.name);

const ALIASES: Record<string, string> = { exit: 'quit', logout: 'quit', '?': 'help' };

const PROTOCOL: Record<string, { word: string; min: number; max: number }> = {
  find: { word: 'FIND', min: 1, max: 1 },
  list: { word: 'LIST', min: 0, max: 1 },
  reserve: { word: 'RESERVE', min: 2, max: 2 },
  deactivate: { word: 'DEACTIVATE', min: 2, max: 2 },
  delete: { word: 'DELETE', min: 1, max: 1 },
  noop: { word: 'NOOP', min: 0, max: 0 },
};

const PROTOCOL_WORDS = /^(AUTHENTICATE|ACTIVATE|RESERVE|DEACTIVATE|DELETE|FIND|LIST|UPDATE|NOOP|LOGOUT|STARTTLS|COMPRESS)\b/i;

export function usageOf(name: string): string {
  return COMMANDS.find((c) => c.name === name)?.usage ?? name;
}

function arity(name: string, got: number): InputError {
  const hint = got > 0 ? ' (quote an argument that contains spaces: "user.bob.Sent Items")' : '';
  return new InputError(`usage: ${usageOf(name)}${hint}`);
}

/** Parses one typed line; null for a blank line or a `#` comment. */
export function parseCommand(line: string): ParsedCommand | null {
  const trimmed = line.replace(/^[ \t]+/, '');
  if (trimmed === '' || trimmed.startsWith('#')) return null;
  const m = /^(\S+)(?:[ \t]+(.*))?$/s.exec(trimmed)!;
  const typed = m[1].toLowerCase();
  const name = ALIASES[typed] ?? typed;
  const rest = m[2] ?? '';
  if (name === 'raw') {
    if (rest.trim() === '') throw new InputError('usage: raw TAG COMMAND ... (for example: raw X1 FIND "user.bob")');
    return { kind: 'raw', name: 'raw', line: rest };
  }
  const args = splitWords(rest);
  switch (name) {
    case 'quit':
      return { kind: 'quit', name: 'quit' };
    case 'help':
      return { kind: 'help', name: 'help', topic: args[0] ? args[0].toString('utf8').toLowerCase() : null };
    case 'activate': {
      if (args.length < 3) throw arity('activate', args.length);
      return { kind: 'protocol', name, word: 'ACTIVATE', args: [args[0], args[1], aclFromWords(args.slice(2))] };
    }
    case 'stats':
      if (args.length > 1) throw arity('stats', args.length);
      return { kind: 'stats', name: 'stats', prefix: args[0] ?? null };
    case 'watch': {
      let dump = false;
      let count: number | null = null;
      const hosts: Buffer[] = [];
      for (let k = 0; k < args.length; k++) {
        const a = args[k].toString('latin1');
        if (a === '--dump') dump = true;
        else if (a === '--count') {
          const v = Number(args[++k]?.toString('latin1'));
          if (!Number.isInteger(v) || v < 1) throw new InputError('watch --count needs a whole number >= 1');
          count = v;
        } else if (a.startsWith('--')) throw new InputError('usage: watch [--dump] [--count N] [HOST ...]');
        else hosts.push(args[k]);
      }
      if (hosts.length > 30) throw new InputError('watch takes at most 30 hosts');
      if (hosts.some((h) => h.length === 0)) throw new InputError('watch: a host name cannot be empty');
      return { kind: 'watch', name: 'watch', hosts, dump, count };
    }
    default: {
      const spec = PROTOCOL[name];
      if (!spec) {
        const looksTagged = PROTOCOL_WORDS.test(rest);
        const hint = looksTagged ? ` (to send a protocol line as typed: raw ${trimmed})` : ' (type help for the list)';
        throw new InputError(`unknown command '${m[1]}'${hint}`);
      }
      if (args.length < spec.min || args.length > spec.max) throw arity(name, args.length);
      return { kind: 'protocol', name, word: spec.word, args };
    }
  }
}

/** The text of `help` (all commands, or one). */
export function helpText(topic: string | null): string {
  const list = topic ? COMMANDS.filter((c) => c.name === (ALIASES[topic] ?? topic)) : COMMANDS;
  if (list.length === 0) return `no command '${topic}' (type help for the list)\n`;
  const width = Math.max(...list.map((c) => c.usage.length));
  const room = Math.max(30, 78 - width - 4);
  const lines: string[] = [];
  for (const c of list) {
    // the description wrapped to fit 80 columns, continuation lines under its start
    const words = c.help.split(' ');
    let cur = '';
    const parts: string[] = [];
    for (const w of words) {
      if (cur && cur.length + 1 + w.length > room) {
        parts.push(cur);
        cur = w;
      } else cur = cur ? `${cur} ${w}` : w;
    }
    parts.push(cur);
    parts.forEach((p, i) => lines.push(`  ${(i === 0 ? c.usage : '').padEnd(width)}  ${p}`));
  }
  if (!topic) {
    lines.push(
      '',
      '  Arguments are typed plainly; quote one with spaces ("user.bob.Sent Items").',
      '  Escapes: \\t \\\\ \\" \\xNN. Names are shown in this syntax and can be typed back.',
    );
  }
  return lines.join('\n') + '\n';
}
