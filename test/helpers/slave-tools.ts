/**
 * Helpers for the slave tests: start `mupdated slave` children, read their
 * status.json, compare directories by LIST, wait (bounded) until a slave's
 * copy equals its master's, and generate valid mixed changes
 * (ACTIVATE/RESERVE/DEACTIVATE/DELETE) that neither a mupdated master nor a
 * Cyrus 3.6 master refuses or crashes on.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lit, listSorted, login, readResponse } from './directory.js';
import type { RawClient } from './raw-client.js';
import type { FollowerStatus } from '../../src/resync/follower-types.js';
import { PASSWORD, startMupdated, tempDir, type RunningMupdated, type StartOptions } from './server.js';

/** status.json as the slave writes it: the follower's own type. */
export type SlaveStatus = FollowerStatus;

let passwordFile: string | undefined;

/** A file holding the test password (`secret`), for `--password-file`. */
export function passwordFilePath(): string {
  if (!passwordFile) {
    passwordFile = join(tempDir('mupdated-slave-pw-'), 'password');
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  }
  return passwordFile;
}

export interface SlaveOptions {
  /** `--master` as given (e.g. `127.0.0.1:3905`); a number means 127.0.0.1:that port. */
  master: string | number;
  /** `--retry-delay` seconds (default 1). */
  retryDelay?: number | string;
  config?: StartOptions['config'];
  dataDir?: string;
  /** Extra arguments after the slave's own (e.g. a fixed `--listen`). */
  args?: string[];
}

/** Starts `mupdated slave` (it logs "listening" before it serves; it sends its banner after its first sync). */
export function startSlave(options: SlaveOptions): Promise<RunningMupdated> {
  return startMupdated({
    mode: 'slave',
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.config ? { config: options.config } : {}),
    args: slaveArgs(options.master, passwordFilePath(), options.retryDelay ?? 1, options.args),
  });
}

/** A slave's flags: its master (a number means 127.0.0.1:that port), logged in as mupdateadmin, then `extra`. */
export function slaveArgs(master: string | number, passwordFile: string, retryDelay: number | string, extra: string[] = []): string[] {
  const at = typeof master === 'number' ? `127.0.0.1:${master}` : master;
  return ['--master', at, '--user', 'mupdateadmin', '--password-file', passwordFile, '--retry-delay', String(retryDelay), ...extra];
}

