/**
 * Helpers for interop tests with the REAL Cyrus IMAP 3.6 programs (Debian's
 * cyrus-common / cyrus-murder / cyrus-clients, sasl2-bin):
 *
 * - `cyrusAvailable()` / `cyrusMissingReason()` and `interopTest()`: the
 *   interop tests FAIL with a clear message when the programs are missing and
 *   `process.env.CI` is set; elsewhere they are registered as skipped, with
 *   the reason in their title.
 * - `startCyrusSlave()`: a real Cyrus MUPDATE slave (`master(8)` running
 *   `mupdate` without `-m`) following a MUPDATE master, e.g. `mupdated master`;
 *   `dump()` reads its copy with `ctl_mboxlist -d` as MUPDATE entries.
 * - `startCyrusMaster()`: a real Cyrus MUPDATE master (`mupdate -m`).
 * - `runMupdatetest()`: runs `mupdatetest` with a scripted stdin.
 * - `listDirectory()`, `canonicalEntries()`, `parseCtlMboxlistDump()`:
 *   read and compare directories.
 *
 * Facts these rely on (Cyrus 3.6.1, checked on Debian bookworm):
 * - Started as root, Cyrus tools switch to the `cyrus` user themselves, so
 *   every file they touch must belong to cyrus:mail. `mupdate` exits at startup
 *   unless `<configdirectory>/socket/` exists.
 * - `mupdate_server` must be `host:port` (Cyrus ignores `mupdate_port`, and
 *   Debian has no `mupdate` service name).
 * - `mupdate_retry_delay` is the slave's reconnect delay and keep-alive NOOP
 *   period; below 2 the slave dies (SIGFPE) on its first retry.
 * - Cyrus mupdate lets only `admins` log in; SASL PLAIN checks a sasldb whose
 *   realm is the server's `servername`.
 * - `master(8)` does not pass its `-C` to services, so the service `cmd`
 *   carries `-C`. It binds with SO_REUSEADDR.
 * - A Cyrus slave accepts TCP connections at once but sends its banner only
 *   after its first sync with the master.
 * - There is no syslog in most containers, and Cyrus logs nothing elsewhere.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CYRUS_BIN, spawnCyrusMaster } from './cyrus-master.js';
import { freePort } from './ports.js';
import { descendantsOf, waitGone } from './processes.js';
import { RawClient } from './raw-client.js';
import { runProgram } from './run.js';
import { tempDir } from './server.js';
import { findExecutable } from './find-program.js';

export { CYRUS_BIN };
export const CYRUS_PROGRAMS = ['master', 'mupdate', 'mupdatetest', 'ctl_mboxlist'] as const;
export const CYRUS_PASSWORD = 'secret';
/** SASL users created for Cyrus servers: the first three are admins. */
export const CYRUS_ADMINS = ['mupdateadmin', 'backend1', 'backend2'];
export const CYRUS_USERS = [...CYRUS_ADMINS, 'alice'];

// ---------------------------------------------------------------------------
// Availability

function which(program: string): string | null {
  return findExecutable(program, ['/usr/sbin', '/sbin']) ?? null;
}

function numericId(args: string[]): number | null {
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const out = r.stdout.trim();
  const field = args[0] === 'getent' ? out.split(':')[2] : out;
  const n = Number(field);
  return Number.isInteger(n) ? n : null;
}

let missingReason: string | null | undefined;
let ids: { uid: number; gid: number } | undefined;

/** Why the Cyrus interop tests cannot run here, or null when they can. */
export function cyrusMissingReason(): string | null {
  if (missingReason !== undefined) return missingReason;
  const problems: string[] = [];
  for (const p of CYRUS_PROGRAMS) {
    try {
      accessSync(join(CYRUS_BIN, p), constants.X_OK);
    } catch {
      problems.push(`${join(CYRUS_BIN, p)} is missing`);
    }
  }
  if (!which('saslpasswd2')) problems.push('saslpasswd2 is missing (sasl2-bin)');
  const uid = numericId(['id', '-u', 'cyrus']);
  const gid = numericId(['getent', 'group', 'mail']);
  if (uid === null) problems.push("there is no 'cyrus' user");
  if (gid === null) problems.push("there is no 'mail' group");
  if (uid !== null && gid !== null) ids = { uid, gid };
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    problems.push('the tests must run as root (Cyrus programs switch to the cyrus user themselves)');
  }
  missingReason = problems.length
    ? `Cyrus interop programs unavailable: ${problems.join('; ')} ` +
      '(apt-get install cyrus-common cyrus-murder cyrus-clients sasl2-bin libsasl2-modules libsasl2-modules-db)'
    : null;
  return missingReason;
}

