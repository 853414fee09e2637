/**
 * Transcript parser and replayer.
 *
 * The fixtures in test/fixtures/transcripts/ are byte-exact sessions with the
 * real Cyrus 3.6 master (format: see the README.md there). `parseTranscript`
 * turns one into a list of events; `replayTranscript` plays the client's bytes
 * against a running server, connection by connection in transcript order, and
 * compares every server line byte for byte (CRLF included, checked on the raw
 * socket bytes), asserts the server's closes, and checks that nothing
 * unexpected was sent.
 *
 * Deliberate differences (spec 9.1) are applied to the transcript text before
 * parsing, with `applyPatches`, so every difference is written down in the test
 * that uses it. Two extensions of the transcript syntax exist for that:
 *   `S~ <regex>`   a server line that must match the regex (latin1, whole line);
 *   `#! ...`       directives for the replayer (none are needed in the fixtures).
 */
import { RawClient } from './raw-client.js';

// ---------------------------------------------------------------------------
// Bytes <-> transcript text

/** Escapes bytes exactly like the capture tool did (`\\`, `\t`, `\r`, `\xNN`). */
export function escapeBytes(data: Buffer): string {
  let out = '';
  for (const x of data) {
    if (x === 0x5c) out += '\\\\';
    else if (x === 0x09) out += '\\t';
    else if (x === 0x0d) out += '\\r';
    else if (x >= 0x20 && x < 0x7f) out += String.fromCharCode(x);
    else out += `\\x${x.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** Inverse of escapeBytes. Throws on anything the capture tool cannot have written. */
export function unescapeText(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) throw new Error(`non-ASCII character in transcript text: ${JSON.stringify(text)}`);
    if (c !== 0x5c) {
      out.push(c);
      continue;
    }
    const n = text[i + 1];
    if (n === '\\') {
      out.push(0x5c);
      i += 1;
    } else if (n === 't') {
      out.push(0x09);
      i += 1;
    } else if (n === 'r') {
      out.push(0x0d);
      i += 1;
    } else if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
      out.push(parseInt(text.slice(i + 2, i + 4), 16));
      i += 3;
    } else throw new Error(`bad escape at ${i} in transcript text: ${JSON.stringify(text)}`);
  }
  return Buffer.from(out);
}

const ELIDED = /\.\.\.\[(\d+) bytes elided; line is (\d+) bytes long\]$/;

/**
 * Expands a line the capture tool shortened ("...[N bytes elided; line is M
 * bytes long]"; only its first bytes are shown). The elided bytes repeat the
 * last shown byte; `tail` (if given) replaces the end of the line, for lines
 * whose last bytes are known not to repeat it.
 */
export function expandElided(shown: Buffer, elided: number, total: number, tail = ''): Buffer {
  if (shown.length + elided !== total) throw new Error(`elision arithmetic: ${shown.length} + ${elided} != ${total}`);
  const tailBytes = Buffer.from(tail, 'latin1');
  const fill = total - shown.length - tailBytes.length;
  if (fill < 0 || shown.length === 0) throw new Error('cannot expand elided line');
  return Buffer.concat([shown, Buffer.alloc(fill, shown[shown.length - 1]), tailBytes]);
}

// ---------------------------------------------------------------------------
// Text lines and patches

export interface TextLine {
  text: string;
  /** 1-based line number in the fixture file, or 0 for a line added by a patch. */
  origin: number;
}

export interface Patch {
  /** Why mupdated differs here (cite spec 9.1). */
  why: string;
  /** Consecutive lines to find (exact text, or a regex for one whole line); must match exactly once. Omit to append. */
  find?: Array<string | RegExp>;
  /** Lines that replace the found run (`'$0'` keeps the found line at that position), or are appended. */
  replace: string[];
}

export function splitLines(text: string): TextLine[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((t, i) => ({ text: t, origin: i + 1 }));
}

function lineMatches(line: string, pattern: string | RegExp): boolean {
  return typeof pattern === 'string' ? line === pattern : pattern.test(line);
}

/** Applies patches in order; each `find` must match exactly one run of lines. */
export function applyPatches(lines: TextLine[], patches: Patch[]): TextLine[] {
  let out = lines.slice();
  for (const p of patches) {
    if (!p.find) {
      out = out.concat(p.replace.map((text) => ({ text, origin: 0 })));
      continue;
    }
    const find = p.find;
    const hits: number[] = [];
    for (let i = 0; i + find.length <= out.length; i++) {
      if (find.every((pat, k) => lineMatches(out[i + k].text, pat))) hits.push(i);
    }
    if (hits.length !== 1) {
      throw new Error(`patch (${p.why}) matched ${hits.length} times, expected once: ${find.map(String).join(' | ')}`);
    }
    const at = hits[0];
    const found = out.slice(at, at + find.length);
    const replacement = p.replace.map((text, k) =>
      text === '$0'
        ? (found[k] ??
          (() => {
            throw new Error(`'$0' at ${k} has no found line`);
          })())
        : { text, origin: 0 },
    );
    out.splice(at, find.length, ...replacement);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Parsing

export type Eol = 'CRLF' | 'LF' | 'none';

interface EventBase {
  conn: string;
  /** The transcript line (for messages). */
  line: TextLine;
}

export type Event =
  | (EventBase & { kind: 'connection' })
  | (EventBase & { kind: 'send'; bytes: Buffer; eol: Eol })
  | (EventBase & { kind: 'expect'; bytes: Buffer; eol: Eol })
  | (EventBase & { kind: 'expect-match'; re: RegExp })
  | (EventBase & { kind: 'server-closes' })
  | (EventBase & { kind: 'client-closes' })
  | (EventBase & { kind: 'note'; text: string });

export interface SeedEntry {
  kind: 'MAILBOX' | 'RESERVE';
  name: Buffer;
  location: Buffer;
  acl: Buffer;
}

export interface Transcript {
  name: string;
  /** The comment lines before the first connection marker. */
  header: string[];
  /** Directory state the header says existed when the session started. */
  seed: SeedEntry[];
  events: Event[];
}

export interface ParseOptions {
  /** Tails for elided lines, in file order (see expandElided); missing = none. */
  elidedTails?: string[];
}

const CONN_MARKER = /^# ---- connection (\S+) ----$/;
const SEED_LINE = /^#   (MAILBOX|RESERVE) (.+?) (\S*!\S*)(?: (.*))?$/;

/** Parses transcript lines (after patches) into events. */
export function parseTranscript(name: string, lines: TextLine[], options: ParseOptions = {}): Transcript {
  const header: string[] = [];
  const seed: SeedEntry[] = [];
  const events: Event[] = [];
  let conn: string | null = null;
  let inSeed = false;
  let elidedCount = 0;

  const protocolBytes = (body: string, line: TextLine): { bytes: Buffer; eol: Eol } => {
    let eol: Eol = 'CRLF';
    if (body.endsWith(' <LF>')) {
      eol = 'LF';
      body = body.slice(0, -5);
    } else if (body.endsWith(' <no-EOL>')) {
      eol = 'none';
      body = body.slice(0, -9);
    }
    if (/ <binary chunk, \d+ bytes>$/.test(body)) {
      throw new Error(`${name}:${line.origin}: binary chunks (COMPRESS) cannot be replayed; patch them out`);
    }
    const el = ELIDED.exec(body);
    if (el) {
      const shown = unescapeText(body.slice(0, el.index));
      const tail = options.elidedTails?.[elidedCount] ?? '';
      elidedCount++;
      return { bytes: expandElided(shown, Number(el[1]), Number(el[2]), tail), eol };
    }
    return { bytes: unescapeText(body), eol };
  };

  for (const line of lines) {
    const text = line.text;
    const where = `${name}:${line.origin || 'patch'}`;
    const marker = CONN_MARKER.exec(text);
    if (marker) {
      conn = marker[1]!;
      inSeed = false;
      events.push({ kind: 'connection', conn, line });
      continue;
    }
    if (conn === null) {
      if (!text.startsWith('#')) throw new Error(`${where}: protocol line before any connection marker`);
      header.push(text);
      if (/^# state of the directory when the session starts:/.test(text)) {
        inSeed = true;
        continue;
      }
      if (inSeed) {
        const m = SEED_LINE.exec(text);
        if (m) {
          seed.push({
            kind: m[1] as 'MAILBOX' | 'RESERVE',
            name: unescapeText(m[2]),
            location: unescapeText(m[3]),
            acl: unescapeText(m[4] ?? ''),
          });
          continue;
        }
        inSeed = false;
      }
      continue;
    }
    if (text.startsWith('C: ') || text === 'C:') {
      events.push({ kind: 'send', conn, line, ...protocolBytes(text.slice(3), line) });
    } else if (text.startsWith('S: ') || text === 'S:') {
      const p = protocolBytes(text.slice(3), line);
      if (p.eol !== 'CRLF') throw new Error(`${where}: server lines without CRLF are not supported by the replayer`);
      events.push({ kind: 'expect', conn, line, ...p });
    } else if (text.startsWith('S~ ')) {
      events.push({ kind: 'expect-match', conn, line, re: new RegExp(text.slice(3)) });
    } else if (text === '# server closed the connection') {
      events.push({ kind: 'server-closes', conn, line });
    } else if (text === '# client closes the connection') {
      events.push({ kind: 'client-closes', conn, line });
    } else if (text.startsWith('#')) {
      events.push({ kind: 'note', conn, line, text: text.replace(/^#\s?/, '') });
    } else {
      throw new Error(`${where}: unrecognised transcript line ${JSON.stringify(text)}`);
    }
  }
  return { name, header, seed, events };
}

// ---------------------------------------------------------------------------
// mupdated's banner (spec 2.1, 3.13)

/** A quoted string as mupdated sends it (escapes allowed inside). */
export const QUOTED = '"(?:[^"\\\\\\r\\n]|\\\\.)*"';

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Adapts the transcript's banners to mupdated: no `* COMPRESS "DEFLATE"` line
 * (mupdated does not implement COMPRESS, spec 3.13 / 9.1), and on the
 * `* OK MUPDATE` line the implementation and version strings are free (one
 * quoted string each, spec 2.1) while the servername and role stay exact.
 */
export function adaptBannersForMupdated(t: Transcript): Transcript {
  const events: Event[] = [];
  for (const e of t.events) {
    if (e.kind === 'expect') {
      const s = e.bytes.toString('latin1');
      if (s === '* COMPRESS "DEFLATE"') continue;
      const m = /^\* OK MUPDATE ("[^"]*") "[^"]*" "[^"]*" ("[^"]*")$/.exec(s);
      if (m) {
        events.push({
          kind: 'expect-match',
          conn: e.conn,
          line: e.line,
          re: new RegExp(`^\\* OK MUPDATE ${reEscape(m[1])} ${QUOTED} ${QUOTED} ${reEscape(m[2])}$`),
        });
        continue;
      }
    }
    events.push(e);
  }
  return { ...t, events };
}

// ---------------------------------------------------------------------------
// Stream records and the state a stream consumer ends up with

interface StreamRecord {
  tag: string;
  keyword: string;
  args: Buffer[];
}

const LITERAL_AT_END = /\{(\d+)\+\}$/;

/** Assembles protocol lines (literal bodies joined with the rest of their line) into responses. */
class ResponseAssembler {
  private lines: Buffer[] = [];
  private pending = -1;

  /** True if the next line continues the current response. */
  get inside(): boolean {
    return this.pending >= 0;
  }

  push(line: Buffer): Buffer[] | null {
    let rest = line;
    if (this.pending >= 0) {
      if (line.length < this.pending) throw new Error('literal body shorter than announced');
      rest = line.subarray(this.pending);
    }
    this.lines.push(line);
    const m = LITERAL_AT_END.exec(rest.toString('latin1'));
    this.pending = m ? Number(m[1]) : -1;
    if (this.pending >= 0) return null;
    const done = this.lines;
    this.lines = [];
    return done;
  }
}

/** Splits one response (as assembled) into tag, keyword and string arguments, if it is a data response. */
function toStreamRecord(lines: Buffer[]): StreamRecord | null {
  const first = lines[0].toString('latin1');
  const m = /^(\S*) (MAILBOX|RESERVE|DELETE)(?: |$)/.exec(first);
  if (!m) return null;
  const args: Buffer[] = [];
  let n = LITERAL_AT_END.exec(first);
  for (let i = 1; i < lines.length && n; i++) {
    const len = Number(n[1]);
    args.push(lines[i].subarray(0, len));
    n = LITERAL_AT_END.exec(lines[i].subarray(len).toString('latin1'));
  }
  return { tag: m[1], keyword: m[2], args };
}

/** name -> "MAILBOX location acl" / "RESERVE location" (escaped), as a stream consumer would keep it. */
export type ConsumerState = Map<string, string>;

function applyRecord(state: ConsumerState, r: StreamRecord): void {
  const name = escapeBytes(r.args[0] ?? Buffer.alloc(0));
  if (r.keyword === 'DELETE') state.delete(name);
  else state.set(name, [r.keyword, ...r.args.slice(1).map(escapeBytes)].join(' '));
}

function stateText(state: ConsumerState): string {
  return [...state.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k} => ${v}`)
    .join('\n');
}

