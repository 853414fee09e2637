/**
 * When and how the store's write transactions commit. Writes asked for in
 * one event turn are decided together at its end. A lone write of the client
 * that wrote last (or of anyone after a quiet spell), with no other commit
 * under way, commits synchronously on this thread: one fdatasync and no
 * hand-offs to lmdb-js's writer thread, each of which costs a thread wake-up.
 * Anything else goes to lmdb-js's batched commit, which shares one commit
 * among all writes queued meanwhile and keeps the event loop free during the
 * flush, so many clients writing one change at a time still commit together.
 *
 * All or nothing: a write whose body throws leaves nothing of itself. A
 * synchronous transaction is aborted; in a batched commit each write runs in
 * its own child transaction (lmdb-js's `transaction()` would commit whatever
 * the body wrote before it threw, together with the rest of the batch), so a
 * failing write is rolled back alone and the others of its batch still
 * commit. The writes of one turn (a connection's pipelined chunk) share one
 * child transaction, which costs less than one each; if one of them throws,
 * that child is rolled back and each write runs again in its own. Locations a write interned become known to the cache only once it
 * has committed.
 */
import type { RootDatabase } from 'lmdb';
import type { Interned, LocationTable } from './locations.js';
import { metricsHooks } from '../metrics/hooks.js';
import { lmdbWrite } from './lmdb-commit-failures.js';

/** A write after this long without any is committed at once, whoever sends it. */
const QUIET_MS = 20;

interface TurnWrite {
  writer: object | undefined;
  run: (sync: boolean) => void;
  /** The body alone, for a turn's writes committed in one child transaction. */
  body: () => unknown;
  settle: (result: unknown) => void;
}

export class Commits {
  /** Set while one of our write bodies runs: the locations it interns. */
  interned: Interned | null = null;
  /** Writes requested this turn, not yet handed to LMDB. */
  private turnWrites: TurnWrite[] = [];
  private batchedInFlight = 0;
  private lastWriter: object | undefined = undefined;
  private lastWriteAt = 0;

  constructor(
    private readonly root: RootDatabase,
    private readonly locations: LocationTable,
  ) {}

  /**
   * Runs `body` in a durable write transaction; resolves with its result once
   * committed, rejects (with nothing of it stored) when the body throws or the
   * commit fails. `writer` stands for the client (see the module comment).
   */
  write<T>(body: () => T, writer?: object): Promise<T> {
    const askedAt = performance.now();
    return new Promise<T>((resolve, reject) => {
      this.turnWrites.push({
        writer,
        body,
        settle: (result) => {
          metricsHooks.writeCommitted(askedAt);
          resolve(result as T);
        },
        run: (sync) => {
          // The promise settles the caller's; nothing else waits on it.
          void (sync ? this.commitSync(body) : this.commitBatched(body)).then((result) => {
            metricsHooks.writeCommitted(askedAt);
            resolve(result);
          }, reject);
        },
      });
      if (this.turnWrites.length === 1) process.nextTick(() => this.startTurnWrites());
    });
  }

  /** No write waiting for its turn's end and none in a batched commit (synchronous ones end in their call). */
  get idle(): boolean {
    return this.turnWrites.length === 0 && this.batchedInFlight === 0;
  }

  /** Runs `body` in its own synchronous transaction, now (at open, before any other write). */
  now<T>(body: () => T): T {
    const interned: Interned = new Map();
    const result = this.root.transactionSync(() => this.inTxn(body, interned));
    this.locations.commit(interned);
    return result;
  }

  private startTurnWrites(): void {
    const writes = this.turnWrites;
    this.turnWrites = [];
    metricsHooks.commitBatch(writes.length);
    const now = performance.now();
    const only = writes.length === 1 ? writes[0] : null;
    const sync =
      only !== null &&
      this.batchedInFlight === 0 &&
      ((only.writer !== undefined && only.writer === this.lastWriter) || now - this.lastWriteAt > QUIET_MS);
    this.lastWriter = only?.writer;
    this.lastWriteAt = now;
    if (sync || writes.length === 1) for (const w of writes) w.run(sync);
    else void this.commitGroup(writes);
  }

  /**
   * A turn's writes in one child transaction of the batch (one nested
   * transaction instead of one per write). If a body throws, the whole group
   * is rolled back and every write retried in its own child transaction, so
   * only the failing one fails.
   */
  private async commitGroup(writes: TurnWrite[]): Promise<void> {
    let interned: Interned = new Map();
    let results: unknown[] = [];
    this.batchedInFlight++;
    try {
      await lmdbWrite(
        this.root.childTransaction(() => {
          interned = new Map();
          results = [];
          for (const w of writes) results.push(this.inTxn(w.body, interned));
        }),
      );
    } catch {
      // Nothing of the group stayed: each write again on its own, where only the failing one fails.
      this.batchedInFlight--;
      for (const w of writes) w.run(false);
      return;
    }
    this.batchedInFlight--;
    this.locations.commit(interned);
    writes.forEach((w, i) => w.settle(results[i]));
  }

  private inTxn<T>(body: () => T, interned: Interned): T {
    this.interned = interned;
    try {
      return body();
    } finally {
      this.interned = null;
    }
  }

  private commitSync<T>(body: () => T): Promise<T> {
    try {
      return Promise.resolve(this.now(body));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private async commitBatched<T>(body: () => T): Promise<T> {
    let interned: Interned = new Map();
    this.batchedInFlight++;
    try {
      // A child transaction of the batch's shared one: aborted alone if the body throws.
      const result = await lmdbWrite(
        this.root.childTransaction(() => {
          interned = new Map();
          return this.inTxn(body, interned);
        }),
      );
      this.locations.commit(interned);
      return result;
    } finally {
      this.batchedInFlight--;
    }
  }
}