export function cyrusAvailable(): boolean {
  return cyrusMissingReason() === null;
}

type Impl = (t: ExecutionContext) => void | Promise<void>;

/**
 * The test-registration function for interop tests. With the programs present
 * (`reason` null; default: the Cyrus MUPDATE programs) it is `test` (or
 * `test.serial`). Without them it registers each test as a failure naming
 * what is missing when `process.env.CI` is set, and as a skipped test whose
 * title says why otherwise.
 */
export function interopTest(
  kind: 'concurrent' | 'serial' = 'concurrent',
  reason = cyrusMissingReason(),
): (title: string, impl: Impl) => void {
  const register = kind === 'serial' ? test.serial : test;
  if (reason === null) return (title, impl) => register(title, impl);
  if (process.env.CI) {
    return (title) =>
      register(title, (t) => {
        t.fail(`${reason}. These tests are required when CI is set.`);
      });
  }
  const skip = kind === 'serial' ? test.serial.skip : test.skip;
  return (title, impl) => skip(`${title} [skipped: ${reason}]`, impl);
}

function cyrusIds(): { uid: number; gid: number } {
  if (cyrusMissingReason() !== null || !ids) throw new Error(cyrusMissingReason() ?? 'no cyrus user');
  return ids;
}

// ---------------------------------------------------------------------------
// Processes

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Last-resort cleanup if a test file dies without its after.always hooks. */
const livePids = new Set<number>();
process.once('exit', () => {
  for (const pid of livePids) {
    for (const k of descendantsOf(pid))
      try {
        process.kill(k, 'SIGKILL');
      } catch {
        /* gone */
      }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

// ---------------------------------------------------------------------------
// Directory entries

/** One directory entry; all fields are byte strings (latin1, one char per byte). */
export interface DirEntry {
  name: string;
  state: 'ACTIVE' | 'RESERVED';
  location: string;
  acl: string;
}

function esc(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c >= 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `"${out}"`;
}

/** One readable line per entry, e.g. `MAILBOX "user.a" "b1!default" "a\tlrs\t"`. */
export function entryLine(e: DirEntry): string {
  return e.state === 'RESERVED' ? `RESERVE ${esc(e.name)} ${esc(e.location)}` : `MAILBOX ${esc(e.name)} ${esc(e.location)} ${esc(e.acl)}`;
}

/** Entries as a sorted list of `entryLine`s (a set of (name, state, location, acl)). */
export function canonicalEntries(entries: DirEntry[]): string[] {
  return entries
    .slice()
    .sort((a, b) => Buffer.compare(Buffer.from(a.name, 'latin1'), Buffer.from(b.name, 'latin1')))
    .map(entryLine);
}

/**
 * Parses data responses as read by RawClient.readLine (`T MAILBOX {n+}`, then
 * each literal body joined with the ` {m+}` announcing the next) up to the
 * tagged OK. Throws on anything else.
 */
export function parseDataResponses(lines: string[], tag: string): { entries: Array<DirEntry | { deleted: string }>; final: string } {
  const entries: Array<DirEntry | { deleted: string }> = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith(`${tag} OK `) || line.startsWith(`${tag} NO `) || line.startsWith(`${tag} BAD `)) {
      if (i !== lines.length - 1) throw new Error(`lines after the final response: ${JSON.stringify(lines.slice(i))}`);
      return { entries, final: line };
    }
    const head = /^(\S+) (MAILBOX|RESERVE|DELETE) \{(\d+)\+\}$/.exec(line);
    if (!head || head[1] !== tag) throw new Error(`unexpected line ${JSON.stringify(line)}`);
    const kind = head[2];
    const count = kind === 'MAILBOX' ? 3 : kind === 'RESERVE' ? 2 : 1;
    let len = Number(head[3]);
    const fields: string[] = [];
    for (let f = 0; f < count; f++) {
      const s = lines[++i];
      if (s === undefined) throw new Error(`truncated ${kind} response after ${JSON.stringify(line)}`);
      fields.push(s.slice(0, len));
      const rest = s.slice(len);
      if (f < count - 1) {
        const m = /^ \{(\d+)\+\}$/.exec(rest);
        if (!m) throw new Error(`expected " {n+}" after field ${f} of ${kind}, got ${JSON.stringify(s)}`);
        len = Number(m[1]);
      } else if (rest !== '') {
        throw new Error(`extra bytes after the last field of ${kind}: ${JSON.stringify(s)}`);
      }
    }
    if (kind === 'MAILBOX') entries.push({ name: fields[0], state: 'ACTIVE', location: fields[1], acl: fields[2] });
    else if (kind === 'RESERVE') entries.push({ name: fields[0], state: 'RESERVED', location: fields[1], acl: '' });
    else entries.push({ deleted: fields[0] });
  }
  throw new Error(`no final ${tag} response in ${JSON.stringify(lines)}`);
}

/** Logs in to a MUPDATE server (ours or Cyrus's) and returns its LIST. */
export async function listDirectory(
  port: number,
  options: { user?: string; password?: string; prefix?: string } = {},
): Promise<DirEntry[]> {
  const c = await RawClient.login(port, options.user ?? 'mupdateadmin', options.password ?? CYRUS_PASSWORD);
  try {
    const arg = options.prefix === undefined ? '' : ` "${options.prefix}"`;
    c.send(`L1 LIST${arg}\r\n`);
    const { entries, final } = parseDataResponses(await c.readUntilTagged('L1', 60_000), 'L1');
    if (final !== 'L1 OK "list complete"') throw new Error(`LIST failed: ${final}`);
    return entries as DirEntry[];
  } finally {
    c.close();
  }
}

// --- `ctl_mboxlist -d` (Cyrus 3.6 JSON) -------------------------------------

/** JSON value with objects kept as ordered key/value pairs. */
type Json = string | number | boolean | null | Json[] | { pairs: Array<[string, Json]> };

function parseOrderedJson(text: string): Json {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
  };
  const fail = (what: string): never => {
    throw new Error(`bad JSON at ${i} (${what}): ${text.slice(Math.max(0, i - 40), i + 40)}`);
  };
  const str = (): string => {
    const m = /^"(?:[^"\\]|\\.)*"/s.exec(text.slice(i));
    if (!m) return fail('string');
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  const value = (): Json => {
    ws();
    const c = text[i];
    if (c === '"') return str();
    if (c === '{') {
      i++;
      const pairs: Array<[string, Json]> = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { pairs };
      }
      for (;;) {
        ws();
        const k = str();
        ws();
        if (text[i++] !== ':') fail('colon');
        pairs.push([k, value()]);
        ws();
        const sep = text[i++];
        if (sep === '}') return { pairs };
        if (sep !== ',') fail('object separator');
      }
    }
    if (c === '[') {
      i++;
      const items: Json[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return items;
      }
      for (;;) {
        items.push(value());
        ws();
        const sep = text[i++];
        if (sep === ']') return items;
        if (sep !== ',') fail('array separator');
      }
    }
    const m = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i));
    if (!m) return fail('value');
    i += m[0].length;
    return JSON.parse(m[0]) as Json;
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing data');
  return v;
}

