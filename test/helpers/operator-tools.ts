/**
 * Helpers for the tests of the operator tools (conflict queue, `push`,
 * `dump`/`load`): running the real `mupdated` CLI as a child process, sending
 * commands as Cyrus clients do (every argument a `{n+}` literal), reading
 * streamed changes, and a loopback TCP proxy that records what a client sent
 * (to check which commands a push tool put on the wire).
 */
import type { ExecutionContext } from 'ava';
import { writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { parseDataResponses, type DirEntry } from './cyrus.js';
import { RawClient } from './raw-client.js';
import { runProgram, showRun, type ProgramResult, type RunOptions } from './run.js';
import { CLI } from './server.js';
import { acl } from './seed-commands.js';

export type CliResult = ProgramResult;

/** Runs `node dist/src/cli/main.js ARGS` (killed after timeoutMs), stdin from `input`. */
export function runCli(args: string[], options: RunOptions = {}): Promise<CliResult> {
  return runProgram(process.execPath, [CLI, ...args], options);
}

/**
 * `mupdated dump` of folder `from` into `file`, then `mupdated load` of that
 * file into folder `to`; both must exit 0 (the assertion says what they printed).
 */
export async function dumpThenLoad(t: ExecutionContext, from: string, file: string, to: string): Promise<CliResult> {
  const dump = await runCli(['dump', '--data', from]);
  t.is(dump.code, 0, showRun(dump));
  writeFileSync(file, dump.stdout, 'latin1');
  const load = await runCli(['load', file, '--data', to]);
  t.is(load.code, 0, showRun(load));
  return load;
}

/** A command with every argument as a `{n+}` literal (latin1 bytes), as the Cyrus client library sends it. */
export function literalCommand(tag: string, verb: string, ...args: string[]): string {
  return `${tag} ${verb}${args.map((a) => ` {${Buffer.byteLength(a, 'latin1')}+}\r\n${a}`).join('')}\r\n`;
}

/** Sends one command and returns every line up to and including its tagged answer. */
export async function exchange(c: RawClient, tag: string, verb: string, ...args: string[]): Promise<string[]> {
  c.send(literalCommand(tag, verb, ...args));
  return c.readUntilTagged(tag, 20_000);
}

/** Sends one write command and returns only its final answer line. */
export async function answer(c: RawClient, tag: string, verb: string, ...args: string[]): Promise<string> {
  const lines = await exchange(c, tag, verb, ...args);
  return lines[lines.length - 1];
}

/** The FIND lines of a MAILBOX answer, as RawClient reads them. */
export function mailboxLines(tag: string, name: string, location: string, acl: string): string[] {
  const n = (s: string) => Buffer.byteLength(s, 'latin1');
  return [`${tag} MAILBOX {${n(name)}+}`, `${name} {${n(location)}+}`, `${location} {${n(acl)}+}`, acl, `${tag} OK "Search completed"`];
}

/** One write as `user` on its own connection (as Cyrus backends do): the final answer line. */
export async function writeAs(server: { port: number }, user: string, verb: string, ...args: string[]): Promise<string> {
  const c = await RawClient.login(server.port, user);
  try {
    return await answer(c, 'X1', verb, ...args);
  } finally {
    c.close();
  }
}

/** FIND `name` as mupdateadmin on its own connection: every line of the answer. */
export async function find(server: { port: number }, name: string): Promise<string[]> {
  const c = await RawClient.login(server.port);
  try {
    return await exchange(c, 'F1', 'FIND', name);
  } finally {
    c.close();
  }
}

/** `id TAB rights TAB` for each pair (defined once, in seed-commands.ts). */
export const aclOf = acl;

/**
 * Reads exactly one streamed data response (`tag MAILBOX|RESERVE|DELETE ...`)
 * from an UPDATE stream, waiting up to timeoutMs.
 */
export async function readStreamed(c: RawClient, tag: string, timeoutMs = 10_000): Promise<DirEntry | { deleted: string }> {
  const deadline = Date.now() + timeoutMs;
  const head = await c.readLine(timeoutMs);
  const m = /^\S+ (MAILBOX|RESERVE|DELETE) /.exec(head);
  if (!m) throw new Error(`expected a streamed change, got ${JSON.stringify(head)}`);
  const fields = m[1] === 'MAILBOX' ? 3 : m[1] === 'RESERVE' ? 2 : 1;
  const lines = [head];
  for (let i = 0; i < fields; i++) lines.push(await c.readLine(Math.max(1, deadline - Date.now())));
  const { entries } = parseDataResponses([...lines, `${tag} OK "x"`], tag);
  return entries[0];
}

/**
 * On an UPDATE stream: sends NOOP and returns the changes that arrived before
 * its OK (5.4: everything committed before the NOOP comes first).
 */
export async function drainStream(c: RawClient, updateTag: string, noopTag: string): Promise<Array<DirEntry | { deleted: string }>> {
  c.send(`${noopTag} NOOP\r\n`);
  const lines = await c.readUntilTagged(noopTag, 20_000);
  const final = lines.pop();
  if (final !== `${noopTag} OK "Noop done"`) throw new Error(`NOOP on the stream got ${JSON.stringify(final)}`);
  return parseDataResponses([...lines, `${updateTag} OK "x"`], updateTag).entries;
}

/** Writes `password` to DIR/name (mode 0600) and returns the path. */
export function passwordFile(dir: string, password = 'secret', name = 'password'): string {
  const path = join(dir, name);
  writeFileSync(path, `${password}\n`, { mode: 0o600 });
  return path;
}

// ---------------------------------------------------------------------------
// recording proxy

export interface ClientCommand {
  tag: string;
  word: string;
  /** Arguments as latin1 strings. */
  args: string[];
}

/**
 * Parses what a MUPDATE client sent (quoted strings and `{n}`/`{n+}`
 * literals). Lines that are not commands (SASL responses) come out as a
 * command with an empty word and are dropped.
 */
export function parseClientBytes(buf: Buffer): ClientCommand[] {
  const out: ClientCommand[] = [];
  let i = 0;
  const atom = (): string => {
    const start = i;
    while (i < buf.length && buf[i] !== 0x20 && buf[i] !== 0x0d && buf[i] !== 0x0a) i++;
    return buf.subarray(start, i).toString('latin1');
  };
  for (let guard = 0; i < buf.length && guard < 1_000_000; guard++) {
    const tag = atom();
    let word = '';
    const args: string[] = [];
    if (buf[i] === 0x20) {
      i++;
      word = atom().toUpperCase();
    }
    for (let g = 0; i < buf.length && g < 10_000; g++) {
      const c = buf[i];
      if (c === 0x20) {
        i++;
        continue;
      }
      if (c === 0x0d && buf[i + 1] === 0x0a) {
        i += 2;
        break;
      }
      if (c === 0x0a) {
        i++;
        break;
      }
      if (c === 0x22) {
        let s = '';
        i++;
        while (i < buf.length && buf[i] !== 0x22) {
          if (buf[i] === 0x5c) i++;
          s += String.fromCharCode(buf[i++]);
        }
        i++;
        args.push(s);
        continue;
      }
      const lit = /^\{(\d+)\+?\}\r?\n/.exec(buf.subarray(i, i + 24).toString('latin1'));
      if (lit) {
        i += lit[0].length;
        const n = Number(lit[1]);
        args.push(buf.subarray(i, i + n).toString('latin1'));
        i += n;
        continue;
      }
      args.push(atom());
    }
    if (word) out.push({ tag, word, args });
  }
  return out;
}

/** A loopback TCP proxy to `targetPort` that keeps every byte each client sent. */
export class RecordingProxy {
  /** Client-to-server bytes, one buffer per connection, in connection order. */
  readonly sessions: Buffer[][] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static start(targetPort: number): Promise<RecordingProxy> {
    return new Promise((resolve, reject) => {
      let proxy: RecordingProxy;
      const server = createServer((client) => {
        const chunks: Buffer[] = [];
        proxy.sessions.push(chunks);
        const upstream = connect({ host: '127.0.0.1', port: targetPort });
        proxy.sockets.add(client);
        proxy.sockets.add(upstream);
        client.on('data', (d: Buffer) => {
          chunks.push(Buffer.from(d));
          upstream.write(d);
        });
        upstream.on('data', (d: Buffer) => client.write(d));
        const end = () => {
          client.destroy();
          upstream.destroy();
        };
        client.on('close', end);
        upstream.on('close', end);
        client.on('error', end);
        upstream.on('error', end);
      });
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        proxy = new RecordingProxy(server, (server.address() as { port: number }).port);
        resolve(proxy);
      });
    });
  }

  /** The commands of every connection so far, in order. */
  commands(): ClientCommand[] {
    return this.sessions.flatMap((chunks) => parseClientBytes(Buffer.concat(chunks)));
  }

  /** Forgets what was recorded. */
  clear(): void {
    this.sessions.length = 0;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** What a client sent, one `WORD first-argument` per command, without the session frame (AUTHENTICATE, LOGOUT). */
export function wireSummary(commands: ClientCommand[]): string[] {
  return commands.filter((c) => c.word !== 'AUTHENTICATE' && c.word !== 'LOGOUT').map((c) => `${c.word} ${c.args[0] ?? ''}`);
}
