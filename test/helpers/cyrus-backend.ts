/**
 * Helpers that play the *backend* side of a Cyrus Murder with the real Cyrus
 * 3.6 programs against a running mupdated:
 *
 * - `CyrusBackend`: a throw-away backend configdirectory (imapd.conf with
 *   `servername`, `mupdate_server: 127.0.0.1:<port>`, `mupdate_username` /
 *   `mupdate_authname` / `mupdate_password`), whose mailboxes.db is loaded from a
 *   Cyrus 3.6 JSON dump with `ctl_mboxlist -u`, optionally given empty mailbox
 *   files with `reconstruct`, pushed with `ctl_mboxlist -m [-w] [-a]`, and read
 *   back with `ctl_mboxlist -d`.
 * - `CyrusBackend.startImapd()`: the same backend served by a real `imapd` under
 *   its own master(8) on a free loopback port (murder backend config: `proxyservers`
 *   set, so imapd creates mailboxes locally and tells the MUPDATE master).
 * - `masterEntries()`: the mupdated side, read back with `LIST` / `FIND`.
 *
 * Facts used here (checked with Debian's 3.6.1): the Cyrus tools started as root
 * switch to the `cyrus` user themselves, so every directory they touch must be
 * owned by cyrus:mail (and temp dirs made by mkdtemp are 0700 root: chown them);
 * `mupdate_server` must be `host:port` (Cyrus ignores `mupdate_port`);
 * `ctl_mboxlist -u` skips entries without `uniqueid`; imapd only acts as a murder
 * *backend* (creates locally, then RESERVE+ACTIVATE on the master) when
 * `proxyservers` is set — without it, it believes it is a frontend and answers
 * CREATE with `NO Server(s) unavailable to complete operation`; the SASL realm in
 * the sasldb must equal `servername`; a service process of master(8) is reused
 * for later connections, so config changes need a new master.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  chownSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { CYRUS_BIN, spawnCyrusMaster } from './cyrus-master.js';
import { parseDataResponses } from './cyrus.js';
import { freePort } from './ports.js';
import { RawClient } from './raw-client.js';
import { runProgram, showRun, type ProgramResult } from './run.js';
import { tempDir } from './server.js';
import { findExecutable } from './find-program.js';

export { CYRUS_BIN };
export const CYRUS_USER = 'cyrus';
export const CYRUS_GROUP = 'mail';
export const PASSWORD = 'secret';

// ---------------------------------------------------------------------------
// availability

export interface Availability {
  available: boolean;
  /** Why the Cyrus programs cannot be used (empty when available). */
  reason: string;
}

function lookupId(file: string, name: string): number | undefined {
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined) return Number(f[2]);
    }
  } catch {
    /* no such file */
  }
  return undefined;
}

function findInPath(prog: string): string | undefined {
  return findExecutable(prog, ['/usr/sbin', '/sbin', '/usr/bin']);
}

let cachedAvailability: Availability | undefined;

/** Whether the real Cyrus backend programs can be run from this process. */
export function cyrusAvailability(): Availability {
  if (cachedAvailability) return cachedAvailability;
  const missing: string[] = [];
  for (const p of ['ctl_mboxlist', 'reconstruct', 'ctl_cyrusdb', 'master', 'imapd']) {
    try {
      accessSync(join(CYRUS_BIN, p), constants.X_OK);
    } catch {
      missing.push(join(CYRUS_BIN, p));
    }
  }
  if (!findInPath('saslpasswd2')) missing.push('saslpasswd2');
  const reasons: string[] = [];
  if (missing.length)
    reasons.push(`missing ${missing.join(', ')} (apt-get install cyrus-common cyrus-imapd sasl2-bin libsasl2-modules libsasl2-modules-db)`);
  const uid = lookupId('/etc/passwd', CYRUS_USER);
  if (uid === undefined) reasons.push(`no '${CYRUS_USER}' user`);
  else if (lookupId('/etc/group', CYRUS_GROUP) === undefined) reasons.push(`no '${CYRUS_GROUP}' group`);
  const me = process.getuid?.();
  if (me !== 0 && me !== uid) reasons.push(`must run as root (Cyrus switches to '${CYRUS_USER}' itself), not uid ${me}`);
  cachedAvailability = { available: reasons.length === 0, reason: reasons.join('; ') };
  return cachedAvailability;
}