const utf8ToBytes = (s: string) => Buffer.from(s, 'utf8').toString('latin1');

export interface ParsedDump {
  entries: DirEntry[];
  /**
   * Entries Cyrus could not write: jansson refuses strings that are not valid
   * UTF-8, and `ctl_mboxlist -d` then prints an empty line in place of the
   * entry (which makes the output invalid JSON).
   */
  unrepresentable: number;
}

/**
 * Converts `ctl_mboxlist -d` output (spec 7.4) to MUPDATE entries: skips
 * deleted (`d`) and intermediate (`i`) entries; `z` = RESERVED; location is
 * `server!partition` (or whichever of the two exists); the ACL is each
 * `identifier TAB rights TAB` in the dump's order. ACL objects are read in
 * order (not with JSON.parse, which would move numeric keys first).
 */
export function parseCtlMboxlistDump(output: string): ParsedDump {
  const lines = output.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines[0] !== '{' || lines[lines.length - 1] !== '}')
    throw new Error(`not a ctl_mboxlist -d dump: ${JSON.stringify(output.slice(0, 200))}`);
  const body = lines.slice(1, -1);
  const result: ParsedDump = { entries: [], unrepresentable: 0 };
  if (body.length === 1 && body[0] === '') return result; // empty database
  for (const raw of body) {
    const line = raw.endsWith(',') ? raw.slice(0, -1) : raw;
    if (line === '') {
      result.unrepresentable++;
      continue;
    }
    const parsed = parseOrderedJson(`{${line}}`);
    if (typeof parsed !== 'object' || parsed === null || !('pairs' in parsed) || parsed.pairs.length !== 1) {
      throw new Error(`unexpected dump line ${JSON.stringify(raw)}`);
    }
    const [name, obj] = parsed.pairs[0];
    if (typeof obj !== 'object' || obj === null || !('pairs' in obj)) throw new Error(`unexpected dump line ${JSON.stringify(raw)}`);
    const get = (k: string) => obj.pairs.find(([key]) => key === k)?.[1];
    const mbtype = typeof get('mbtype') === 'string' ? (get('mbtype') as string) : '';
    if (mbtype.includes('d') || mbtype.includes('i')) continue;
    const server = get('server');
    const partition = get('partition');
    const location =
      typeof server === 'string' && typeof partition === 'string'
        ? `${server}!${partition}`
        : typeof server === 'string'
          ? server
          : typeof partition === 'string'
            ? partition
            : '';
    const aclObj = get('acl');
    let acl = '';
    if (aclObj && typeof aclObj === 'object' && 'pairs' in aclObj) {
      for (const [id, rights] of aclObj.pairs) acl += `${id}\t${typeof rights === 'string' ? rights : JSON.stringify(rights)}\t`;
    }
    const reserved = mbtype.includes('z');
    result.entries.push({
      name: utf8ToBytes(name),
      state: reserved ? 'RESERVED' : 'ACTIVE',
      location: utf8ToBytes(location),
      acl: reserved ? '' : utf8ToBytes(acl),
    });
  }
  return result;
}

