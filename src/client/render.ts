/**
 * How `mupdated client` shows MUPDATE responses: rows for people (names in the
 * syntax they can be typed back in, ACLs as `user → rights`, ANSI colour only
 * when asked for) and one JSON object per response for scripts. Pure: no I/O.
 */
import { showBytes } from '../admin/conflict-view.js';
import { isStatus, statusText, type Response } from '../mupdate/client/responses.js';
import { quoteArg } from './input.js';

export interface Style {
  color: boolean;
}

const CODES = {
  reset: '\x1b[0m',
  bold: '\x1b[1m',
  dim: '\x1b[2m',
  red: '\x1b[31m',
  green: '\x1b[32m',
  yellow: '\x1b[33m',
  blue: '\x1b[34m',
  magenta: '\x1b[35m',
  cyan: '\x1b[36m',
} as const;
export type Colour = Exclude<keyof typeof CODES, 'reset'>;

export function paint(style: Style, colour: Colour, text: string): string {
  return style.color && text !== '' ? `${CODES[colour]}${text}${CODES.reset}` : text;
}

/** Colour on a terminal unless NO_COLOR is set to something (https://no-color.org). */
export function colourWanted(isTTY: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  return !!isTTY && !(env.NO_COLOR !== undefined && env.NO_COLOR !== '');
}

/** Visible width (ANSI codes take none). */
function width(s: string): number {
  return [...s.replace(/\x1b\[[0-9;]*m/g, '')].length;
}

function padTo(s: string, n: number): string {
  const w = width(s);
  return w >= n ? s : s + ' '.repeat(n - w);
}

export interface AclPair {
  id: Buffer;
  rights: Buffer;
}

/** The pairs of a Cyrus ACL (`id<TAB>rights<TAB>...`); null when it is not of that form. */
export function aclPairs(acl: Buffer): AclPair[] | null {
  if (acl.length === 0) return [];
  if (acl[acl.length - 1] !== 0x09) return null;
  const fields: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < acl.length; i++) {
    if (acl[i] === 0x09) {
      fields.push(acl.subarray(start, i));
      start = i + 1;
    }
  }
  if (fields.length % 2 !== 0) return null;
  const pairs: AclPair[] = [];
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i].length === 0) return null;
    pairs.push({ id: fields[i], rights: fields[i + 1] });
  }
  return pairs;
}

/** An ACL for people: `bob → lrs, anyone → p`; in Cyrus form (typeable) when that would be ambiguous. */
export function renderAcl(acl: Buffer, style: Style): string {
  const pairs = aclPairs(acl);
  if (pairs && pairs.length === 0) return paint(style, 'dim', '(no ACL)');
  const plain = (b: Buffer) => !b.some((c) => c === 0x20 || c === 0x2c || c === 0x22 || c === 0x09);
  if (!pairs || !pairs.every((p) => plain(p.id) && plain(p.rights))) return quoteArg(acl);
  return pairs.map((p) => `${quoteArg(p.id)} ${paint(style, 'dim', '→')} ${quoteArg(p.rights)}`).join(', ');
}

const KEYWORD_COLOUR: Record<string, Colour> = {
  MAILBOX: 'green',
  RESERVE: 'yellow',
  DELETE: 'red',
  OK: 'green',
  NO: 'red',
  BAD: 'red',
  BYE: 'magenta',
};

/** The columns of one data line (keyword, name, location, ACL), or null if it is not one. */
function dataColumns(r: Response, style: Style): string[] | null {
  const kw = paint(style, KEYWORD_COLOUR[r.word] ?? 'cyan', r.word);
  if (r.word === 'MAILBOX' && r.args.length >= 3) {
    return [kw, quoteArg(r.args[0]), quoteArg(r.args[1]), renderAcl(r.args[2], style)];
  }
  if (r.word === 'RESERVE' && r.args.length >= 2) return [kw, quoteArg(r.args[0]), quoteArg(r.args[1])];
  if (r.word === 'DELETE' && r.args.length >= 1) return [kw, quoteArg(r.args[0])];
  return null;
}

/** A status line: `OK done`, `NO mailbox already exists`. */
export function renderStatus(word: string, text: string, style: Style): string {
  return `${paint(style, KEYWORD_COLOUR[word] ?? 'cyan', word)}${text ? ` ${text}` : ''}`;
}

/** Any response line in a generic form (used for what is neither data nor status). */
function renderOther(r: Response, style: Style): string {
  const rest = r.args.map((a) => showBytes(a)).join(' ');
  return `${paint(style, 'cyan', `${r.tag} ${r.word}`)}${rest ? ` ${rest}` : ''}`;
}

const MAX_COLUMN = 48;