/** The state a consumer of `tag`'s stream holds after the given server lines. */
export function consumerStateOf(lines: Buffer[], tag: string): ConsumerState {
  const asm = new ResponseAssembler();
  const state: ConsumerState = new Map();
  for (const l of lines) {
    const resp = asm.push(l);
    if (!resp) continue;
    const r = toStreamRecord(resp);
    if (r && r.tag === tag) applyRecord(state, r);
  }
  return state;
}

// ---------------------------------------------------------------------------
// Replaying

export class TranscriptMismatch extends Error {}

export interface StateBlock {
  /** Connection whose streamed lines are compared by the state they lead to. */
  conn: string;
  /** The UPDATE tag of that stream. */
  tag: string;
  /** The note (annotation text without `# `) right before the block of streamed lines. */
  afterNote: string;
  /** How long to wait for the stream to reach the expected state. */
  timeoutMs?: number;
}

export interface ReplayOptions {
  port: number;
  host?: string;
  /** Per-line read timeout. */
  timeoutMs?: number;
  /**
   * Streamed batches compared by final state instead of bytes (spec 5.3, 9.1):
   * the block's lines are replaced by "read until the consumer's state equals
   * the one the transcript's lines lead to", and later stream records on that
   * connection (e.g. a duplicate Cyrus would have sent) are accepted when they
   * keep that state.
   */
  stateBlocks?: StateBlock[];
  /** How long to watch for an (unexpected) answer to a line sent without line end. */
  silenceMs?: number;
}

