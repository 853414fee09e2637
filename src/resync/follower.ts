/**
 * The slave's link to its master (spec 6): log in, take a complete dump (or,
 * from a mupdated master, only what changed: XRESUME), apply it in one
 * durable transaction, then apply streamed changes as they arrive. A dump
 * that does not end with its tagged OK changes nothing. Keep-alive NOOPs,
 * reconnect with jittered backoff, status for operators.
 */
import { rename, writeFile } from 'node:fs/promises';
import { StorageError, type BatchItem, type Entry } from '../store/types.js';
import { entryProblem, shownName } from '../store/validate.js';
import { entryFromData, reconcile } from './reconcile.js';
import { connectFirst, masterText } from './masters.js';
import type { MupdateConnection } from '../mupdate/client/connection.js';
import { ConnectionClosed, MupdateClientError, TimeoutError } from '../mupdate/client/errors.js';
import type { Response } from '../mupdate/client/responses.js';
import { META_DBID, META_DIGEST, META_SEQ, META_SYNCED, isData, itemOf, lineDigest, seqOf } from './stream-records.js';

export type { FollowerOptions, FollowerStatus } from './follower-types.js';
import type { FollowerOptions, FollowerStatus } from './follower-types.js';
import { SyncWaiters } from './sync-waiters.js';

export class Follower {
  private conn: MupdateConnection | null = null;
  private stopped = false;
  private wakeSleep: (() => void) | null = null;
  private noopCounter = 0;
  private readonly waiters = new SyncWaiters();
  private readyResolve!: () => void;
  /** Resolves once the local copy is complete (now or from an earlier run). */
  readonly ready: Promise<void>;
  private isReadyFlag = false;
  private syncedResolve!: () => void;
  /** Resolves once this run has completed a sync with the master (not an earlier run's copy). */
  readonly synced: Promise<void>;
  private loop: Promise<void> | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  private statusWrite: Promise<void> = Promise.resolve();
  readonly status: FollowerStatus;

  constructor(private readonly opts: FollowerOptions) {
    this.ready = new Promise((resolve) => {
      this.readyResolve = resolve;
    });
    this.synced = new Promise((resolve) => {
      this.syncedResolve = resolve;
    });
    this.status = {
      state: 'starting',
      connected: false,
      master: masterText(opts.masters[0]),
      masterKind: null,
      lastFullSync: null,
      lastSyncKind: null,
      lastResumeRecords: null,
      lastAppliedChange: null,
      upstreamSeq: (opts.store.getMeta(META_SEQ) as number | undefined) ?? null,
      entries: null,
      lastError: null,
    };
    if (opts.store.getMeta(META_SYNCED) === true) this.markReady('copy from an earlier complete sync');
    // Entry count for status: counted once, then kept up to date from every applied change.
    const snapshot = opts.store.snapshot();
    let entries = 0;
    try {
      for (const _ of snapshot.entries()) entries++;
    } finally {
      snapshot.close();
    }
    this.status.entries = entries;
    opts.store.subscribe((c) => {
      if (!c.previous && c.entry) this.status.entries = (this.status.entries ?? 0) + 1;
      else if (c.previous && !c.entry) this.status.entries = (this.status.entries ?? 0) - 1;
    });
  }

  get isReady(): boolean {
    return this.isReadyFlag;
  }

  private markReady(why: string): void {
    if (this.isReadyFlag) return;
    this.isReadyFlag = true;
    this.opts.log.info({ why }, 'slave copy is complete: serving clients');
    this.readyResolve();
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.conn?.close();
    this.wakeSleep?.();
    this.waiters.linkLost();
    this.waiters.streamingAgain();
    await this.loop;
    this.setState('stopped');
    if (this.statusTimer) clearTimeout(this.statusTimer);
    await this.writeStatus();
  }

  /**
   * Resolves once everything the master had committed when this was called
   * has been applied here: a NOOP upstream and its OK (spec 3.10, 6.4). When
   * not connected there is nothing better to wait for, so it resolves at once.
   */
  async syncWithMaster(): Promise<void> {
    await this.noopRound();
  }

  /**
   * Like syncWithMaster, but while the link to the master is down it waits
   * for the next sync and its NOOP instead of answering with the old copy:
   * for a frontend's kick, whose client has just changed the master and
   * must then find the change here (its caller bounds the wait).
   */
  async syncedWithMaster(): Promise<void> {
    while (!this.stopped) {
      if (this.status.state !== 'streaming' || !this.conn) {
        await this.waiters.untilStreaming();
        continue;
      }
      if (await this.noopRound()) return;
      // The link was lost before the answer: the next sync, then another NOOP.
    }
  }

  /** One NOOP upstream: true once its OK came (everything before it applied), false if not streaming or the link was lost first. */
  private noopRound(): Promise<boolean> {
    const conn = this.conn;
    if (!conn || this.status.state !== 'streaming') return Promise.resolve(false);
    const tag = this.noopCounter++;
    const answered = this.waiters.noop(tag);
    conn.send(`N${tag}`, 'NOOP');
    return answered;
  }

