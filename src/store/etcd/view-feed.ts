/**
 * Keeps a node's LMDB view equal to the directory in etcd: a watch on the
 * prefix applies every change in revision order; a view too far behind
 * (compacted history, a new or foreign view) is rebuilt from one range read
 * at a fixed revision, applied as one difference by name.
 */
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from '../../log.js';
import { sameEntry } from '../codec.js';
import type { ExternalBatch, LmdbDirectoryStore } from '../lmdb-store.js';
import type { ConflictRecord, Entry } from '../types.js';
import { DirectoryUnavailable, withDeadline } from './connect.js';
import { cancelWithin, watchPrefixFrom } from './watch-resume.js';
import { decodeConflict, decodeEntryValue, decodeJson, prefixEnd, SEQ_PER_REVISION, seqOf, type EtcdLayout } from './layout.js';

const PAGE = 2_000;

export class ViewFeed {
  /** The etcd revision the view holds everything of. */
  revision: number;
  private watcher: Watcher | null = null;
  private applying: Promise<void> = Promise.resolve();
  private waiters: Array<{ revision: number; resolve: () => void }> = [];
  private closed = false;
  private restarting = false;
  /** A response could not be applied: the ones after it are dropped until a rebuild has caught the view up. */
  private applyFailed = false;
  /** Called after each advance of `revision` (the write queue plans what waited for it). */
  onAdvance: () => void = () => {};

