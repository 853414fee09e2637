/**
 * The frontend workload (issue "Frontends"): a slave keeping a Cyrus
 * frontend's sqlite mailboxes database, following the server under test
 * through a proxy that can cut it off. Against mupdated: `mupdated slave
 * --frontend-db` (it resumes with XRESUME after a reconnect); against Cyrus:
 * Cyrus's own `mupdate` in slave mode under master(8), with `mboxlist_db: sql`
 * (its file made in WAL mode with the index mupdated's slave adds, so its
 * lookups are not full scans either).
 *
 * Measured, while a reader looks preloaded names up in the file every
 * millisecond as a frontend's imapd does (no busy timeout; every name must be
 * found): the first sync into an empty file; the time from the master's OK of
 * an ACTIVATE to its row in the file; and, after the slave was cut off while
 * the master took changes, the time from letting it reconnect until the last
 * change is in the file, whose rows are then counted.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { rowKeyText } from '../src/frontend/cyrus-row.js';
import { CYRUS_BIN, CyrusBackend, CyrusImapd, chownTree } from '../test/helpers/cyrus-backend.js';
import { freePort } from '../test/helpers/ports.js';
import { removeDir, tempDir, type RunningMupdated } from '../test/helpers/server.js';
import { startSlave } from '../test/helpers/slave-tools.js';
import { MupdateConn } from './client.js';
import { entryAt } from './dataset.js';
import { expectOk, latencySummary, sleep, WrongAnswer } from './measure.js';
import { ADMIN, PASSWORD } from './servers.js';
import type { Context, Measurement } from './workload-kit.js';

const LOCATION = 'benchfe!default';
const ACL = 'bfe\tlrswipkxtecdan\t';
/** Both slaves' reconnect delay (below 2 s Cyrus's slave dies of SIGFPE in its jitter). */
const RETRY_DELAY_SECONDS = 2;

/**
 * A plain TCP relay on loopback that can cut its links and refuse new ones
 * (the master looks down to the slave); it looks at no byte, so relaying a
 * million-entry dump costs the benchmark process little.
 */
class CutProxy {
  refusing = false;
  /** Links relayed (not refused) so far. */
  relayed = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<CutProxy> {
    const server = createServer({ noDelay: true });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
    const proxy = new CutProxy(server, port);
    server.on('connection', (client) => proxy.relay(client, targetPort));
    return proxy;
  }

