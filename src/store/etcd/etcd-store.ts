/**
 * The directory in etcd, served from a local LMDB view (cluster mode,
 * spec cluster.md). Reads (find, snapshots, dumps) come from the view;
 * writes become etcd transactions (write-queue.ts) and resolve once the view
 * holds them, so a connection reads its own writes and listeners have been
 * told. Sequence numbers are etcd revisions (layout.ts, seqOf), the same on
 * every node, so a slave may resume on any node.
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { Etcd3, IRequestOp } from 'etcd3';
import type { Logger } from '../../log.js';
import { sameEntry } from '../codec.js';
import { countRefusal } from '../decisions.js';
import { firstClaim, repeatedClaim } from '../conflict-records.js';
import { LmdbDirectoryStore } from '../lmdb-store.js';
import { MAX_NAME_BYTES } from '../order.js';
import { checkBatch } from '../validate.js';
import {
  ConflictRefusal,
  StorageError,
  type BatchItem,
  type ConflictRecord,
  type DirectoryOrder,
  type Entry,
  type TxnTools,
} from '../types.js';
import type * as directory from '../types.js';
import { ClusterMismatch, DirectoryUnavailable, withDeadline, type EtcdSettings } from './connect.js';
import { connectEtcd } from './tls-check.js';
import { CLUSTER_FORMAT, EtcdLayout, encodeConflict, encodeEntryValue, encodeJson } from './layout.js';
import { ViewFeed } from './view-feed.js';
import { WriteQueue, type Plan } from './write-queue.js';

export interface EtcdStoreOptions extends EtcdSettings {
  /** The node's data folder: the LMDB view lives here. */
  dataDir: string;
  order: DirectoryOrder;
  changeLogRetention?: number | undefined;
  /** Tools refuse to bootstrap an empty prefix. */
  mustExist?: boolean;
}

interface ClusterIdentity {
  dbid: string;
  order: DirectoryOrder;
}

export class EtcdDirectoryStore implements directory.DirectoryStore {
  private closed = false;