/** Why the backend programs cannot be run here, or null when they can (for `interopTest`). */
export function backendMissingReason(): string | null {
  const a = cyrusAvailability();
  return a.available ? null : `Cyrus interop prerequisites missing: ${a.reason}`;
}

export function cyrusIds(): { uid: number; gid: number } {
  return { uid: lookupId('/etc/passwd', CYRUS_USER)!, gid: lookupId('/etc/group', CYRUS_GROUP)! };
}

/** chown -R cyrus:mail (only when we are root; as `cyrus` the files are ours already). */
export function chownTree(path: string): void {
  if (process.getuid?.() !== 0) return;
  const { uid, gid } = cyrusIds();
  chownSync(path, uid, gid);
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    if (e.isDirectory()) chownTree(p);
    else chownSync(p, uid, gid);
  }
}

// ---------------------------------------------------------------------------
// dumps (spec 7.4)

export interface MailboxSpec {
  /** Internal name, e.g. `user.bob.Sent`. */
  name: string;
  /** ACL as (identifier, rights) pairs in order; default: the owner of a user.* name gets all rights. */
  acl?: Array<[string, string]>;
  partition?: string;
}

/** The default ACL the tests give a mailbox: `<owner> lrswipkxtecdan` for user.*, else `anyone lrs`. */
export function defaultAcl(name: string): Array<[string, string]> {
  const m = /^user\.([^.]+)/.exec(name);
  return m ? [[m[1], 'lrswipkxtecdan']] : [['anyone', 'lrs']];
}

/** ACL pairs in MUPDATE wire form: `id TAB rights TAB` for each pair. */
export function aclText(acl: Array<[string, string]>): string {
  return acl.map(([id, rights]) => `${id}\t${rights}\t`).join('');
}

/**
 * A Cyrus 3.6 `ctl_mboxlist -d` style JSON dump of a backend's own mailboxes
 * (no `server` key, with the `uniqueid` that `ctl_mboxlist -u` requires).
 */
export function backendDumpJson(mailboxes: MailboxSpec[]): string {
  const lines = mailboxes.map((m, i) => {
    const acl: Record<string, string> = {};
    for (const [id, rights] of m.acl ?? defaultAcl(m.name)) {
      if (/^\d+$/.test(id)) throw new Error(`ACL identifier ${id} would be reordered by JSON`);
      acl[id] = rights;
    }
    const entry = {
      uidvalidity: String(1_700_000_000 + i),
      createdmodseq: '1',
      foldermodseq: '1',
      mbtype: 'e',
      partition: m.partition ?? 'default',
      acl,
      uniqueid: randomUUID(),
      name_history: [],
    };
    return `${JSON.stringify(m.name)}: ${JSON.stringify(entry)}`;
  });
  return `{\n${lines.join(',\n')}\n}\n`;
}

export interface LocalMailbox {
  name: string;
  mbtype: string;
  partition?: string;
  server?: string;
  /** `server!partition` (what a push would send), with the backend's servername for local entries. */
  location: string;
  /** The ACL in wire form (`id TAB rights TAB` ...). */
  acl: string;
}

/** Parses `ctl_mboxlist -d` output (3.6 JSON) into entries, in dump (mailboxes.db) order. */
export function parseCyrusDump(text: string, servername: string): LocalMailbox[] {
  const trimmed = text.trim();
  if (trimmed === '{\n}' || trimmed === '{}' || /^\{\s*\}$/.test(trimmed)) return [];
  const obj = JSON.parse(text) as Record<string, { mbtype?: string; partition?: string; server?: string; acl?: Record<string, string> }>;
  return Object.entries(obj).map(([name, e]) => {
    const server = e.server ?? servername;
    return {
      name,
      mbtype: e.mbtype ?? '',
      partition: e.partition,
      server: e.server,
      location: e.partition === undefined ? server : `${server}!${e.partition}`,
      acl: Object.entries(e.acl ?? {})
        .map(([id, r]) => `${id}\t${r}\t`)
        .join(''),
    };
  });
}

