/**
 * Helpers for directory and streaming tests: reading MAILBOX/RESERVE/DELETE
 * responses into records (latin1 strings, so 8-bit bytes survive 1:1),
 * building the exact lines the server must send, and a directory model that
 * a stream consumer reconstructs.
 */
import type { ExecutionContext } from 'ava';
import { RawClient } from './raw-client.js';

export type Kind = 'MAILBOX' | 'RESERVE' | 'DELETE';

/** One data response: its kind and its string arguments (latin1). */
export interface Rec {
  kind: Kind;
  args: string[];
}

export interface Response {
  records: Rec[];
  /** The final status line, e.g. `X1 OK "done"`. */
  status: string;
}

/** An entry of the directory model. */
export interface ModelEntry {
  kind: 'MAILBOX' | 'RESERVE';
  location: string;
  acl: string;
}

export type Model = Map<string, ModelEntry>;

const ARITY: Record<Kind, number> = { MAILBOX: 3, RESERVE: 2, DELETE: 1 };

/**
 * Like RawClient.login, but with generous timeouts (the test machine may be
 * busy): connect, read the banner, AUTHENTICATE "PLAIN" with a `{n+}` literal.
 */
export async function login(port: number, user = 'mupdateadmin', password = 'secret', timeoutMs = 30_000): Promise<RawClient> {
  const c = await RawClient.connect(port);
  for (let i = 0; ; i++) {
    const l = await c.readLine(timeoutMs);
    if (l.startsWith('* OK')) break;
    if (i > 10 || !l.startsWith('* ')) throw new Error(`unexpected banner line ${JSON.stringify(l)}`);
  }
  const ir = Buffer.from(`${user}\0${user}\0${password}`).toString('base64');
  c.send(`A01 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\n`);
  const line = await c.readLine(timeoutMs);
  if (line !== 'A01 OK "Authenticated"') throw new Error(`login failed: ${line}`);
  return c;
}

/** A client string argument as a non-synchronizing literal (any bytes but NUL). */
export function lit(s: string): string {
  return `{${Buffer.byteLength(s, 'latin1')}+}\r\n${s}`;
}

