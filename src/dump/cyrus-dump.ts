/**
 * The Cyrus 3.6 `ctl_mboxlist -d` JSON format (spec 7.4), streamed both ways:
 * one `"name": {...}` line per mailbox, so a million entries never sit in
 * memory at once. Bytes that are not UTF-8, and ACLs that are not
 * `id TAB rights TAB` pairs, travel in an extra `x_raw` object (base64),
 * which Cyrus ignores; mupdated reads it back exactly.
 */
import type { Entry } from '../store/types.js';
import { JsonSyntaxError, OrderedObject, parseOrderedJson, type OrderedJson } from './ordered-json.js';
import { scanRecordLine } from './record-line.js';

// ignoreBOM: a name, server or ACL id may start with U+FEFF, which must come back as it was.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function utf8(b: Buffer): string | null {
  try {
    return decoder.decode(b);
  } catch {
    return null;
  }
}

/** ACL bytes as Cyrus's object (in order), or null when the bytes would not come back the same from it. */
function aclObject(acl: Buffer): OrderedObject | null {
  const text = utf8(acl);
  if (text === null) return null;
  if (text === '') return new OrderedObject([]);
  if (!text.endsWith('\t')) return null;
  const parts = text.slice(0, -1).split('\t');
  if (parts.length % 2 !== 0) return null;
  const pairs: Array<[string, string]> = [];
  const seen = new Set<string>();
  for (let i = 0; i < parts.length; i += 2) {
    const id = parts[i];
    if (id === '' || seen.has(id)) return null;
    seen.add(id);
    pairs.push([id, parts[i + 1]]);
  }
  return new OrderedObject(pairs);
}

export function aclFromObject(acl: OrderedJson | undefined): Buffer {
  if (!(acl instanceof OrderedObject)) return Buffer.alloc(0);
  let s = '';
  for (const [id, rights] of acl.pairs) s += `${id}\t${jsonText(rights)}\t`;
  return Buffer.from(s, 'utf8');
}

/** One dump line (without the separating comma). */
export function dumpLine(e: Entry, mtime: number): string {
  const raw: Record<string, string> = {};
  const name = utf8(e.name);
  if (name === null) raw.name = e.name.toString('base64');
  const bang = e.location.indexOf(0x21);
  const serverBytes = bang < 0 ? e.location : e.location.subarray(0, bang);
  const server = utf8(serverBytes);
  const partition = bang < 0 ? undefined : utf8(e.location.subarray(bang + 1));
  if (server === null || partition === null) raw.location = e.location.toString('base64');
  const acl = aclObject(e.acl);
  if (acl === null) raw.acl = e.acl.toString('base64');
  const shownName = name ?? e.name.toString('latin1');
  const obj: Record<string, unknown> = {
    name: shownName,
    mtime: String(mtime),
    uidvalidity: '0',
    createdmodseq: '0',
    foldermodseq: '0',
    mbtype: e.state === 'reserved' ? 'erz' : 'er',
  };
  if (partition !== undefined) obj.partition = partition ?? '';
  obj.server = server ?? serverBytes.toString('latin1');
  obj.acl = acl ?? new OrderedObject([]);
  obj.name_history = [];
  if (Object.keys(raw).length) obj.x_raw = raw;
  return `${JSON.stringify(shownName)}: ${janssonJson(obj)}`;
}