/** True when the byte string is valid UTF-8 (what `ctl_mboxlist -d` can show). */
export function isUtf8(bytes: string): boolean {
  const b = Buffer.from(bytes, 'latin1');
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

// ---------------------------------------------------------------------------
// A Cyrus server (master(8) + mupdate) in a private temp dir

export interface CyrusServerOptions {
  /** Port to listen on (127.0.0.1); default: a free one. */
  port?: number;
  /** `servername` (also the SASL realm); default `cyrus-<role>-<port>`. */
  servername?: string;
  /** Extra imapd.conf lines. */
  extraConfig?: Record<string, string | number>;
  /** Wait this long for the banner (a slave shows it after its first sync). */
  startTimeoutMs?: number;
}

export interface CyrusSlaveOptions extends CyrusServerOptions {
  masterPort: number;
  masterHost?: string;
  /** mupdate_retry_delay (seconds, >= 2; default 2). */
  retryDelay?: number;
  /** How the slave logs in to its master (default mupdateadmin / secret). */
  user?: string;
  password?: string;
}

export class CyrusServer {
  child: ChildProcess | null = null;
  /** stdout/stderr of master(8) (Cyrus itself logs only to syslog). */
  readonly output: string[] = [];
  /** The banner lines of the last start. */
  banner: string[] = [];
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly role: 'master' | 'slave',
    readonly dir: string,
    readonly port: number,
    readonly servername: string,
    private readonly startTimeoutMs: number,
  ) {}

  get imapdConf(): string {
    return join(this.dir, 'imapd.conf');
  }
  get cyrusConf(): string {
    return join(this.dir, 'cyrus.conf');
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts master(8) in the foreground and waits for this server's banner. */
  async start(): Promise<void> {
    if (this.running) throw new Error('already running');
    rmSync(join(this.dir, 'master.pid'), { force: true });
    rmSync(join(this.dir, 'master.pid.lock'), { force: true });
    const child = spawnCyrusMaster(['-C', this.imapdConf, '-M', this.cyrusConf, '-p', join(this.dir, 'master.pid'), '-D']);
    this.child = child;
    if (child.pid) livePids.add(child.pid);
    const collect = (d: Buffer) => this.output.push(d.toString('utf8'));
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        if (child.pid) livePids.delete(child.pid);
        resolve();
      }),
    );
    child.once('error', (e) => this.output.push(`spawn error: ${e.message}`));
    try {
      this.banner = await this.waitBanner(this.startTimeoutMs);
    } catch (e) {
      await this.kill();
      throw e;
    }
  }

  /**
   * Connects until a `* OK MUPDATE "<servername>"` banner arrives (a Cyrus
   * slave keeps a connection banner-less until its first sync).
   */
  private async waitBanner(timeoutMs: number): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    let lastError = '';
    for (let attempt = 0; attempt < 1000 && Date.now() < deadline; attempt++) {
      if (!this.running) {
        throw new Error(
          `Cyrus master(8) for ${this.role} exited (${this.child?.exitCode ?? this.child?.signalCode}); output: ${this.output.join('')}`,
        );
      }
      let c: RawClient | undefined;
      try {
        c = await RawClient.connect(this.port);
        const lines: string[] = [];
        for (let i = 0; i < 20; i++) {
          const l = await c.readLine(Math.max(1, deadline - Date.now()));
          lines.push(l);
          if (l.startsWith('* OK')) break;
        }
        const ok = lines[lines.length - 1] ?? '';
        if (!ok.startsWith(`* OK MUPDATE "${this.servername}"`)) {
          throw new Error(`127.0.0.1:${this.port} is not our Cyrus ${this.role} (banner ${JSON.stringify(lines)}); port taken?`);
        }
        return lines;
      } catch (e) {
        lastError = (e as Error).message;
        if (lastError.includes('is not our Cyrus')) throw e;
        await sleep(200);
      } finally {
        c?.close();
      }
    }
    throw new Error(
      `no MUPDATE banner from the Cyrus ${this.role} on 127.0.0.1:${this.port} within ${timeoutMs} ms ` +
        `(${this.role === 'slave' ? 'a slave shows it only after its first sync with its master; ' : ''}last error: ${lastError})`,
    );
  }

  /** SIGTERM to master(8) (it stops its services) and wait; SIGKILL what is left after 10 s. */
  async stop(): Promise<void> {
    const pid = this.child?.pid;
    if (!pid || !this.running) return;
    const kids = descendantsOf(pid);
    this.child!.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.exited,
      new Promise<void>((r) => {
        timer = setTimeout(r, 10_000);
      }),
    ]);
    clearTimeout(timer);
    if (this.running) this.child!.kill('SIGKILL');
    await this.exited;
    for (const k of await waitGone(kids, 5_000))
      try {
        process.kill(k, 'SIGKILL');
      } catch {
        /* gone */
      }
    await waitGone(kids, 5_000);
  }

  /** A crash: SIGKILL to master(8) and its services at once. */
  async kill(): Promise<void> {
    const pid = this.child?.pid;
    if (!pid || !this.running) return;
    const kids = descendantsOf(pid);
    for (const p of [pid, ...kids])
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    await this.exited;
    await waitGone(kids, 5_000);
  }

  /** Stops (or kills) it and removes its directory. */
  async cleanup(): Promise<void> {
    try {
      await this.stop();
    } finally {
      await this.kill();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** `ctl_mboxlist -d` of its mailboxes.db (raw JSON text). */
  async dumpRaw(): Promise<string> {
    const r = await runProgram(join(CYRUS_BIN, 'ctl_mboxlist'), ['-C', this.imapdConf, '-d'], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`ctl_mboxlist -d exited ${r.code ?? r.signal}: ${r.stderr}`);
    return Buffer.from(r.stdout, 'latin1').toString('utf8');
  }

  /** Its copy of the directory, read with `ctl_mboxlist -d`. */
  async dump(): Promise<ParsedDump> {
    return parseCtlMboxlistDump(await this.dumpRaw());
  }
}

function writeOwned(path: string, text: string, mode = 0o640): void {
  const { uid, gid } = cyrusIds();
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  chownSync(path, uid, gid);
}

/** Creates the directory layout Cyrus needs, owned by cyrus:mail. */
function makeCyrusDir(prefix: string): string {
  const { uid, gid } = cyrusIds();
  const dir = tempDir(prefix);
  for (const sub of ['conf', 'conf/db', 'conf/socket', 'conf/proc', 'conf/lock', 'conf/log', 'spool']) {
    mkdirSync(join(dir, sub), { recursive: true });
  }
  for (const sub of ['', 'conf', 'conf/db', 'conf/socket', 'conf/proc', 'conf/lock', 'conf/log', 'spool']) {
    const p = join(dir, sub);
    chmodSync(p, 0o750);
    chownSync(p, uid, gid);
  }
  return dir;
}

/** SASL users in a private sasldb (realm = the server's servername), password `secret`. */
function addSaslUsers(sasldb: string, realm: string, users: string[]): void {
  const saslpasswd2 = which('saslpasswd2');
  if (!saslpasswd2) throw new Error('saslpasswd2 missing');
  for (const u of users) {
    const r = spawnSync(saslpasswd2, ['-p', '-c', '-f', sasldb, '-u', realm, u], { input: CYRUS_PASSWORD });
    if (r.status !== 0) throw new Error(`saslpasswd2 failed for ${u}: ${r.stderr?.toString()}`);
  }
  const { uid, gid } = cyrusIds();
  chmodSync(sasldb, 0o640);
  chownSync(sasldb, uid, gid);
}

function confLines(config: Record<string, string | number>): string {
  return (
    Object.entries(config)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n') + '\n'
  );
}

async function createCyrusServer(
  role: 'master' | 'slave',
  options: CyrusServerOptions,
  roleConfig: Record<string, string | number>,
): Promise<CyrusServer> {
  cyrusIds();
  const port = options.port ?? (await freePort());
  const servername = options.servername ?? `cyrus-${role}-${port}`;
  const dir = makeCyrusDir(`cyrus-${role}-`);
  const server = new CyrusServer(role, dir, port, servername, options.startTimeoutMs ?? 60_000);
  try {
    writeOwned(
      server.imapdConf,
      `# private imapd.conf for a Cyrus MUPDATE ${role} (test/helpers/cyrus.ts)\n` +
        confLines({
          configdirectory: join(dir, 'conf'),
          'partition-default': join(dir, 'spool'),
          servername,
          // Cyrus mupdate refuses every login by a user not listed here
          admins: CYRUS_ADMINS.join(' '),
          allowplaintext: 'yes',
          sasl_pwcheck_method: 'auxprop',
          sasl_auxprop_plugin: 'sasldb',
          sasl_sasldb_path: join(dir, 'sasldb2'),
          sasl_mech_list: 'PLAIN',
          mupdate_config: 'standard',
          syslog_prefix: `test-${role}-${port}`,
          ...roleConfig,
          ...(options.extraConfig ?? {}),
        }),
    );
    // master(8) does not hand its own -C to services: put it in cmd.
    const cmd = role === 'master' ? `mupdate -m -C ${server.imapdConf}` : `mupdate -C ${server.imapdConf}`;
    writeOwned(server.cyrusConf, `SERVICES {\n  mupdate cmd="${cmd}" listen="127.0.0.1:${port}" prefork=1 maxchild=1\n}\n`);
    addSaslUsers(join(dir, 'sasldb2'), servername, CYRUS_USERS);
    await server.start();
    return server;
  } catch (e) {
    await server.kill();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Starts a real Cyrus MUPDATE slave following `masterHost:masterPort` and waits
 * until it serves (which it does only after its first sync). `stop()`/`start()`
 * restart it on the same port with its mailboxes.db kept.
 */
export function startCyrusSlave(options: CyrusSlaveOptions): Promise<CyrusServer> {
  const retryDelay = options.retryDelay ?? 2;
  if (retryDelay < 2) throw new Error('mupdate_retry_delay below 2 crashes the Cyrus slave (SIGFPE in its jitter)');
  const user = options.user ?? 'mupdateadmin';
  return createCyrusServer('slave', options, {
    // host:port - Cyrus ignores mupdate_port
    mupdate_server: `${options.masterHost ?? '127.0.0.1'}:${options.masterPort}`,
    mupdate_username: user,
    mupdate_authname: user,
    mupdate_password: options.password ?? CYRUS_PASSWORD,
    mupdate_retry_delay: retryDelay,
  });
}

/**
 * Starts a real Cyrus MUPDATE master (`mupdate -m`). SASL users (PLAIN,
 * password `secret`): mupdateadmin, backend1, backend2 (admins, the only ones
 * Cyrus lets log in) and alice. Its mailboxes.db survives `stop()`/`start()`
 * (no `ctl_cyrusdb -r`, which would drop reservations).
 */
export function startCyrusMaster(options: CyrusServerOptions = {}): Promise<CyrusServer> {
  return createCyrusServer('master', options, {});
}

// ---------------------------------------------------------------------------
// mupdatetest

export type MupdatetestStep =
  /** A protocol line to type (LF appended unless present; mupdatetest sends CRLF). */
  | string
  /** Wait until the output printed since the previous wait matches. */
  | { waitFor: RegExp | string; timeoutMs?: number }
  /** Run something meanwhile (e.g. a change from another client). */
  | { run: () => Promise<void> };

export interface MupdatetestOptions {
  host?: string;
  user?: string;
  password?: string;
  /** Authorization id (`-u`); default = user; null sends an empty one. */
  authzid?: string | null;
  extraArgs?: string[];
  /** `-m`: the mechanism to force (default PLAIN); null lets mupdatetest pick from the banner. */
  mechanism?: string | null;
  /** Wait for the login result before typing (default true). */
  waitForLogin?: boolean;
  /** Overall limit; the program is killed after it (default 30 s). */
  timeoutMs?: number;
}

export interface MupdatetestResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Everything printed to stdout, as bytes (latin1). */
  output: string;
  /** The output split at LF, a trailing CR removed. */
  lines: string[];
  /** The lines printed after `Security strength factor: N`. */
  afterLogin: string[];
  stderr: string;
}

/**
 * Runs the real `mupdatetest -m PLAIN -a USER -u USER -w PASS -p PORT HOST` (`-m` as chosen),
 * typing the steps on its stdin, then closes stdin (it sends `Q01 LOGOUT`) and
 * waits for it to exit.
 */
export async function runMupdatetest(port: number, steps: MupdatetestStep[], options: MupdatetestOptions = {}): Promise<MupdatetestResult> {
  const user = options.user ?? 'mupdateadmin';
  const authz = options.authzid === undefined ? user : options.authzid;
  const mechanism = options.mechanism === undefined ? 'PLAIN' : options.mechanism;
  const args = [
    ...(mechanism === null ? [] : ['-m', mechanism]),
    '-a',
    user,
    ...(authz === null ? [] : ['-u', authz]),
    '-w',
    options.password ?? CYRUS_PASSWORD,
    '-p',
    String(port),
    ...(options.extraArgs ?? []),
    options.host ?? '127.0.0.1',
  ];
  const child = spawn(join(CYRUS_BIN, 'mupdatetest'), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  if (child.pid) livePids.add(child.pid);
  let output = '';
  let stderr = '';
  let wake: (() => void) | null = null;
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString('latin1');
    wake?.();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString('latin1');
  });
  child.stdin.on('error', () => {
    /* it exited */
  });
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => {
      if (child.pid) livePids.delete(child.pid);
      wake?.();
      resolve({ code, signal });
    }),
  );
  const overall = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  let cursor = 0;
  const waitFor = async (what: RegExp | string, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rest = output.slice(cursor);
      const m =
        typeof what === 'string'
          ? rest.includes(what)
            ? { index: rest.indexOf(what), len: what.length }
            : null
          : ((r) => (r ? { index: r.index, len: r[0].length } : null))(what.exec(rest));
      if (m) {
        cursor += m.index + m.len;
        return;
      }
      if (child.exitCode !== null || child.signalCode !== null || Date.now() >= deadline) {
        throw new Error(
          `mupdatetest output never matched ${String(what)} (exited: ${child.exitCode ?? child.signalCode}); output so far:\n${output}\nstderr: ${stderr}`,
        );
      }
      await new Promise<void>((r) => {
        const t = setTimeout(
          () => {
            wake = null;
            r();
          },
          Math.min(250, deadline - Date.now()),
        );
        wake = () => {
          clearTimeout(t);
          wake = null;
          r();
        };
      });
    }
  };
  try {
    if (options.waitForLogin !== false) await waitFor(/^(Authenticated\.|Authentication failed\.)/m, 20_000);
    for (const step of steps) {
      if (typeof step === 'string') child.stdin.write(Buffer.from(step.endsWith('\n') ? step : `${step}\n`, 'latin1'));
      else if ('waitFor' in step) await waitFor(step.waitFor, step.timeoutMs ?? 10_000);
      else await step.run();
    }
    child.stdin.end();
    const { code, signal } = await closed;
    const lines = output.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
    if (lines[lines.length - 1] === '') lines.pop();
    const ssf = lines.findIndex((l) => l.startsWith('Security strength factor:'));
    return { code, signal, output, lines, afterLogin: ssf < 0 ? [] : lines.slice(ssf + 1), stderr };
  } finally {
    clearTimeout(overall);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