export interface ReplayResult {
  connections: number;
  bytesSent: number;
  serverLinesCompared: number;
  serverCloses: number;
}

interface Conn {
  id: string;
  client: RawClient;
  raw: Buffer[];
  consumed: number;
  received: Buffer[];
  asm: ResponseAssembler;
  closedByClient: boolean;
  /** Set after a state block: extra stream records with this tag are accepted (checked by state at the end). */
  absorb: { tag: string } | null;
}

function rawBytes(c: Conn): Buffer {
  if (c.raw.length > 1) c.raw = [Buffer.concat(c.raw)];
  return c.raw[0] ?? Buffer.alloc(0);
}

/** Replays a parsed (and adapted) transcript against a running server. Throws TranscriptMismatch on any difference. */
export async function replayTranscript(t: Transcript, options: ReplayOptions): Promise<ReplayResult> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const silenceMs = options.silenceMs ?? 200;
  const conns = new Map<string, Conn>();
  const result: ReplayResult = { connections: 0, bytesSent: 0, serverLinesCompared: 0, serverCloses: 0 };
  const events = t.events;

  // State blocks: index range of the events each one replaces.
  const blocks = new Map<number, { block: StateBlock; end: number }>();
  for (const b of options.stateBlocks ?? []) {
    const noteAt = events.findIndex((e) => e.kind === 'note' && e.conn === b.conn && e.text === b.afterNote);
    if (noteAt < 0) throw new Error(`${t.name}: state block note not found: ${b.afterNote}`);
    let end = noteAt + 1;
    while (end < events.length && events[end].kind === 'expect' && events[end].conn === b.conn) end++;
    if (end === noteAt + 1) throw new Error(`${t.name}: no server lines after note ${b.afterNote}`);
    blocks.set(noteAt + 1, { block: b, end });
  }

  const where = (e: Event) => `${t.name}:${e.line.origin || 'patch'} (connection ${e.conn})`;
  const fail = (e: Event, msg: string): never => {
    throw new TranscriptMismatch(`${where(e)}: ${msg}\n  transcript line: ${e.line.text.slice(0, 400)}`);
  };
  const connOf = (e: Event): Conn => {
    const c = conns.get(e.conn);
    if (!c) return fail(e, 'connection not opened');
    if (c.closedByClient) fail(e, 'connection already closed by the client');
    return c;
  };

  /** Reads one protocol line, checks its raw bytes end in CRLF, feeds the assembler. */
  const readLine = async (c: Conn, e: Event, ms = timeoutMs): Promise<Buffer> => {
    let line: Buffer;
    try {
      line = await c.client.readLineRaw(ms);
    } catch (err) {
      return fail(e, `no server line: ${(err as Error).message}`);
    }
    const raw = rawBytes(c);
    const seen = raw.subarray(c.consumed, c.consumed + line.length + 2);
    const want = Buffer.concat([line, Buffer.from('\r\n')]);
    if (!seen.equals(want)) {
      fail(e, `server line not terminated by CRLF: raw bytes ${escapeBytes(seen)} (line ${escapeBytes(line)})`);
    }
    c.consumed += want.length;
    c.received.push(line);
    c.asm.push(line);
    return line;
  };

  /** Reads a whole response (a line plus the lines carrying its literals). */
  const readResponse = async (c: Conn, e: Event, first: Buffer, ms = timeoutMs): Promise<Buffer[]> => {
    const lines = [first];
    while (c.asm.inside) lines.push(await readLine(c, e, ms));
    return lines;
  };

  /** Reads the next line for an expectation, absorbing stream records after a state block. */
  const nextExpectedLine = async (c: Conn, e: Event, isExpected: (l: Buffer) => boolean): Promise<Buffer> => {
    for (let guard = 0; guard < 10_000; guard++) {
      const wasInside = c.asm.inside;
      const line = await readLine(c, e);
      if (!c.absorb || wasInside || isExpected(line)) return line;
      const head = /^(\S*) (MAILBOX|RESERVE|DELETE)(?: |$)/.exec(line.toString('latin1'));
      if (!head || head[1] !== c.absorb.tag) return line;
      await readResponse(c, e, line);
    }
    return fail(e, 'too many stream records');
  };

  /** The state the transcript's lines on `conn` lead to, up to event index `end` (exclusive). */
  const transcriptState = (conn: string, tag: string, end: number): ConsumerState =>
    consumerStateOf(
      events
        .slice(0, end)
        .filter((x): x is Extract<Event, { kind: 'expect' }> => x.kind === 'expect' && x.conn === conn)
        .map((x) => x.bytes),
      tag,
    );

  const checkAbsorbedState = (c: Conn, e: Event, at: number) => {
    if (!c.absorb) return;
    const got = stateText(consumerStateOf(c.received, c.absorb.tag));
    const want = stateText(transcriptState(c.id, c.absorb.tag, at));
    if (got !== want) fail(e, `stream consumer state differs\n--- expected\n${want}\n--- got\n${got}`);
  };

  const noUnread = (c: Conn, e: Event) => {
    const raw = rawBytes(c);
    if (raw.length > c.consumed) {
      fail(e, `unexpected server bytes: ${escapeBytes(raw.subarray(c.consumed, c.consumed + 400))}`);
    }
  };

  try {
    for (let i = 0; i < events.length; i++) {
      const e = events[i];
      const blk = blocks.get(i);
      if (blk) {
        // Transcript lines of the whole connection up to the block's end -> expected consumer state.
        const c = connOf(e);
        const { tag } = blk.block;
        const expected = transcriptState(e.conn, tag, blk.end);
        const state = consumerStateOf(c.received, tag);
        const deadline = Date.now() + (blk.block.timeoutMs ?? 10_000);
        for (let guard = 0; stateText(state) !== stateText(expected); guard++) {
          const left = deadline - Date.now();
          if (left <= 0 || guard > 10_000) {
            fail(e, `stream did not reach the expected state\n--- expected\n${stateText(expected)}\n--- got\n${stateText(state)}`);
          }
          let resp: Buffer[];
          try {
            const first = await readLine(c, e, left);
            resp = await readResponse(c, e, first, Math.max(1, deadline - Date.now()));
          } catch (err) {
            return fail(
              e,
              `stream did not reach the expected state (${(err as Error).message.split('\n')[0]})\n--- expected\n${stateText(expected)}\n--- got\n${stateText(state)}`,
            );
          }
          const first = resp[0];
          const r = toStreamRecord(resp);
          if (!r || r.tag !== tag) fail(e, `expected a streamed ${tag} MAILBOX/RESERVE/DELETE, got ${escapeBytes(first)}`);
          applyRecord(state, r!);
          result.serverLinesCompared += resp.length;
        }
        c.absorb = { tag };
        i = blk.end - 1;
        continue;
      }
      switch (e.kind) {
        case 'connection': {
          if (!conns.has(e.conn)) {
            const client = await RawClient.connect(options.port, options.host ?? '127.0.0.1');
            const c: Conn = {
              id: e.conn,
              client,
              raw: [],
              consumed: 0,
              received: [],
              asm: new ResponseAssembler(),
              closedByClient: false,
              absorb: null,
            };
            client.socket.on('data', (d: Buffer) => {
              c.raw.push(d);
            });
            conns.set(e.conn, c);
            result.connections++;
          }
          break;
        }
        case 'send': {
          const c = connOf(e);
          const eol = e.eol === 'CRLF' ? '\r\n' : e.eol === 'LF' ? '\n' : '';
          const bytes = Buffer.concat([e.bytes, Buffer.from(eol)]);
          c.client.send(bytes);
          result.bytesSent += bytes.length;
          if (e.eol === 'none') {
            // The line is incomplete: the server must not answer it (spec 1.2).
            const next = events.slice(i + 1).find((x) => x.conn === e.conn && x.kind !== 'note' && x.kind !== 'connection');
            if (!next || (next.kind !== 'expect' && next.kind !== 'expect-match')) {
              if (!(await c.client.expectSilence(silenceMs))) {
                fail(e, `server answered an incomplete line: ${escapeBytes(rawBytes(c).subarray(c.consumed))}`);
              }
            }
          }
          break;
        }
        case 'expect': {
          const c = connOf(e);
          const line = await nextExpectedLine(c, e, (l) => l.equals(e.bytes));
          if (!line.equals(e.bytes)) {
            fail(e, `server line differs\n  expected: ${escapeBytes(e.bytes)}\n  actual:   ${escapeBytes(line)}`);
          }
          result.serverLinesCompared++;
          break;
        }
        case 'expect-match': {
          const c = connOf(e);
          const line = await nextExpectedLine(c, e, (l) => e.re.test(l.toString('latin1')));
          if (!e.re.test(line.toString('latin1'))) {
            fail(e, `server line does not match ${e.re}\n  actual: ${escapeBytes(line)}`);
          }
          result.serverLinesCompared++;
          break;
        }
        case 'server-closes': {
          const c = connOf(e);
          if (!(await c.client.waitClosed(timeoutMs))) {
            fail(
              e,
              `server did not close the connection${rawBytes(c).length > c.consumed ? `; it sent ${escapeBytes(rawBytes(c).subarray(c.consumed))}` : ''}`,
            );
          }
          checkAbsorbedState(c, e, i);
          noUnread(c, e);
          result.serverCloses++;
          break;
        }
        case 'client-closes': {
          const c = connOf(e);
          checkAbsorbedState(c, e, i);
          noUnread(c, e);
          c.client.close();
          c.closedByClient = true;
          break;
        }
        case 'note':
          break;
      }
    }
    // Every connection must have been closed by the transcript.
    for (const c of conns.values()) {
      if (!c.closedByClient) throw new TranscriptMismatch(`${t.name}: connection ${c.id} left open at the end of the transcript`);
    }
  } finally {
    for (const c of conns.values()) c.client.close();
  }
  return result;
}