/** Data lines as aligned rows (one per line). */
export function renderRows(rows: Response[], style: Style): string[] {
  const cols = rows.map((r) => dataColumns(r, style));
  const widths: number[] = [7];
  for (const c of cols) {
    if (!c) continue;
    c.forEach((v, i) => {
      widths[i] = Math.min(MAX_COLUMN, Math.max(widths[i] ?? 0, width(v)));
    });
  }
  return rows.map((r, k) => {
    const c = cols[k];
    if (!c) return isStatus(r) ? renderStatus(r.word, statusText(r), style) : renderOther(r, style);
    return c
      .map((v, i) => (i === c.length - 1 ? v : padTo(v, widths[i])))
      .join('  ')
      .trimEnd();
  });
}

/** One line on its own (a change in `watch`). */
export function renderLine(r: Response, style: Style): string {
  return renderRows([r], style)[0];
}

/** Local time as HH:MM:SS.mmm. */
export function timestamp(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** A protocol line on the wire, as `C: ...` / `S: ...` (bytes escaped like showBytes). */
export function renderWire(prefix: string, line: Buffer, style: Style): string {
  return paint(style, 'dim', `${prefix} ${showBytes(line)}`);
}

// ---------------------------------------------------------------------------
// JSON

export type JsonObject = Record<string, unknown>;

/** One response as a JSON object; byte strings are written like showBytes (\t, \\, \xNN). */
export function responseJson(r: Response): JsonObject {
  const out: JsonObject = { tag: r.tag, response: r.word };
  if (r.word === 'MAILBOX' && r.args.length >= 3) {
    const pairs = aclPairs(r.args[2]);
    out.name = showBytes(r.args[0]);
    out.location = showBytes(r.args[1]);
    out.acl = showBytes(r.args[2]);
    out.rights = pairs ? pairs.map((p) => ({ id: showBytes(p.id), rights: showBytes(p.rights) })) : null;
  } else if (r.word === 'RESERVE' && r.args.length >= 2) {
    out.name = showBytes(r.args[0]);
    out.location = showBytes(r.args[1]);
  } else if (r.word === 'DELETE' && r.args.length >= 1) {
    out.name = showBytes(r.args[0]);
  } else if (isStatus(r)) {
    out.text = statusText(r);
  } else {
    out.text = r.args.map((a) => showBytes(a)).join(' ');
  }
  return out;
}

// ---------------------------------------------------------------------------
// stats

export interface StatsRow {
  server: Buffer;
  /** null when the location has no `!`. */
  partition: Buffer | null;
  active: number;
  reserved: number;
}

/** Entries per server and partition (location split at its first `!`), sorted by bytes. */
export function statsFromList(data: Response[]): StatsRow[] {
  const rows = new Map<string, StatsRow & { key: Buffer }>();
  for (const r of data) {
    if ((r.word !== 'MAILBOX' && r.word !== 'RESERVE') || r.args.length < 2) continue;
    const loc = r.args[1];
    const bang = loc.indexOf(0x21);
    const server = bang < 0 ? loc : loc.subarray(0, bang);
    const partition = bang < 0 ? null : loc.subarray(bang + 1);
    const key = Buffer.concat([server, Buffer.of(0), partition ? Buffer.concat([Buffer.of(1), partition]) : Buffer.alloc(0)]);
    const k = key.toString('latin1');
    let row = rows.get(k);
    if (!row) {
      row = { key, server, partition, active: 0, reserved: 0 };
      rows.set(k, row);
    }
    if (r.word === 'MAILBOX') row.active++;
    else row.reserved++;
  }
  return [...rows.values()]
    .sort((a, b) => Buffer.compare(a.key, b.key))
    .map(({ server, partition, active, reserved }) => ({ server, partition, active, reserved }));
}

export function renderStats(rows: StatsRow[], style: Style): string[] {
  if (rows.length === 0) return ['no entries'];
  const total = rows.reduce((t, r) => ({ active: t.active + r.active, reserved: t.reserved + r.reserved }), { active: 0, reserved: 0 });
  const table = [
    ['SERVER', 'PARTITION', 'ACTIVE', 'RESERVED', 'TOTAL'],
    ...rows.map((r) => [
      quoteArg(r.server),
      r.partition ? quoteArg(r.partition) : '(none)',
      String(r.active),
      String(r.reserved),
      String(r.active + r.reserved),
    ]),
    ['total', '', String(total.active), String(total.reserved), String(total.active + total.reserved)],
  ];
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  return table.map((row, k) => {
    const line = row
      .map((v, i) => (i >= 2 ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
    return k === 0 || k === table.length - 1 ? paint(style, 'bold', line) : line;
  });
}

export function statsJson(r: StatsRow): JsonObject {
  return {
    response: 'STATS',
    server: showBytes(r.server),
    partition: r.partition ? showBytes(r.partition) : null,
    active: r.active,
    reserved: r.reserved,
  };
}