  private relay(client: Socket, targetPort: number): void {
    client.on('error', () => {});
    if (this.refusing) {
      client.destroy();
      return;
    }
    this.relayed++;
    const upstream = connect({ port: targetPort, host: '127.0.0.1', noDelay: true });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  cutAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A frontend's lookups: one prepared statement on its own read-only connection, timed. */
class FrontendReader {
  private readonly db: Database.Database;
  private readonly lookup: Database.Statement<[string]>;
  private readonly count: Database.Statement;
  readonly times: number[] = [];
  errors = 0;
  misses = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Row key -> when the master said OK. */
  readonly awaited = new Map<string, number>();
  readonly seenAfterMs = new Map<string, number>();

  constructor(
    file: string,
    private readonly entries: number,
  ) {
    // Cyrus sets no busy timeout: neither does this reader.
    this.db = new Database(file, { readonly: true, fileMustExist: true, timeout: 0 });
    this.lookup = this.db.prepare('SELECT 1 FROM mailboxes_db WHERE dbkey = ?').pluck();
    this.count = this.db.prepare("SELECT count(*) FROM mailboxes_db WHERE substr(dbkey, 1, 1) = 'N'").pluck();
  }

  private has(key: string): boolean | null {
    const t0 = performance.now();
    try {
      const found = this.lookup.get(key) !== undefined;
      this.times.push(performance.now() - t0);
      return found;
    } catch {
      this.errors++;
      return null;
    }
  }

  /** Every millisecond: the awaited rows, and one preloaded name that must be there. */
  start(): void {
    const tick = () => {
      const now = performance.now();
      for (const [key, okAt] of this.awaited) {
        if (this.has(key)) {
          this.seenAfterMs.set(key, now - okAt);
          this.awaited.delete(key);
        }
      }
      const name = entryAt(Math.floor(Math.random() * this.entries)).name;
      if (this.has(rowKeyText(name)) === false) this.misses++;
      this.timer = setTimeout(tick, 1);
    };
    tick();
  }

  rows(): number {
    return this.count.get() as number;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.db.close();
  }
}

interface FrontendSlave {
  db: string;
  /** Resolves once the slave has synced and its kick socket is open. */
  synced(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

async function mupdatedSlave(proxyPort: number, dir: string): Promise<FrontendSlave> {
  const db = join(dir, 'mailboxes.sqlite');
  const slave: RunningMupdated = await startSlave({
    master: proxyPort,
    retryDelay: RETRY_DELAY_SECONDS,
    args: ['--frontend-db', db, '--kick-socket', join(dir, 'mupdate.target')],
  });
  return {
    db,
    synced: async (timeoutMs) => {
      await slave.waitForLog(/"msg":"kick socket listening"/, timeoutMs);
    },
    stop: async () => {
      await slave.stop();
    },
  };
}

async function cyrusSlave(proxyPort: number): Promise<FrontendSlave & { dir: string }> {
  const backend = await CyrusBackend.create({
    mupdatePort: proxyPort,
    servername: 'cyrus-frontend',
    user: ADMIN,
    password: PASSWORD,
    config: { mboxlist_db: 'sql', sql_engine: 'sqlite', mupdate_retry_delay: String(RETRY_DELAY_SECONDS) },
  });
  const db = join(backend.dir, 'mailboxes.sqlite');
  writeFileSync(backend.configPath, `${readFileSync(backend.configPath, 'utf8')}sql_database: ${db}\n`);
  const w = new Database(db);
  w.pragma('journal_mode = WAL');
  w.exec('CREATE TABLE IF NOT EXISTS mailboxes_db (dbkey BLOB NOT NULL, data BLOB)');
  w.exec('CREATE INDEX IF NOT EXISTS mupdated_mailboxes_db_dbkey ON mailboxes_db (dbkey)');
  w.close();
  const port = await freePort();
  const cyrusConf = join(backend.dir, 'cyrus.conf');
  writeFileSync(
    cyrusConf,
    `SERVICES {\n  mupdate cmd="mupdate -C ${backend.configPath}" listen="127.0.0.1:${port}" prefork=1 maxchild=1\n}\n`,
  );
  chownTree(backend.dir);
  const child = spawn(join(CYRUS_BIN, 'master'), ['-C', backend.configPath, '-M', cyrusConf, '-p', join(backend.dir, 'master.pid')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout.setEncoding('latin1').on('data', (d: string) => output.push(d));
  child.stderr.setEncoding('latin1').on('data', (d: string) => output.push(d));
  const service = new CyrusImapd(backend, port, child, output);
  const socket = join(backend.confDir, 'socket', 'mupdate.target');
  return {
    db,
    dir: backend.dir,
    async synced(timeoutMs) {
      // Cyrus's slave opens its kick socket after its first complete sync.
      const deadline = Date.now() + timeoutMs;
      while (!existsSync(socket)) {
        if (Date.now() > deadline) throw new Error(`Cyrus's slave did not sync in ${timeoutMs} ms: ${output.join('').slice(-1000)}`);
        await sleep(20);
      }
    },
    async stop() {
      await service.stop();
      await backend.remove();
    },
  };
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new WrongAnswer(`${what} not seen within ${timeoutMs} ms`);
    await sleep(1);
  }
}

export async function frontendSlave(ctx: Context): Promise<Measurement> {
  const n = ctx.sizes.entries;
  const samples = Math.min(100, ctx.sizes.propagationSamples);
  const changes = n >= 1_000_000 ? 10_000 : 1_000;
  const syncTimeoutMs = n >= 1_000_000 ? 30 * 60_000 : 5 * 60_000;
  const proxy = await CutProxy.start(ctx.server.port);
  const dir = tempDir('mupdated-bench-frontend-');
  let slave: FrontendSlave | null = null;
  let reader: FrontendReader | null = null;
  const writer = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
  try {
    const t0 = performance.now();
    slave = ctx.server.kind === 'mupdated' ? await mupdatedSlave(proxy.port, dir) : await cyrusSlave(proxy.port);
    await slave.synced(syncTimeoutMs);
    reader = new FrontendReader(slave.db, n);
    // (mupdated's slave opens its kick socket once its copy has synced; the file may still be filling)
    for (const deadline = Date.now() + syncTimeoutMs; reader.rows() < n; await sleep(100)) {
      if (Date.now() > deadline) throw new WrongAnswer(`after the first sync the file holds ${reader.rows()} rows, expected at least ${n}`);
    }
    const firstSyncSeconds = (performance.now() - t0) / 1000;
    const base = reader.rows();
    ctx.log(`${ctx.server.kind} frontend: first sync of ${base} rows in ${firstSyncSeconds.toFixed(1)} s`);
    reader.start();

    // master's OK -> the row in the file
    for (let i = 0; i < samples; i++) {
      const name = `user.bfe.m${i}`;
      const r = await writer.activate(name, LOCATION, ACL);
      expectOk(r, 'done', `ACTIVATE ${name}`);
      reader.awaited.set(rowKeyText(name), performance.now());
      await sleep(100);
    }
    await waitFor(() => reader!.awaited.size === 0, 60_000, `${reader.awaited.size} new mailboxes in the frontend's file`);
    const visible = latencySummary([...reader.seenAfterMs.values()]);

    // cut off while the master changes; then the time to the last change in the file
    proxy.refusing = true;
    proxy.cutAll();
    await sleep(1500);
    for (let i = 0; i < changes; i++) {
      const name = `user.bfr.m${i}`;
      expectOk(await writer.activate(name, LOCATION, ACL), 'done', `ACTIVATE ${name}`);
    }
    const marker = 'user.zzbfe.marker';
    expectOk(await writer.activate(marker, LOCATION, ACL), 'done', `ACTIVATE ${marker}`);
    const timesBefore = reader.times.length;
    const linksBefore = proxy.relayed;
    proxy.refusing = false;
    // Timed from the slave's reconnect: both wait out their retry delay (2 s + jitter) before it.
    await waitFor(() => proxy.relayed > linksBefore, 60_000, 'the slave reconnecting');
    const r0 = performance.now();
    reader.awaited.set(rowKeyText(marker), r0);
    await waitFor(() => reader!.awaited.size === 0, syncTimeoutMs, 'the last change after the reconnect');
    const resyncSeconds = (performance.now() - r0) / 1000;
    const expected = base + samples + changes + 1;
    await waitFor(() => reader!.rows() === expected, 60_000, `${expected} rows after the resync (have ${reader.rows()})`);
    const during = latencySummary(reader.times.slice(timesBefore));
    const all = latencySummary(reader.times);
    return {
      value: resyncSeconds,
      correct: true,
      details: {
        firstSyncSeconds: Math.round(firstSyncSeconds * 1000) / 1000,
        visibleP50: visible.p50,
        visibleP99: visible.p99,
        visibleMax: visible.max,
        samples,
        resyncSeconds,
        changesWhileCutOff: changes + 1,
        rows: expected,
        lookups: reader.times.length,
        lookupFailures: reader.errors + reader.misses,
        lookupErrors: reader.errors,
        lookupMisses: reader.misses,
        lookupMaxMs: all.max,
        lookupP99Ms: all.p99,
        lookupMaxDuringResyncMs: during.max,
      },
    };
  } finally {
    reader?.close();
    await writer.logout().catch(() => undefined);
    await slave?.stop();
    await proxy.close();
    removeDir(dir);
  }
}