/** Entries a push would consider (no deleted tombstones `d`, no intermediates `i`). */
export function usable(list: LocalMailbox[]): LocalMailbox[] {
  return list.filter((m) => !m.mbtype.includes('d') && !m.mbtype.includes('i'));
}

// ---------------------------------------------------------------------------
// the backend

export interface BackendOptions {
  /** mupdated's port on 127.0.0.1. */
  mupdatePort: number;
  /** Backend `servername` (the server part of every location it pushes). Default `backend1`. */
  servername?: string;
  /** MUPDATE login (`mupdate_username` = `mupdate_authname`). Default: the servername. */
  user?: string;
  password?: string;
  /** Extra imapd.conf lines. */
  config?: Record<string, string>;
}

export interface PushOptions {
  /** `-w`: only print the plan. */
  warn?: boolean;
  /** `-a`: the local list is authoritative. */
  authoritative?: boolean;
  timeoutMs?: number;
}

export class CyrusBackend {
  readonly configPath: string;
  readonly confDir: string;
  readonly spoolDir: string;
  private imapd: CyrusImapd | undefined;

  private constructor(
    readonly dir: string,
    readonly servername: string,
    readonly options: BackendOptions,
  ) {
    this.configPath = join(dir, 'imapd.conf');
    this.confDir = join(dir, 'conf');
    this.spoolDir = join(dir, 'spool');
  }

  /** Creates the directory tree and imapd.conf (and initialises its databases). */
  static async create(options: BackendOptions): Promise<CyrusBackend> {
    const servername = options.servername ?? 'backend1';
    const dir = tempDir(`cyrus-${servername}-`);
    chmodSync(dir, 0o750);
    const b = new CyrusBackend(dir, servername, options);
    for (const sub of ['db', 'socket', 'proc', 'lock', 'log']) mkdirSync(join(b.confDir, sub), { recursive: true });
    mkdirSync(b.spoolDir, { recursive: true });
    b.writeConfig();
    chownTree(dir);
    // as Debian's START does; also silences "DBERROR ... skipstamp" on first use
    await runProgram(join(CYRUS_BIN, 'ctl_cyrusdb'), ['-C', b.configPath, '-r'], { timeoutMs: 30_000 });
    return b;
  }

  /** The imapd.conf keys of this backend. */
  configKeys(): Record<string, string> {
    const user = this.options.user ?? this.servername;
    return {
      configdirectory: this.confDir,
      'partition-default': this.spoolDir,
      servername: this.servername,
      altnamespace: 'no',
      unixhierarchysep: 'no',
      mupdate_server: `127.0.0.1:${this.options.mupdatePort}`,
      mupdate_username: user,
      mupdate_authname: user,
      mupdate_password: this.options.password ?? PASSWORD,
      syslog_prefix: `mupdated-test-${this.servername}`,
      ...(this.options.config ?? {}),
    };
  }

  private writeConfig(extra: Record<string, string> = {}): void {
    const keys = { ...this.configKeys(), ...extra };
    writeFileSync(
      this.configPath,
      Object.entries(keys)
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n') + '\n',
      { mode: 0o640 },
    );
    chownTree(this.dir);
  }