export function readStatus(dataDir: string): SlaveStatus | null {
  const p = join(dataDir, 'status.json');
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as SlaveStatus;
  } catch {
    return null; // being rewritten
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every `stepMs` until true; throws with `what` after `timeoutMs` (bounded in count too). */
export async function waitUntil(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, stepMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const maxSteps = Math.ceil(timeoutMs / stepMs) + 10;
  for (let i = 0; i < maxSteps; i++) {
    if (await cond()) return;
    if (Date.now() > deadline) break;
    await sleep(stepMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A directory listing as readable lines `NAME => MAILBOX loc acl` (sorted by name bytes; latin1). */
export async function listOf(port: number, prefix?: string): Promise<string[]> {
  return (await listSorted(port, prefix)).map(
    ([n, e]) => `${JSON.stringify(n)} => ${e.kind} ${JSON.stringify(e.location)} ${JSON.stringify(e.acl)}`,
  );
}

/** Number of entries a LIST returns. */
export async function countOf(port: number): Promise<number> {
  return (await listOf(port)).length;
}

export function same(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Waits until the slave's LIST equals the master's (polling, bounded); returns
 * both last listings so the caller asserts on them (deepEqual gives a diff).
 */
export async function waitInSync(
  slavePort: number,
  masterPort: number,
  timeoutMs = 30_000,
  listMaster: () => Promise<string[]> = () => listOf(masterPort),
): Promise<{ slave: string[]; master: string[] }> {
  const deadline = Date.now() + timeoutMs;
  let master = await listMaster();
  let slave = await listOf(slavePort);
  for (let i = 0; i < 1000 && !same(slave, master) && Date.now() < deadline; i++) {
    await sleep(200);
    master = await listMaster();
    slave = await listOf(slavePort);
  }
  return { slave, master };
}

/**
 * Opens an UPDATE stream on the slave, reads its dump, sends NOOP and reads
 * up to the NOOP's OK: by the slave's contract (a streaming NOOP is answered
 * after it NOOPed its own master) everything its master had committed before
 * is then in the slave's copy. Returns the records streamed before the OK.
 */
export async function kickThroughSlave(slavePort: number): Promise<{ streamed: number; status: string }> {
  const c = await login(slavePort);
  try {
    c.send('K1 UPDATE\r\n');
    const dump = await readResponse(c, 'K1', 'K1', 120_000);
    if (dump.status !== 'K1 OK "streaming starts"') throw new Error(`UPDATE on the slave: ${dump.status}`);
    c.send('K2 NOOP\r\n');
    const r = await readResponse(c, 'K1', 'K2', 60_000);
    return { streamed: r.records.length, status: r.status };
  } finally {
    c.close();
  }
}

// ---------------------------------------------------------------------------
// Changes

export type Cmd = [verb: 'ACTIVATE' | 'RESERVE' | 'DEACTIVATE' | 'DELETE', ...args: string[]];

interface ModelState {
  state: 'active' | 'reserved';
}

/**
 * Generates valid mixed changes over a pool of names, each name bound to one
 * location (so no conflict-policy NO), tracking which names exist: RESERVE
 * only absent names, DEACTIVATE only active ones, DELETE only present ones
 * (a Cyrus 3.6 master crashes on DELETE/DEACTIVATE of unknown names).
 */
export class ChangeGenerator {
  readonly model = new Map<string, ModelState>();
  private counter = 0;

  constructor(
    private readonly rand: () => number,
    private readonly names: string[],
  ) {}

  static locationOf(name: string): string {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    return `backend${h % 3}!default`;
  }

  /** Marks names that exist already (as active). */
  seed(names: Iterable<string>): void {
    for (const n of names) this.model.set(n, { state: 'active' });
  }

  private pick<T>(xs: T[]): T {
    return xs[Math.floor(this.rand() * xs.length)];
  }

  next(): Cmd {
    const present = [...this.model.keys()];
    const active = present.filter((n) => this.model.get(n)!.state === 'active');
    const absent = this.names.filter((n) => !this.model.has(n));
    for (let attempt = 0; attempt < 20; attempt++) {
      const r = this.rand();
      if (r < 0.4 || (present.length === 0 && absent.length === 0)) {
        const name = this.pick(this.names);
        this.model.set(name, { state: 'active' });
        const owner = name.replace(/^.*\./, '');
        const extra = this.counter++ % 3 === 0 ? 'anyone\tlrs\t' : `u${this.counter % 7}\tlr\t`;
        return ['ACTIVATE', name, ChangeGenerator.locationOf(name), `${owner}\tlrswipkxtecdan\t${extra}`];
      }
      if (r < 0.6 && absent.length) {
        const name = this.pick(absent);
        this.model.set(name, { state: 'reserved' });
        return ['RESERVE', name, ChangeGenerator.locationOf(name)];
      }
      if (r < 0.8 && active.length) {
        const name = this.pick(active);
        this.model.set(name, { state: 'reserved' });
        return ['DEACTIVATE', name, ChangeGenerator.locationOf(name)];
      }
      if (present.length) {
        const name = this.pick(present);
        this.model.delete(name);
        return ['DELETE', name];
      }
    }
    const name = this.pick(this.names);
    this.model.set(name, { state: 'active' });
    return ['ACTIVATE', name, ChangeGenerator.locationOf(name), ''];
  }

  batch(n: number): Cmd[] {
    return Array.from({ length: n }, () => this.next());
  }
}

export function commandText(tag: string, [verb, ...args]: Cmd): string {
  return `${tag} ${verb}${args.map((a) => ` ${lit(a)}`).join('')}\r\n`;
}

/**
 * Sends the changes on one connection and requires `OK "done"` for each.
 * `pipelined` sends them all at once (mupdated); otherwise one at a time
 * (safest with a Cyrus master).
 */
export async function applyChanges(port: number, cmds: Cmd[], pipelined = true): Promise<void> {
  const c: RawClient = await login(port);
  try {
    if (pipelined) c.send(cmds.map((cmd, i) => commandText(`C${i}`, cmd)).join(''));
    for (let i = 0; i < cmds.length; i++) {
      if (!pipelined) c.send(commandText(`C${i}`, cmds[i]));
      const line = await c.readLine(30_000);
      if (line !== `C${i} OK "done"`) throw new Error(`${cmds[i].join(' ')} got ${JSON.stringify(line)}`);
    }
  } finally {
    c.close();
  }
}

/** A few names whose directory order differs from strcmp, plus a numbered pool. */
export function namePool(prefix: string, n: number): string[] {
  const tricky = ['x', 'x.y', 'x-y', 'x y', 'x_y', 'x.y.z', 'xy'].map((s) => `user.${prefix}${s}`);
  return [...tricky, ...Array.from({ length: n }, (_, i) => `user.${prefix}n${i}`)];
}