// ---------------------------------------------------------------------------
// Seeding

/** Creates the header's seed state with ACTIVATE/RESERVE on a connection of its own. */
export async function seedDirectory(port: number, seed: SeedEntry[], user = 'mupdateadmin', password = 'secret'): Promise<void> {
  if (seed.length === 0) return;
  const c = await RawClient.login(port, user, password);
  try {
    const lit = (b: Buffer) => Buffer.concat([Buffer.from(`{${b.length}+}\r\n`), b]);
    let n = 0;
    for (const s of seed) {
      const tag = `SEED${++n}`;
      const parts = s.kind === 'MAILBOX' ? [s.name, s.location, s.acl] : [s.name, s.location];
      const args = parts.flatMap((p) => [Buffer.from(' '), lit(p)]);
      c.send(Buffer.concat([Buffer.from(`${tag} ${s.kind === 'MAILBOX' ? 'ACTIVATE' : 'RESERVE'}`), ...args, Buffer.from('\r\n')]));
      const reply = await c.readUntilTagged(tag);
      if (reply.join('\n') !== `${tag} OK "done"`) throw new Error(`seeding ${escapeBytes(s.name)} failed: ${reply.join(' / ')}`);
    }
    c.send('SEEDQ LOGOUT\r\n');
    await c.readUntilTagged('SEEDQ');
  } finally {
    c.close();
  }
}