  private ctl(args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<ProgramResult> {
    return runProgram(join(CYRUS_BIN, 'ctl_mboxlist'), ['-C', this.configPath, ...args], options);
  }

  /** The backend's own mailboxes.db (`ctl_mboxlist -d`), all entries in db order. */
  async localDump(): Promise<LocalMailbox[]> {
    const r = await this.ctl(['-d']);
    if (r.code !== 0) throw new Error(`ctl_mboxlist -d failed: ${showRun(r)}`);
    return parseCyrusDump(r.stdout, this.servername);
  }

  /** The mailboxes a push considers (`ctl_mboxlist -d` without tombstones/intermediates). */
  async localList(): Promise<LocalMailbox[]> {
    return usable(await this.localDump());
  }

  /**
   * Loads mailboxes into mailboxes.db with `ctl_mboxlist -u` (and, with
   * `files`, creates their empty mailbox files with `reconstruct`, which a
   * push needs to delete a local mailbox). Throws unless all were loaded.
   */
  async load(mailboxes: MailboxSpec[], options: { files?: boolean } = {}): Promise<void> {
    const before = (await this.localDump()).length;
    const r = await this.ctl(['-u'], { input: backendDumpJson(mailboxes) });
    if (r.code !== 0) throw new Error(`ctl_mboxlist -u failed: ${showRun(r)}`);
    const after = (await this.localDump()).length;
    if (after - before !== mailboxes.length) {
      throw new Error(`ctl_mboxlist -u loaded ${after - before} of ${mailboxes.length} mailboxes: ${showRun(r)}`);
    }
    if (options.files) await this.reconstruct(mailboxes.map((m) => m.name));
  }

  /** `reconstruct NAME...`: creates the missing mailbox files. */
  async reconstruct(names: string[]): Promise<ProgramResult> {
    const r = await runProgram(join(CYRUS_BIN, 'reconstruct'), ['-C', this.configPath, ...names], { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`reconstruct failed: ${showRun(r)}`);
    return r;
  }

  /** Runs `ctl_mboxlist -m [-w] [-a]` against mupdated; returns its exit code and output. */
  push(options: PushOptions = {}): Promise<ProgramResult> {
    const args = ['-m'];
    if (options.warn) args.push('-w');
    if (options.authoritative) args.push('-a');
    return this.ctl(args, { timeoutMs: options.timeoutMs ?? 60_000 });
  }

  /**
   * Serves this backend with a real imapd under its own master(8) on a free
   * loopback port. IMAP login: `cyrus` / secret (an admin), PLAIN/LOGIN
   * without TLS. `deleteMode` is imapd's `delete_mode`. `port`: listen there
   * instead of a free port of our choosing. `frontend`: a Murder frontend
   * (no `proxyservers`).
   */
  async startImapd(
    options: {
      deleteMode?: 'delayed' | 'immediate';
      config?: Record<string, string>;
      port?: number;
      frontend?: boolean;
    } = {},
  ): Promise<CyrusImapd> {
    if (this.imapd) throw new Error('imapd already running for this backend');
    const sasldb = join(this.dir, 'sasldb2');
    const sp = spawnSync(findInPath('saslpasswd2')!, ['-p', '-c', '-f', sasldb, '-u', this.servername, CYRUS_USER], { input: PASSWORD });
    if (sp.status !== 0) throw new Error(`saslpasswd2 failed: ${String(sp.stderr)}`);
    chmodSync(sasldb, 0o640);
    this.writeConfig({
      admins: CYRUS_USER,
      // makes imapd a murder backend: without proxyservers it thinks it is a frontend
      ...(options.frontend ? {} : { proxyservers: 'murder' }),
      allowplaintext: 'yes',
      sasl_pwcheck_method: 'auxprop',
      sasl_auxprop_plugin: 'sasldb',
      sasl_sasldb_path: sasldb,
      sasl_mech_list: 'PLAIN',
      delete_mode: options.deleteMode ?? 'delayed',
      ...(options.config ?? {}),
    });
    const port = options.port ?? (await freePort());
    const cyrusConf = join(this.dir, 'cyrus.conf');
    writeFileSync(cyrusConf, `SERVICES {\n  imap cmd="imapd -C ${this.configPath}" listen="127.0.0.1:${port}" prefork=0 maxchild=10\n}\n`);
    chownTree(this.dir);
    const pidFile = join(this.dir, 'master.pid');
    // foreground master(8): our child, stopped with SIGTERM (it stops its imapds)
    const child = spawnCyrusMaster(['-C', this.configPath, '-M', cyrusConf, '-p', pidFile]);
    const output: string[] = [];
    child.stdout!.setEncoding('latin1').on('data', (d: string) => output.push(d));
    child.stderr!.setEncoding('latin1').on('data', (d: string) => output.push(d));
    const imapd = new CyrusImapd(this, port, child, output);
    this.imapd = imapd;
    try {
      await imapd.waitReady(30_000);
    } catch (e) {
      await imapd.stop();
      throw e;
    }
    return imapd;
  }

  /** Stops imapd (if any) and removes the directory. */
  async remove(): Promise<void> {
    await this.imapd?.stop();
    this.imapd = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** @internal */
  forgetImapd(i: CyrusImapd): void {
    if (this.imapd === i) this.imapd = undefined;
  }
}

export class CyrusImapd {
  private exited: Promise<void>;
  private done = false;

  constructor(
    readonly backend: CyrusBackend,
    readonly port: number,
    readonly child: ChildProcess,
    readonly output: string[],
  ) {
    this.exited = new Promise((res) =>
      child.once('exit', () => {
        this.done = true;
        res();
      }),
    );
  }

  /** Waits until imapd answers with its `* OK` banner (bounded attempts). */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (let i = 0; i < 300 && Date.now() < deadline; i++) {
      if (this.done) throw new Error(`master(8) exited at startup: ${this.output.join('')}`);
      try {
        const banner = await readBanner(this.port, Math.max(500, Math.min(5000, deadline - Date.now())));
        if (banner.startsWith('* OK')) return;
        last = banner;
      } catch (e) {
        last = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no IMAP banner on 127.0.0.1:${this.port} (${last}); master output: ${this.output.join('')}`);
  }

  /** SIGTERM to master(8) (it stops its services), then any service process left behind, by pid. */
  async stop(): Promise<void> {
    if (!this.done) {
      this.child.kill('SIGTERM');
      await settleWithin(this.exited, 10_000);
      if (!this.done) {
        this.child.kill('SIGKILL');
        await settleWithin(this.exited, 5_000);
      }
    }
    // Cyrus records each service process in configdirectory/proc/<pid>
    const procDir = join(this.backend.confDir, 'proc');
    if (existsSync(procDir)) {
      for (const f of readdirSync(procDir)) {
        const pid = Number(f);
        if (!Number.isInteger(pid) || pid <= 1) continue;
        try {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
          if (cmdline.includes(this.backend.configPath)) process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    this.backend.forgetImapd(this);
  }
}

/** Waits for p, but at most ms (without leaving a timer behind). */
async function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p,
    new Promise((r) => {
      timer = setTimeout(r, ms);
    }),
  ]);
  clearTimeout(timer);
}

function readBanner(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('banner timeout'));
    }, timeoutMs);
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\r\n');
      if (i >= 0) {
        clearTimeout(timer);
        s.destroy();
        resolve(buf.slice(0, i));
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`closed before banner (${JSON.stringify(buf)})`));
    });
  });
}

// ---------------------------------------------------------------------------
// the master side (mupdated), read back over MUPDATE

export interface MasterEntry {
  kind: 'MAILBOX' | 'RESERVE';
  name: string;
  location: string;
  /** '' for RESERVE. */
  acl: string;
}

/** A MAILBOX entry as the master's FIND or LIST returns it. */
export function mailboxEntry(name: string, location: string, acl: string): MasterEntry {
  return { kind: 'MAILBOX', name, location, acl };
}

/** The entries of a LIST or FIND answer (read up to its tagged OK) in the order sent. */
function toEntries(lines: string[], tag: string): MasterEntry[] {
  const { entries, final } = parseDataResponses(lines, tag);
  if (!final.startsWith(`${tag} OK `)) throw new Error(`command ${tag} failed: ${JSON.stringify(lines)}`);
  return entries.map((e): MasterEntry => {
    if ('deleted' in e) throw new Error(`unexpected DELETE ${JSON.stringify(e.deleted)} in ${JSON.stringify(lines)}`);
    return { kind: e.state === 'ACTIVE' ? 'MAILBOX' : 'RESERVE', name: e.name, location: e.location, acl: e.acl };
  });
}

function quote(s: string): string {
  return `{${Buffer.byteLength(s, 'latin1')}+}\r\n${s}`;
}

/** `LIST [prefix]` on mupdated (as an admin): its entries, in the order it sent them. */
export async function masterEntries(port: number, prefix?: string, user = 'mupdateadmin'): Promise<MasterEntry[]> {
  const c = await RawClient.login(port, user, PASSWORD);
  try {
    c.send(`L1 LIST${prefix === undefined ? '' : ` ${quote(prefix)}`}\r\n`);
    return toEntries(await c.readUntilTagged('L1', 30_000), 'L1');
  } finally {
    c.close();
  }
}

/** `FIND name` on mupdated: the entry, or undefined. */
export async function masterFind(port: number, name: string, user = 'mupdateadmin'): Promise<MasterEntry | undefined> {
  const c = await RawClient.login(port, user, PASSWORD);
  try {
    c.send(`F1 FIND ${quote(name)}\r\n`);
    const entries = toEntries(await c.readUntilTagged('F1', 10_000), 'F1');
    if (entries.length > 1) throw new Error(`FIND ${name} returned ${entries.length} entries`);
    return entries[0];
  } finally {
    c.close();
  }
}

/** Writes entries straight into mupdated (ACTIVATE / RESERVE as an admin). */
export async function masterWrite(port: number, entries: MasterEntry[], user = 'mupdateadmin'): Promise<void> {
  const c = await RawClient.login(port, user, PASSWORD);
  try {
    let n = 0;
    for (const e of entries) {
      const tag = `W${n++}`;
      c.send(
        e.kind === 'MAILBOX'
          ? `${tag} ACTIVATE ${quote(e.name)} ${quote(e.location)} ${quote(e.acl)}\r\n`
          : `${tag} RESERVE ${quote(e.name)} ${quote(e.location)}\r\n`,
      );
      const lines = await c.readUntilTagged(tag, 10_000);
      if (lines[lines.length - 1] !== `${tag} OK "done"`) throw new Error(`${e.kind} ${e.name}: ${lines.join(' | ')}`);
    }
  } finally {
    c.close();
  }
}

/** The same entries as mupdated would list them for a backend's local list. */
export function asMasterEntries(list: LocalMailbox[]): MasterEntry[] {
  return list.map((m) => ({ kind: 'MAILBOX' as const, name: m.name, location: m.location, acl: m.acl }));
}

// ---------------------------------------------------------------------------
// mupdated's debug log: every directory change is logged as msg "directory change"

export interface DirectoryChange {
  cmd: string;
  name: string;
  location?: string;
  user?: string;
}

/** The "directory change" (and "... refused") log records among `lines`. */
export function directoryChanges(lines: string[], options: { refused?: boolean } = {}): DirectoryChange[] {
  const want = options.refused ? 'directory change refused' : 'directory change';
  const out: DirectoryChange[] = [];
  for (const line of lines) {
    if (!line.includes(want)) continue;
    try {
      const rec = JSON.parse(line) as { msg?: string; cmd: string; name: string; location?: string; user?: string };
      if (rec.msg === want) out.push({ cmd: rec.cmd, name: rec.name, location: rec.location, user: rec.user });
    } catch {
      /* not JSON */
    }
  }
  return out;
}

/**
 * Makes sure mupdated has logged everything it did for connections that are
 * already finished: sends a failed login with a unique user name and waits for
 * its "login refused" record (mupdated logs in order).
 */
export async function logBarrier(server: { port: number; waitForLog(re: RegExp, ms?: number): Promise<string> }): Promise<void> {
  const who = `barrier-${randomUUID()}`;
  const c = await RawClient.connect(server.port);
  try {
    await c.readBanner();
    const ir = Buffer.from(`\0${who}\0wrong`).toString('base64');
    c.send(`B1 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\n`);
    await server.waitForLog(new RegExp(`"user":"${who}".*"msg":"login refused"`), 20_000);
  } finally {
    c.close();
  }
}