/** JSON with jansson's separators (", " and ": "), as ctl_mboxlist writes it. */
function janssonJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(janssonJson).join(', ')}]`;
  if (value instanceof OrderedObject) {
    return `{${value.pairs.map(([k, v]) => `${JSON.stringify(k)}: ${janssonJson(v)}`).join(', ')}}`;
  }
  if (value && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}: ${janssonJson(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value);
}

/** Writes a whole dump through `write` (which may apply backpressure). */
export async function writeDump(entries: Iterable<Entry>, write: (chunk: string) => Promise<void> | void): Promise<number> {
  const mtime = Math.floor(Date.now() / 1000);
  await write('{\n');
  let n = 0;
  let pending = '';
  for (const e of entries) {
    pending += (n++ ? ',\n' : '') + dumpLine(e, mtime);
    if (pending.length > 1 << 16) {
      await write(pending);
      pending = '';
    }
  }
  await write(`${pending}\n}\n`);
  return n;
}

export interface DumpRecord {
  name: Buffer;
  /** null: an entry the directory does not hold (deleted, intermediate). */
  entry: Entry | null;
  /** Whether the record named a server (backends' own mailboxes do not). */
  hasServer: boolean;
  partition: string | undefined;
}

/** One mailbox of a dump as a directory entry (spec 7.4 mapping). */
export function recordFromDump(key: string, record: OrderedJson): DumpRecord {
  // Not a mailbox record at all: loading it would make an active entry on server "".
  if (!(record instanceof OrderedObject)) throw new DumpFormatError(`the record of ${JSON.stringify(key)} is not an object`);
  const obj = record;
  const text = (k: string): string | undefined => {
    const v = obj.get(k);
    return typeof v === 'string' ? v : undefined;
  };
  const rawObj = obj.get('x_raw');
  const raw = (k: string): string | undefined => {
    const v = rawObj instanceof OrderedObject ? rawObj.get(k) : undefined;
    return typeof v === 'string' ? v : undefined;
  };
  const server = text('server');
  const partition = text('partition');
  const rawName = raw('name');
  const name = rawName ? Buffer.from(rawName, 'base64') : Buffer.from(text('name') ?? key, 'utf8');
  const mbtype = jsonText(obj.get('mbtype') ?? 'e');
  const hasServer = server !== undefined;
  let location: Buffer;
  const rawLocation = raw('location');
  if (rawLocation) location = Buffer.from(rawLocation, 'base64');
  else if (hasServer && partition !== undefined) location = Buffer.from(`${server}!${partition}`, 'utf8');
  else location = Buffer.from(server ?? partition ?? '', 'utf8');
  const rawAcl = raw('acl');
  const acl = rawAcl ? Buffer.from(rawAcl, 'base64') : aclFromObject(obj.get('acl'));
  const skip = /[di]/.test(mbtype);
  const reserved = mbtype.includes('z');
  const entry: Entry | null = skip
    ? null
    : {
        name,
        state: reserved ? 'reserved' : 'active',
        location,
        acl: reserved ? Buffer.alloc(0) : acl,
      };
  return { name, entry, hasServer, partition };
}

export class DumpFormatError extends Error {
  override name = 'DumpFormatError';
}

/** The members parsed so far, or null while the text is not a complete object yet. */
function tryParse(text: string): OrderedObject | null {
  try {
    const v = parseOrderedJson(text);
    return v instanceof OrderedObject ? v : null;
  } catch (err) {
    if (err instanceof JsonSyntaxError) return null;
    throw err;
  }
}

const MAX_RECORD_TEXT = 4 << 20;

/**
 * Reads a dump line by line, handing out records as they complete. Accepts
 * Cyrus's one-line-per-mailbox form and pretty-printed JSON alike; the
 * one-line form goes through a faster scanner (record-line.ts) first.
 */
export class DumpParser {
  private started = false;
  private ended = false;
  private pending = '';
  private lineNo = 0;

  constructor(private readonly fast = true) {}

  /** Whether the next line may be a one-line record: another reader may then take it (and countLine). */
  get expectsRecord(): boolean {
    return this.fast && this.started && !this.ended && this.pending === '';
  }

  /** A line another reader took as a record: counted, so later errors name the right line. */
  countLine(): void {
    this.lineNo++;
  }

  /** Reads one line (without its line break), putting the records it completes in `out`. */
  line(rawLine: string, out: DumpRecord[]): void {
    this.lineNo++;
    const lineNo = this.lineNo;
    const line = rawLine.trim();
    if (this.fast && this.started && !this.ended && this.pending === '') {
      const scanned = scanRecordLine(line);
      if (scanned) return void out.push(recordFromDump(scanned.key, scanned.record));
    }
    if (!this.started) {
      if (line === '') return;
      if (!line.startsWith('{')) throw new DumpFormatError(`line ${lineNo}: a dump starts with '{'`);
      this.started = true;
      const rest = line.slice(1).trim();
      if (rest === '') return;
      if (rest === '}') {
        this.ended = true;
        return;
      }
      this.pending = rest;
    } else if (this.ended) {
      if (line !== '') throw new DumpFormatError(`line ${lineNo}: text after the end of the dump`);
      return;
    } else if (this.pending === '' && line === '}') {
      this.ended = true;
      return;
    } else {
      this.pending += (this.pending ? '\n' : '') + line;
    }
    const pending = this.pending;
    if (pending.endsWith('}') && pending.length > 1 && pending.replace(/\s/g, '') !== '}') {
      // The last member may be followed by the closing brace on its own line, or on the same line.
      const text = pending.replace(/,\s*$/, '');
      let closesDump = false;
      let parsed = tryParse(`{${text}}`);
      if (!parsed) {
        parsed = tryParse(`{${text}`);
        closesDump = parsed !== null;
      }
      if (parsed) {
        for (const [key, obj] of parsed.pairs) out.push(recordFromDump(key, obj));
        this.pending = '';
        if (closesDump) this.ended = true;
      }
    } else if (pending.endsWith(',')) {
      const parsed = tryParse(`{${pending.slice(0, -1)}}`);
      if (parsed) {
        for (const [key, obj] of parsed.pairs) out.push(recordFromDump(key, obj));
        this.pending = '';
      }
    }
    if (this.pending.length > MAX_RECORD_TEXT) throw new DumpFormatError(`line ${lineNo}: a record longer than ${MAX_RECORD_TEXT} bytes`);
  }

  /** The input ended: throws unless the dump was complete. */
  end(): void {
    if (!this.started) throw new DumpFormatError('empty input: a dump starts with {');
    if (this.pending.trim() !== '') throw new DumpFormatError('the dump ends in the middle of a record');
    if (!this.ended) throw new DumpFormatError("the dump does not end with '}'");
  }
}

/** Parses a dump from lines, yielding records as they complete. */
export async function* parseDump(lines: AsyncIterable<string>): AsyncGenerator<DumpRecord> {
  const parser = new DumpParser();
  const out: DumpRecord[] = [];
  for await (const line of lines) {
    parser.line(line, out);
    yield* out;
    out.length = 0;
  }
  parser.end();
}

/** A JSON scalar as Cyrus writes it in a dump (objects and arrays do not belong there: JSON text). */
function jsonText(v: OrderedJson): string {
  return v === null || typeof v !== 'object' ? String(v) : JSON.stringify(v);
}