/** A client string argument as a quoted string (`"` and `\` escaped; no CR/LF). */
export function q(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * The lines RawClient.readLine yields for one data response: the header line
 * ending in `{n+}`, then each literal body joined with the rest of its line.
 */
export function dataLines(tag: string, kind: Kind, args: string[]): string[] {
  const lines: string[] = [];
  let head = `${tag} ${kind}`;
  for (const a of args) {
    lines.push(`${head} {${Buffer.byteLength(a, 'latin1')}+}`);
    head = a;
  }
  lines.push(head);
  return lines;
}

export function entryLines(tag: string, name: string, e: ModelEntry): string[] {
  return e.kind === 'MAILBOX' ? dataLines(tag, 'MAILBOX', [name, e.location, e.acl]) : dataLines(tag, 'RESERVE', [name, e.location]);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Reads one unit: either a data response tagged `dataTag` (returned as a
 * record) or a status line tagged `statusTag` / an untagged BYE (returned as
 * a string). Anything else throws.
 */
export async function readUnit(c: RawClient, dataTag: string, statusTag: string, timeoutMs = 10_000): Promise<Rec | string> {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  const line = await c.readLine(left());
  const head = new RegExp(`^${escapeRe(dataTag)} (MAILBOX|RESERVE|DELETE) \\{(\\d+)\\+\\}$`).exec(line);
  if (!head) {
    if (
      line.startsWith(`${statusTag} OK `) ||
      line.startsWith(`${statusTag} NO `) ||
      line.startsWith(`${statusTag} BAD `) ||
      line.startsWith('* BYE ')
    )
      return line;
    throw new Error(`unexpected line ${JSON.stringify(line)} (data tag ${dataTag}, status tag ${statusTag})`);
  }
  const kind = head[1] as Kind;
  const args: string[] = [];
  let n = Number(head[2]);
  for (let i = 0; i < 4; i++) {
    const l = await c.readLine(left());
    args.push(l.slice(0, n));
    const rest = l.slice(n);
    if (rest === '') break;
    const m = /^ \{(\d+)\+\}$/.exec(rest);
    if (!m) throw new Error(`bad continuation ${JSON.stringify(rest)} after ${kind} argument`);
    n = Number(m[1]);
  }
  if (args.length !== ARITY[kind]) throw new Error(`${kind} with ${args.length} arguments: ${JSON.stringify(args)}`);
  return { kind, args };
}

/** Reads data responses tagged `dataTag` until the status line of `statusTag` (or `* BYE`). */
export async function readResponse(c: RawClient, dataTag: string, statusTag = dataTag, timeoutMs = 20_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  const records: Rec[] = [];
  for (let i = 0; ; i++) {
    if (Date.now() > deadline) throw new Error(`no status line for ${statusTag} within ${timeoutMs} ms`);
    const u = await readUnit(c, dataTag, statusTag, Math.max(1, deadline - Date.now()));
    if (typeof u === 'string') return { records, status: u };
    records.push(u);
  }
}

/** Sends `<tag> <text>` CRLF and reads the response tagged `tag`. */
export async function command(c: RawClient, tag: string, text: string, timeoutMs = 20_000): Promise<Response> {
  c.send(`${tag} ${text}\r\n`);
  return readResponse(c, tag, tag, timeoutMs);
}

/** Sends a command and returns only its status line (throws if data came back). */
export async function status(c: RawClient, tag: string, text: string): Promise<string> {
  const r = await command(c, tag, text);
  if (r.records.length) throw new Error(`${tag}: unexpected data ${JSON.stringify(r.records)}`);
  return r.status;
}

/** Sends each `[tag, command]` in turn on `c` and checks that each is answered `tag OK "done"`. */
export async function expectDone(t: ExecutionContext, c: RawClient, commands: Array<[tag: string, text: string]>): Promise<void> {
  for (const [tag, text] of commands) t.is(await status(c, tag, text), `${tag} OK "done"`);
}

/** Applies MAILBOX/RESERVE/DELETE records to a model, like a slave does. */
export function apply(model: Model, records: Rec[]): Model {
  for (const r of records) {
    if (r.kind === 'DELETE') model.delete(r.args[0]);
    else model.set(r.args[0], { kind: r.kind, location: r.args[1], acl: r.kind === 'MAILBOX' ? r.args[2] : '' });
  }
  return model;
}

/** Records (from a dump or LIST) as a model; throws on a DELETE or a repeated name. */
export function modelOf(records: Rec[]): Model {
  const m: Model = new Map();
  for (const r of records) {
    if (r.kind === 'DELETE') throw new Error(`DELETE in a snapshot: ${r.args[0]}`);
    if (m.has(r.args[0])) throw new Error(`name twice in a snapshot: ${r.args[0]}`);
    apply(m, [r]);
  }
  return m;
}

/** A model as a sorted array, for deepEqual with readable diffs. */
export function sorted(model: Model): Array<[string, ModelEntry]> {
  return [...model.entries()].sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
}

/** LIST (with an optional prefix) on a fresh admin connection: the directory, sorted by name bytes. */
export async function listSorted(port: number, prefix?: string): Promise<Array<[string, ModelEntry]>> {
  const c = await login(port);
  try {
    const r = await command(c, 'L1', prefix === undefined ? 'LIST' : `LIST ${lit(prefix)}`, 120_000);
    if (r.status !== 'L1 OK "list complete"') throw new Error(`LIST on ${port}: ${r.status}`);
    return sorted(modelOf(r.records));
  } finally {
    c.close();
  }
}

/** Runs `fn` over items with at most `width` running at once. */
export async function inBatches<T, R>(items: T[], width: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  for (let i = 0; i < items.length; i += width) {
    const chunk = items.slice(i, i + width);
    const res = await Promise.all(chunk.map((item, j) => fn(item, i + j)));
    res.forEach((r, j) => {
      out[i + j] = r;
    });
  }
  return out;
}

/**
 * Fills a directory quickly: ACTIVATEs pipelined over several connections.
 * `entry(i)` gives name, location and ACL of the i-th mailbox.
 */
export async function populate(
  login: () => Promise<RawClient>,
  count: number,
  entry: (i: number) => { name: string; location: string; acl: string },
  connections = 8,
): Promise<void> {
  const per = Math.ceil(count / connections);
  await Promise.all(
    Array.from({ length: connections }, async (_, k) => {
      const c = await login();
      try {
        const from = k * per;
        const to = Math.min(count, from + per);
        for (let b = from; b < to; b += 200) {
          const end = Math.min(to, b + 200);
          let out = '';
          for (let i = b; i < end; i++) {
            const e = entry(i);
            out += `P${i} ACTIVATE ${lit(e.name)} ${lit(e.location)} ${lit(e.acl)}\r\n`;
          }
          c.send(out);
          for (let i = b; i < end; i++) {
            const line = await c.readLine(60_000);
            if (line !== `P${i} OK "done"`) throw new Error(`populate: ${line}`);
          }
        }
      } finally {
        c.close();
      }
    }),
  );
}

/** Reads and discards lines until the server closes; returns the last lines seen and any unterminated tail. */
export async function drainToClose(
  c: RawClient,
  timeoutMs = 30_000,
  keep = 5,
  each?: (line: string) => void,
): Promise<{ last: string[]; tail: string; closed: boolean; lines: number }> {
  const deadline = Date.now() + timeoutMs;
  const last: string[] = [];
  let lines = 0;
  for (;;) {
    if (Date.now() > deadline) return { last, tail: '', closed: false, lines };
    try {
      const l = await c.readLine(Math.max(1, deadline - Date.now()));
      lines++;
      each?.(l);
      last.push(l);
      if (last.length > keep) last.shift();
    } catch {
      return { last, tail: c.takeBuffered().toString('latin1'), closed: c.ended, lines };
    }
  }
}