  private constructor(
    private readonly client: Etcd3,
    private readonly layout: EtcdLayout,
    private readonly view: LmdbDirectoryStore,
    private readonly feed: ViewFeed,
    private readonly writes: WriteQueue,
    readonly id: string,
    readonly order: DirectoryOrder,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Connects, bootstraps an empty prefix, opens (or throws away and
   * recreates) the view and brings it up to date. With etcd unreachable and
   * a view from an earlier run, starts anyway: reads are served from the
   * view, writes are refused until etcd answers.
   */
  static async open(o: EtcdStoreOptions, log: Logger): Promise<EtcdDirectoryStore> {
    const layout = new EtcdLayout(o.prefix);
    const client = await connectEtcd(o);
    try {
      let view = LmdbDirectoryStore.open(o.dataDir, { order: o.order, changeLogRetention: o.changeLogRetention });
      const viewDbid = view.getOwnMeta('viewRevision') === undefined ? null : view.id;
      if (viewDbid === null && view.lastSeq > 0) {
        // A single master's directory: rebuilding a view over it would delete every entry etcd lacks.
        await view.close();
        throw new ClusterMismatch(
          `${o.dataDir} holds a single master's directory, not a cluster view; move it into the cluster with ` +
            `'mupdated dump --data ${o.dataDir} | mupdated load - --etcd ...' and start the node on an empty --data folder`,
        );
      }
      let identity: ClusterIdentity;
      try {
        identity = await EtcdDirectoryStore.identify(client, layout, o);
      } catch (err) {
        if (err instanceof ClusterMismatch || !(err instanceof DirectoryUnavailable) || viewDbid === null) {
          await view.close();
          if (err instanceof DirectoryUnavailable) {
            throw new DirectoryUnavailable(
              `cannot reach etcd at ${o.endpoints.join(', ')} and ${o.dataDir} holds no view of the directory yet: ${err.message}`,
            );
          }
          throw err;
        }
        log.error(
          { endpoints: o.endpoints, err: err.message },
          'etcd is unreachable: serving reads from the local view, refusing writes until etcd answers',
        );
        identity = { dbid: viewDbid, order: o.order };
      }
      if (viewDbid !== null && viewDbid !== identity.dbid) {
        log.warn(
          { view: viewDbid, cluster: identity.dbid },
          'the local view belongs to another directory: throwing it away and rebuilding from etcd',
        );
        await view.close();
        rmSync(`${o.dataDir}/directory.mdb`, { force: true });
        rmSync(`${o.dataDir}/directory.mdb-lock`, { force: true });
        view = LmdbDirectoryStore.open(o.dataDir, { order: o.order, changeLogRetention: o.changeLogRetention });
      }
      const feed = new ViewFeed(client, layout, view, identity.dbid, log, o.writeTimeoutMs);
      const writes = new WriteQueue(client, layout, feed, o.writeTimeoutMs, log);
      const store = new EtcdDirectoryStore(client, layout, view, feed, writes, identity.dbid, identity.order, o.writeTimeoutMs);
      if (feed.revision === 0) await feed.start();
      else void store.follow(feed, log);
      return store;
    } catch (err) {
      client.close();
      throw err;
    }
  }

  /** Catches up and follows in the background, retrying while etcd is unreachable. */
  private async follow(feed: ViewFeed, log: Logger): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await feed.start();
        if (attempt > 0) log.info('etcd reachable again: the view follows it and writes are accepted');
        return;
      } catch (err) {
        if (attempt === 0) log.warn({ err: (err as Error).message }, 'cluster view: cannot follow etcd yet, retrying');
        await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * 2 ** attempt)));
      }
    }
  }

  /** Reads (or, for an empty prefix, creates) the cluster's format, id and order. */
  private static async identify(client: Etcd3, layout: EtcdLayout, o: EtcdStoreOptions): Promise<ClusterIdentity> {
    // The three keys in one read-only transaction: one round trip, one revision.
    const keys = ['format', 'dbid', 'order'] as const;
    const read = async () => {
      const res = await withDeadline(
        client.kv.txn({ compare: [], success: keys.map((k) => ({ request_range: { key: layout.meta(k) } })) }),
        o.writeTimeoutMs,
        'at start',
      );
      const value = (i: number) => res.responses[i]?.response_range?.kvs[0]?.value.toString();
      return { format: value(0), dbid: value(1), order: value(2) };
    };
    let found = await read();
    if (found.dbid === undefined) {
      if (o.mustExist) throw new StorageError(`no directory under the etcd prefix ${o.prefix} (is --etcd-prefix right?)`);
      const dbid = randomUUID();
      await withDeadline(
        client.kv.txn({
          compare: [{ key: layout.meta('dbid'), target: 'Create', result: 'Equal', create_revision: 0 }],
          success: [
            { request_put: { key: layout.meta('format'), value: Buffer.from(String(CLUSTER_FORMAT)) } },
            { request_put: { key: layout.meta('dbid'), value: Buffer.from(dbid) } },
            { request_put: { key: layout.meta('order'), value: Buffer.from(o.order) } },
          ],
        }),
        o.writeTimeoutMs,
        'at start',
      );
      found = await read();
    }
    const format = Number(found.format);
    if (!Number.isInteger(format) || format < 1 || format > CLUSTER_FORMAT) {
      throw new ClusterMismatch(
        `the etcd prefix ${o.prefix} holds a directory in cluster format ${String(found.format)}, which this version of mupdated ` +
          `does not know (it reads formats 1 to ${CLUSTER_FORMAT}); use the newer mupdated that wrote it`,
      );
    }
    if (found.order !== o.order) {
      throw new ClusterMismatch(`the cluster keeps its directory in '${String(found.order)}' order, but '${o.order}' is configured`);
    }
    return { dbid: found.dbid, order: o.order };
  }

  // ---- reads: the view ----

  find(name: Buffer): Entry | undefined {
    return this.view.find(name);
  }

  snapshot(): directory.Snapshot {
    return this.view.snapshot();
  }

  subscribe(listener: directory.ChangeListener): () => void {
    return this.view.subscribe(listener);
  }

  get lastSeq(): number {
    return this.view.lastSeq;
  }

  /** The view's file (LmdbDirectoryStore.releaseMapping); etcd writes in flight reach it afterwards. */
  releaseMapping(): Promise<boolean> {
    return this.view.releaseMapping();
  }

  getMeta(key: string): unknown {
    return this.view.getMeta(key);
  }

  listConflicts(status?: directory.ConflictStatus): ConflictRecord[] {
    return this.view.listConflicts(status);
  }

  openConflictCount(): number {
    return this.view.openConflictCount();
  }

  getConflict(id: number): ConflictRecord | undefined {
    return this.view.getConflict(id);
  }

  /** The etcd revision the local view holds (for status and metrics). */
  get viewRevision(): number {
    return this.feed.revision;
  }

  /** For the metrics: whether etcd answers now, and how many revisions of the directory the view has not applied. */
  async health(): Promise<{ reachable: boolean; viewLagRevisions: number | null }> {
    try {
      const res = await withDeadline(this.client.kv.range({ key: this.layout.meta('head') }), this.timeoutMs, 'a health read');
      const head = Number(res.kvs[0]?.mod_revision ?? 0);
      return { reachable: true, viewLagRevisions: Math.max(0, head - this.feed.revision) };
    } catch {
      return { reachable: false, viewLagRevisions: null };
    }
  }

  /**
   * Resolves once the view holds every change committed in etcd before the
   * call (NOOP's promise across nodes). While etcd does not answer, resolves
   * after the write timeout: the view is as current as it can be.
   */
  async sync(): Promise<void> {
    // A read sent to a dead member fails at once (no automatic retries): ask again,
    // another member may answer, until the write timeout.
    const deadline = Date.now() + this.timeoutMs;
    for (let attempt = 0; Date.now() < deadline && !this.closed; attempt++) {
      try {
        const res = await withDeadline(
          this.client.kv.range({ key: this.layout.meta('head') }),
          Math.max(1, deadline - Date.now()),
          'a NOOP',
        );
        const head = Number(res.kvs[0]?.mod_revision ?? 0);
        if (!(await this.feed.waitFor(head, Math.max(1, deadline - Date.now())))) this.feed.nudge(head);
        return;
      } catch {
        // Reads and streams go on from the view while etcd is away.
        await new Promise((r) => setTimeout(r, Math.min(500, 50 * 2 ** attempt)));
      }
    }
  }

  // ---- writes: etcd transactions ----

  mutate<R>(name: Buffer, decide: (current: Entry | undefined, txn: TxnTools) => directory.Decision<R>): Promise<R> {
    if (this.closed) return Promise.reject(new StorageError('the directory is closed'));
    if (name.length > MAX_NAME_BYTES) return Promise.reject(new StorageError(`mailbox name longer than ${MAX_NAME_BYTES} bytes`));
    return this.writes.submit(() => {
      const key = this.layout.entry(name);
      const current = this.view.find(name);
      const reads = [key];
      const ops: IRequestOp[] = [];
      const conflicts = this.conflictTools(reads, ops);
      const decision = decide(current, conflicts);
      if (decision.kind === 'put') ops.push({ request_put: { key, value: encodeEntryValue({ ...decision.entry, name }) } });
      else if (decision.kind === 'delete' && current) ops.push({ request_delete_range: { key } });
      return { reads, present: current ? [key] : [], ops, result: decision.result };
    });
  }

  /** recordConflict for a plan: the record and the conflict counter go into the same transaction. */
  private conflictTools(reads: Buffer[], ops: IRequestOp[]): TxnTools {
    return {
      recordConflict: (claim: directory.ConflictClaim): ConflictRecord => {
        const now = new Date().toISOString();
        // A claim already decided against is counted on its decision (decisions.ts), compared like any read.
        const decision = this.view.findDecision(claim);
        if (decision) {
          const counted = countRefusal(decision, now);
          reads.push(this.layout.conflict(decision.id));
          ops.push({ request_put: { key: this.layout.conflict(decision.id), value: encodeConflict(counted) } });
          return counted;
        }
        const existing = this.view
          .listConflicts('open')
          .find((c) => c.name.equals(claim.name) && c.claimed.location.equals(claim.claimed.location));
        const seqKey = this.layout.meta('conflict-seq');
        reads.push(seqKey);
        let record: ConflictRecord;
        if (existing) {
          record = repeatedClaim(existing, claim, now);
          reads.push(this.layout.conflict(existing.id));
        } else {
          const id = ((this.view.getOwnMeta('conflictSeq') as number | undefined) ?? 0) + 1;
          record = firstClaim(claim, id, now);
          ops.push({ request_put: { key: seqKey, value: Buffer.from(String(id)) } });
        }
        ops.push({ request_put: { key: this.layout.conflict(record.id), value: encodeConflict(record) } });
        return record;
      },
    };
  }

  closeConflict(id: number, keep: 'current' | 'claimant' | 'none', by: string): Promise<ConflictRecord> {
    return this.writes.submit((): Plan<ConflictRecord> => {
      const conflictKey = this.layout.conflict(id);
      const record = this.view.getConflict(id);
      const reads = [conflictKey];
      if (!record) return { reads, ops: [], result: null as unknown as ConflictRecord, refusal: new ConflictRefusal(`no conflict #${id}`) };
      if (record.status !== 'open') {
        return { reads, ops: [], result: record, refusal: new ConflictRefusal(`conflict #${id} is already ${record.status}`) };
      }
      const ops: IRequestOp[] = [];
      const present: Buffer[] = [];
      if (keep === 'claimant') {
        const key = this.layout.entry(record.name);
        reads.push(key);
        const next: Entry = { name: record.name, ...record.claimed };
        const current = this.view.find(record.name);
        if (current) present.push(key);
        if (!sameEntry(current, next)) ops.push({ request_put: { key, value: encodeEntryValue(next) } });
      }
      const closed: ConflictRecord = {
        ...record,
        status: keep === 'none' ? 'dismissed' : 'resolved',
        resolution: { keep, at: new Date().toISOString(), by },
      };
      ops.push({ request_put: { key: conflictKey, value: encodeConflict(closed) } });
      return { reads, present, ops, result: closed };
    });
  }

  /**
   * Applies items in transactions of up to 100 changes each (etcd caps a
   * transaction's size), each all-or-nothing; meta keys go with the last.
   * Unchanged items are skipped. Resolves with the number changed.
   */
  async applyMany(items: BatchItem[], meta: Record<string, unknown> = {}): Promise<number> {
    // Refused whole before any chunk is sent, like the LMDB store.
    checkBatch(items, meta);
    const CHUNK = 100;
    let changed = 0;
    const metaOps: IRequestOp[] = Object.entries(meta).map(([k, v]) => ({
      request_put: { key: this.layout.userMeta(k), value: encodeJson(v) },
    }));
    for (let i = 0; i < items.length || (i === 0 && metaOps.length); i += CHUNK) {
      const chunk = items.slice(i, i + CHUNK);
      const last = i + CHUNK >= items.length;
      changed += await this.writes.submit((): Plan<number> => {
        const ops: IRequestOp[] = [];
        const reads: Buffer[] = [];
        // The last item of a name counts (one transaction may not put a key twice).
        const byName = new Map<string, BatchItem>();
        for (const item of chunk) byName.set(item.name.toString('latin1'), item);
        for (const { name, entry } of byName.values()) {
          if (name.length > MAX_NAME_BYTES) throw new StorageError(`mailbox name longer than ${MAX_NAME_BYTES} bytes`);
          const current = this.view.find(name);
          if (sameEntry(current, entry)) continue;
          const key = this.layout.entry(name);
          reads.push(key);
          ops.push(entry ? { request_put: { key, value: encodeEntryValue({ ...entry, name }) } } : { request_delete_range: { key } });
        }
        if (last) ops.push(...metaOps);
        return { reads, ops, result: reads.length };
      });
      if (items.length === 0) break;
    }
    return changed;
  }

  loadMany(items: BatchItem[]): Promise<number> {
    return this.applyMany(items);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.writes.close();
    await this.feed.close();
    this.client.close();
    await this.view.close();
  }
}