  private setState(state: FollowerStatus['state']): void {
    if (this.status.state === state) return;
    this.status.state = state;
    this.opts.lag.state(state === 'streaming');
    this.status.connected = state === 'syncing' || state === 'streaming';
    this.opts.log.info({ state, master: this.status.master }, 'slave state');
    void this.writeStatus();
  }

  /** Writes status.json atomically (temp file, then rename), one write at a time: readers never see half a file. */
  private writeStatus(): Promise<void> {
    const file = this.opts.statusFile;
    if (!file) return Promise.resolve();
    this.statusWrite = this.statusWrite.then(async () => {
      try {
        await writeFile(`${file}.tmp`, `${JSON.stringify(this.status, null, 2)}\n`, { mode: 0o600 });
        await rename(`${file}.tmp`, file);
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message }, 'cannot write status file');
      }
    });
    return this.statusWrite;
  }

  /** Status writes during streaming are throttled to one a second. */
  private statusSoon(): void {
    if (this.statusTimer) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = null;
      void this.writeStatus();
    }, 1000);
    this.statusTimer.unref();
  }

  private async run(): Promise<void> {
    const retryMs = Math.max(1, this.opts.retryDelaySeconds) * 1000;
    while (!this.stopped) {
      try {
        await this.connectAndFollow(retryMs);
      } catch (err) {
        const message = (err as Error).message;
        this.status.lastError = message;
        if (!this.stopped) {
          // This slave could not store a change (its disk is full, an I/O error): not the master's or the network's fault.
          if (err instanceof StorageError) this.opts.log.warn({ err: message }, 'cannot store the changes from the master');
          else this.opts.log.warn({ err: message }, 'connection to the master lost');
        }
      }
      this.conn?.close();
      this.conn = null;
      this.waiters.linkLost();
      if (this.stopped) break;
      this.setState('waiting');
      // As Cyrus: the retry delay plus up to half of it again, never zero (no spinning).
      const delay = retryMs + Math.floor(Math.random() * (retryMs / 2));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wakeSleep = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeSleep = null;
    }
  }

  private async connectAndFollow(retryMs: number): Promise<void> {
    this.setState('connecting');
    const { conn, master } = await connectFirst(
      this.opts.masters,
      { ...this.opts.upstream, timeoutMs: Math.max(this.opts.connectTimeoutMs ?? 10_000, retryMs) },
      this.opts.log,
    );
    this.conn = conn;
    this.status.master = masterText(master);
    this.noopCounter = 0;
    if (this.stopped) return;
    const canResume = /\bXRESUME\b/.test(conn.bannerText);
    this.status.masterKind = /"mupdated"/.test(conn.bannerText) ? 'mupdated' : 'cyrus';
    this.setState('syncing');
    const seqTagged = canResume && this.opts.resume ? await this.resumeSync(conn) : await this.fullSync(conn);
    this.markReady('first complete sync');
    this.setState('streaming');
    this.waiters.streamingAgain();
    this.syncedResolve();
    await this.stream(conn, retryMs, seqTagged);
  }

  /** Plain UPDATE, as a Cyrus slave does it; only a dump that ends with `U01 OK` is applied. */
  private async fullSync(conn: MupdateConnection): Promise<false> {
    conn.send('U01', 'UPDATE');
    const remote = await this.readDump(conn, null);
    await this.applyFullDump(remote, null, null);
    return false;
  }

  /** Collects a dump's MAILBOX/RESERVE lines until the tagged OK. `first`: a line already read. */
  private async readDump(conn: MupdateConnection, first: Response | null): Promise<Map<string, Entry>> {
    const remote = new Map<string, Entry>();
    for (let r = first ?? (await this.nextDumpLine(conn)); ; r = await this.nextDumpLine(conn)) {
      const entry = entryFromData(r.word, r.args);
      if (entry) {
        remote.set(entry.name.toString('latin1'), entry);
        continue;
      }
      if (r.word === 'OK' && r.tag === 'U01') return remote;
      throw new MupdateClientError(`dump abandoned: the master sent ${r.tag} ${r.word} before the end of the dump`);
    }
  }

  private async nextDumpLine(conn: MupdateConnection): Promise<Response> {
    const r = await conn.next(this.opts.dumpTimeoutMs);
    if (!r) throw new ConnectionClosed('dump abandoned: the master closed the connection');
    return r;
  }

  private async applyFullDump(
    remote: Map<string, Entry>,
    dbid: string | null,
    seq: number | null,
    digest: string | null = null,
  ): Promise<void> {
    const snapshot = this.opts.store.snapshot();
    let items: BatchItem[];
    try {
      items = this.storable(reconcile(snapshot.entries(), remote));
    } finally {
      snapshot.close();
    }
    await this.opts.store.applyMany(items, { [META_SYNCED]: true, [META_DBID]: dbid, [META_SEQ]: seq, [META_DIGEST]: digest });
    this.status.lastFullSync = new Date().toISOString();
    this.status.lastSyncKind = 'full';
    this.status.upstreamSeq = seq;
    this.opts.log.info({ entries: remote.size, changed: items.length }, 'full sync applied');
  }

  /** XRESUME against a mupdated master: changes after our last one, or a full dump when that is not possible. */
  private async resumeSync(conn: MupdateConnection): Promise<boolean> {
    const store = this.opts.store;
    const synced = store.getMeta(META_SYNCED) === true;
    const dbid = synced ? ((store.getMeta(META_DBID) as string | null) ?? '') : '';
    const after = synced ? ((store.getMeta(META_SEQ) as number | null) ?? 0) : 0;
    const digest = synced ? ((store.getMeta(META_DIGEST) as string | null) ?? '') : '';
    conn.send('U01', 'XRESUME', [Buffer.from(dbid), Buffer.from(String(after)), Buffer.from(digest)]);
    const head = await this.nextDumpLine(conn);
    if (head.word !== 'XSYNC') {
      if (head.word === 'BAD' || head.word === 'NO') {
        this.opts.log.info('the master does not resume; falling back to a full UPDATE');
        await this.fullSync(conn);
        return false;
      }
      throw new MupdateClientError(`unexpected answer to XRESUME: ${head.word}`);
    }
    const [mode, masterId, fromRaw, fromDigest] = head.args.map((a) => a.toString('latin1')) as [string, string, string, string?];
    const from = Number(fromRaw);
    if (mode === 'FULL') {
      const remote = await this.readDump(conn, null);
      await this.applyFullDump(remote, masterId, from, fromDigest ?? '');
      return true;
    }
    const items: BatchItem[] = [];
    let last = from;
    let lastDigest = digest;
    for (let r = await this.nextDumpLine(conn); !(r.word === 'OK' && r.tag === 'U01'); r = await this.nextDumpLine(conn)) {
      if (!isData(r)) throw new MupdateClientError(`resume abandoned: the master sent ${r.tag} ${r.word}`);
      items.push(...this.storable([itemOf(r)]));
      last = seqOf(r) ?? last;
      lastDigest = lineDigest(r);
    }
    const changed = await store.applyMany(items, {
      [META_SYNCED]: true,
      [META_DBID]: masterId,
      [META_SEQ]: last,
      [META_DIGEST]: lastDigest,
    });
    this.status.lastSyncKind = 'incremental';
    this.status.lastResumeRecords = items.length;
    this.status.upstreamSeq = last;
    this.opts.log.info({ records: items.length, changed, from, to: last }, 'incremental resume applied');
    return true;
  }

  /** Applies streamed changes in arrival order; consecutive lines already received share one commit. */
  private async stream(conn: MupdateConnection, retryMs: number, seqTagged: boolean): Promise<void> {
    let noopOutstanding = false;
    for (;;) {
      let r: Response | null;
      try {
        r = await conn.next(retryMs);
      } catch (err) {
        if (!(err instanceof TimeoutError)) throw err;
        if (noopOutstanding) throw new MupdateClientError('the master did not answer a NOOP in time');
        noopOutstanding = true;
        conn.send(`N${this.noopCounter++}`, 'NOOP');
        continue;
      }
      if (!r) throw new ConnectionClosed('the master closed the connection');
      if (isData(r)) {
        const batch = [r];
        while (conn.hasQueued()) {
          const peek = conn.peek();
          if (!peek || !isData(peek)) break;
          batch.push((await conn.next())!);
        }
        await this.opts.lag.track(
          batch.length,
          () => this.applyStreamed(batch, seqTagged),
          () => conn.hasQueued(),
        );
        continue;
      }
      if (r.word === 'OK' && r.tag.startsWith('N')) {
        noopOutstanding = false;
        this.waiters.answered(Number(r.tag.slice(1)));
        continue;
      }
      throw new MupdateClientError(`the master sent ${r.tag} ${r.word} on the stream`);
    }
  }

  /**
   * The items this directory can hold (validate.ts). The master's others (a
   * name too long for a key, a NUL) could never be stored here, so they are
   * skipped with a warning instead of failing, and retrying, every sync.
   */
  private storable(items: BatchItem[]): BatchItem[] {
    return items.filter(({ name, entry }) => {
      const problem = entryProblem(name, entry);
      if (problem) {
        this.opts.log.warn(
          { name: shownName(name), problem, change: entry ? 'put' : 'delete' },
          'change from the master skipped: this directory cannot hold it',
        );
      }
      return problem === null;
    });
  }

  private async applyStreamed(batch: Response[], seqTagged: boolean): Promise<void> {
    const items = this.storable(batch.map(itemOf));
    const meta: Record<string, unknown> = {};
    if (seqTagged) {
      const lastLine = batch[batch.length - 1];
      const seq = seqOf(lastLine);
      if (seq !== null) {
        meta[META_SEQ] = seq;
        meta[META_DIGEST] = lineDigest(lastLine);
      }
      this.status.upstreamSeq = seq;
    }
    await this.opts.store.applyMany(items, meta);
    this.status.lastAppliedChange = new Date().toISOString();
    this.statusSoon();
  }
}