  constructor(
    private readonly client: Etcd3,
    private readonly layout: EtcdLayout,
    private readonly view: LmdbDirectoryStore,
    private readonly dbid: string,
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {
    this.revision = (view.getOwnMeta('viewRevision') as number | undefined) ?? 0;
  }

  /** Brings the view up to etcd's current state and starts following it. */
  async start(): Promise<void> {
    if (this.revision === 0) await this.rebuild('new view');
    await this.watchFrom(this.revision + 1);
  }

  /** Resolves once the view holds `revision`, or after `ms` (false then). */
  waitFor(revision: number, ms: number): Promise<boolean> {
    if (this.revision >= revision) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, ms);
      const waiter = {
        revision,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      this.waiters.push(waiter);
    });
  }

  private advance(revision: number): void {
    if (revision <= this.revision) return;
    this.revision = revision;
    const due = this.waiters.filter((w) => w.revision <= revision);
    if (due.length) this.waiters = this.waiters.filter((w) => w.revision > revision);
    for (const w of due) w.resolve();
    this.onAdvance();
  }

  /**
   * Watches from `revision`; resolves once etcd has created the watch. The
   * handlers go on before the watch is sent (not after create() resolves):
   * etcd may answer the creation and, in the same read, the events that
   * follow or a cancel (history compacted), and those must not pass unheard.
   */
  private watchFrom(revision: number): Promise<void> {
    const watcher = watchPrefixFrom(this.client, this.layout.all, revision);
    this.watcher = watcher;
    let created = false;
    return new Promise<void>((resolve) => {
      watcher.on('data', (res: IWatchResponse) => {
        this.applying = this.applying
          .then(() => this.applyResponse(res))
          .catch((err: unknown) => {
            // Later responses must not move the view past the changes it failed to take.
            this.applyFailed = true;
            this.log.error({ err: (err as Error).message }, 'cluster view: could not apply changes from etcd; rebuilding the view');
            void this.restart('apply failed');
          });
      });
      watcher.on('disconnected', (err: Error) => this.log.warn({ err: err.message }, 'cluster view: lost the etcd watch, reconnecting'));
      watcher.on('connected', () => {
        if (created) this.log.info({ revision: this.revision }, 'cluster view: etcd watch connected');
        created = true;
        resolve();
      });
      watcher.on('error', (err: Error) => {
        // A cancelled watch: etcd compacted the history it would resume from.
        this.log.warn(
          { err: err.message, revision: this.revision },
          'cluster view: watch cancelled by etcd; rebuilding the view from a full read',
        );
        // etcd has dropped this watch already: cancelling it again would wait for an answer that never comes.
        if (this.watcher === watcher) {
          this.watcher = null;
          void this.restart('watch cancelled');
        }
        resolve();
      });
    });
  }

  /**
   * Called when etcd is known to hold a revision the view did not reach in
   * time (a committed write, a NOOP's head): the watch may be stalled on a
   * stream that never errors, so it is replaced by a rebuild and a new watch.
   */
  nudge(revision: number): void {
    if (this.closed || this.restarting || this.revision >= revision) return;
    this.log.warn(
      { revision, view: this.revision },
      'cluster view: etcd holds changes the view has not received in time; restarting the watch with a full read (no action needed unless this repeats)',
    );
    void this.restart('view fell behind etcd');
  }

  private async restart(why: string): Promise<void> {
    if (this.restarting) return;
    this.restarting = true;
    try {
      // Again if a response failed to apply meanwhile: its restart found this one under way.
      do await this.restartNow(why);
      while (this.applyFailed && !this.closed);
    } finally {
      this.restarting = false;
    }
  }

  private async restartNow(why: string): Promise<void> {
    const old = this.watcher;
    this.watcher = null;
    if (old) await cancelWithin(old, this.timeoutMs);
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.applying;
        await this.rebuild(why);
        this.applyFailed = false;
        await this.watchFrom(this.revision + 1);
        return;
      } catch (err) {
        this.log.warn({ err: (err as Error).message, attempt }, 'cluster view: rebuild failed, retrying');
        await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** attempt)));
      }
    }
  }

  /** One watch response: its events, in revision order, in one view transaction. */
  private async applyResponse(res: IWatchResponse): Promise<void> {
    if (this.closed || this.applyFailed) return;
    const batch: Required<Pick<ExternalBatch, 'changes' | 'conflicts'>> & ExternalBatch = {
      changes: [],
      conflicts: [],
      meta: {},
      userMeta: {},
    };
    let revision = Number(res.header.revision);
    let last = 0;
    let index = 0;
    for (const event of res.events) {
      const kv = event.kv;
      const rev = Number(kv.mod_revision);
      if (rev <= this.revision) continue;
      if (rev !== last) {
        last = rev;
        index = 0;
      }
      this.collect(batch, kv, event.type === 'Delete', rev, index);
      if (this.layout.classify(kv.key).kind === 'entry') index++;
    }
    if (res.events.length) revision = Math.max(last, this.revision);
    if (revision <= this.revision) return;
    batch.meta!.viewRevision = revision;
    await this.view.applyExternal(batch);
    this.advance(revision);
  }

  private collect(
    batch: ExternalBatch & { changes: ExternalBatch['changes']; conflicts: ConflictRecord[] },
    kv: IKeyValue,
    deleted: boolean,
    rev: number,
    index: number,
  ): void {
    const what = this.layout.classify(kv.key);
    switch (what.kind) {
      case 'entry':
        batch.changes.push({
          seq: seqOf(rev, index),
          name: what.name,
          entry: deleted ? null : withName(decodeEntryValue(kv.value), what.name),
        });
        return;
      case 'conflict':
        if (!deleted) batch.conflicts.push(decodeConflict(kv.value));
        return;
      case 'user-meta':
        batch.userMeta![what.key] = deleted ? null : decodeJson<unknown>(kv.value);
        return;
      case 'meta':
        if (what.key === 'conflict-seq' && !deleted) batch.meta!.conflictSeq = Number(kv.value.toString());
        return;
      default:
        return;
    }
  }

  /**
   * Reads the whole directory at one revision, page by page, and applies the
   * difference to the view as one batch (listeners see ordinary changes).
   */
  private async rebuild(why: string): Promise<void> {
    const started = Date.now();
    const rangeEnd = prefixEnd(this.layout.all);
    let revision = 0;
    let rebuiltSeq = 0;
    let key = this.layout.all;
    const seen = new Set<string>();
    const batch: ExternalBatch & { changes: ExternalBatch['changes']; conflicts: ConflictRecord[] } = {
      changes: [],
      conflicts: [],
      meta: {},
      userMeta: {},
    };
    let read = 0;
    for (;;) {
      const res = await withDeadline(
        this.client.kv.range({
          key,
          range_end: rangeEnd,
          limit: PAGE,
          ...(revision ? { revision } : {}),
        }),
        this.timeoutMs,
        'a read of the directory',
      );
      if (!revision) {
        revision = Number(res.header.revision);
        // Past every number a watched change of this revision has (its index in the revision):
        // a slave holding one of those never finds it here under another change.
        rebuiltSeq = seqOf(revision, SEQ_PER_REVISION - 1);
      }
      for (const kv of res.kvs) {
        read++;
        const what = this.layout.classify(kv.key);
        if (what.kind === 'entry') {
          const entry = withName(decodeEntryValue(kv.value), what.name);
          seen.add(what.name.toString('latin1'));
          if (!sameEntry(this.view.find(what.name), entry)) batch.changes.push({ seq: rebuiltSeq, name: what.name, entry });
        } else {
          this.collect(batch, kv, false, revision, 0);
        }
      }
      if (!res.more || !res.kvs.length) break;
      key = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.of(0)]);
    }
    const snapshot = this.view.snapshot();
    try {
      for (const entry of snapshot.entries()) {
        if (!seen.has(entry.name.toString('latin1'))) batch.changes.push({ seq: rebuiltSeq, name: entry.name, entry: null });
      }
    } finally {
      snapshot.close();
    }
    batch.rebuiltAt = rebuiltSeq;
    batch.meta = { ...batch.meta, dbid: this.dbid, viewRevision: revision };
    await this.view.applyExternal(batch);
    this.log.info({ why, revision, keys: read, changed: batch.changes.length, ms: Date.now() - started }, 'cluster view rebuilt from etcd');
    this.advance(revision);
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.watcher;
    this.watcher = null;
    if (w) await cancelWithin(w, this.timeoutMs);
    await this.applying.catch(() => {});
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }
}

/** Entries are stored with their names; the key's name is the one that counts. */
function withName(entry: Entry | null, name: Buffer): Entry | null {
  return entry ? { ...entry, name } : null;
}

export { DirectoryUnavailable };
