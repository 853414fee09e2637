/**
 * Turns directory decisions into etcd transactions. Each write is decided
 * against the node's view at revision V and carries a compare "the keys it
 * read were not modified after V", so two nodes racing for one name cannot
 * both win: the loser's transaction fails, it waits for its view to reach
 * the winner's revision, and decides again. Writes to distinct keys queued
 * meanwhile share one transaction (etcd orders them all at one revision).
 */
import type { Etcd3, ICompare, IRequestOp, ITxnResponse } from 'etcd3';
import type { Logger } from '../../log.js';
import { StorageError } from '../types.js';
import { DirectoryUnavailable } from './connect.js';
import { MAX_TXN_OPS, type EtcdLayout } from './layout.js';
import type { ViewFeed } from './view-feed.js';

/** What one write does if the keys it read are still as the view saw them. */
export interface Plan<R> {
  /** etcd keys the decision read (compared: not modified after the view's revision). */
  reads: Buffer[];
  /**
   * Those of `reads` the decision saw existing: compared "still exists" too,
   * since a key deleted after the view's revision compares like one never there.
   */
  present?: Buffer[];
  ops: IRequestOp[];
  result: R;
  /** An answer decided on the current directory that is not a change (thrown to the caller). */
  refusal?: Error;
}

interface Job {
  plan(): Plan<unknown>;
  resolve(value: unknown): void;
  reject(err: Error): void;
  /** Not planned again before the view reaches this revision (after a lost race). */
  notBefore: number;
  attempts: number;
  deadline: number;
  /** The keys its last plan read: a later write of one of them must not overtake it. */
  keys: string[];
}

/** How often one write may lose a race before it is answered NO. */
const MAX_ATTEMPTS = 100;
const MAX_WRITES_PER_TXN = 64;
/** Transactions of one node under way at once (their keys never overlap). */
const MAX_TXNS_IN_FLIGHT = 4;

export class WriteQueue {
  private queue: Job[] = [];
  private sending = 0;
  /** Keys of transactions under way: not planned again until they are answered. */
  private readonly inFlight = new Set<string>();
  private scheduled = false;
  /** Keys written by transactions the view has not applied yet: planned again only after it has. */
  private readonly unapplied = new Map<string, number>();
  /** Wakes the queue while writes wait, so each is answered NO by its deadline even if nothing else happens. */
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly client: Etcd3,
    private readonly layout: EtcdLayout,
    private readonly feed: ViewFeed,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {
    feed.onAdvance = () => {
      for (const [k, rev] of this.unapplied) if (rev <= feed.revision) this.unapplied.delete(k);
      this.schedule();
    };
    this.sweeper = setInterval(() => {
      if (this.queue.length) this.schedule();
    }, 250);
    this.sweeper.unref();
  }

  submit<R>(plan: () => Plan<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({
        plan,
        resolve: resolve,
        reject,
        notBefore: 0,
        attempts: 0,
        deadline: Date.now() + this.timeoutMs,
        keys: [],
      });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.sending >= MAX_TXNS_IN_FLIGHT) return;
    this.scheduled = true;
    process.nextTick(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.sending >= MAX_TXNS_IN_FLIGHT || !this.queue.length) return;
    const viewRevision = this.feed.revision;
    const now = Date.now();
    const taken: Array<{ job: Job; plan: Plan<unknown> }> = [];
    const used = new Set<string>();
    const compare: ICompare[] = [];
    const success: IRequestOp[] = [];
    const rest: Job[] = [];
    // Keys of writes left waiting: later writes of the same keys wait behind them (a connection's
    // pipelined RESERVE then ACTIVATE of one name keep their order, also after a lost race).
    const waiting = new Set<string>();
    const wait = (job: Job) => {
      rest.push(job);
      for (const k of job.keys) waiting.add(k);
    };
    for (const job of this.queue) {
      if (now > job.deadline) {
        job.reject(
          new DirectoryUnavailable(
            `directory unavailable: the change could not be decided within ${this.timeoutMs / 1000} s (the view did not catch up with etcd)`,
          ),
        );
        continue;
      }
      if (job.notBefore > viewRevision || taken.length >= MAX_WRITES_PER_TXN || job.keys.some((k) => waiting.has(k))) {
        wait(job);
        continue;
      }
      let plan: Plan<unknown>;
      try {
        plan = job.plan();
      } catch (err) {
        job.reject(err as Error);
        continue;
      }
      const keys = plan.reads.map((k) => k.toString('latin1'));
      job.keys = keys;
      const busy = keys.some((k) => used.has(k) || waiting.has(k) || this.inFlight.has(k) || this.unapplied.has(k));
      const present = plan.present ?? [];
      if (busy || compare.length + plan.reads.length + present.length > MAX_TXN_OPS || success.length + plan.ops.length + 1 > MAX_TXN_OPS) {
        wait(job);
        continue;
      }
      for (const k of keys) used.add(k);
      for (const key of plan.reads) compare.push({ key, target: 'Mod', result: 'Less', mod_revision: viewRevision + 1 });
      for (const key of present) compare.push({ key, target: 'Create', result: 'Greater', create_revision: 0 });
      success.push(...plan.ops);
      taken.push({ job, plan });
    }
    this.queue = rest;
    if (!taken.length) return;
    const changes = success.length > 0;
    if (changes) success.push({ request_put: { key: this.layout.meta('head'), value: Buffer.from(String(viewRevision)) } });
    this.sending++;
    for (const k of used) this.inFlight.add(k);
    const settle = () => {
      this.sending--;
      for (const k of used) this.inFlight.delete(k);
    };
    const started = Date.now();
    const deadline = new Date(Math.min(...taken.map((t) => t.job.deadline), started + this.timeoutMs));
    this.schedule();
    // A lost race reads m/head, which every write puts: the view must reach its revision before deciding again
    // (the answer's own revision may belong to keys outside the prefix, which the view never sees).
    const failure: IRequestOp[] = [{ request_range: { key: this.layout.meta('head') } }];
    void this.commit({ compare, success, failure }, deadline).then(
      ({ res, failedBefore }) => {
        settle();
        const revision = Number(res.header.revision);
        if (!res.succeeded && failedBefore) {
          // The repeat found the keys changed: by the first attempt, or by another writer.
          this.unknownOutcome(taken, failedBefore);
          return;
        }
        if (!res.succeeded) {
          // Lost a race: decide again once the view holds what won.
          const head = Number(res.responses[0]?.response_range?.kvs[0]?.mod_revision ?? revision);
          for (const { job } of taken) {
            job.notBefore = head;
            if (++job.attempts >= MAX_ATTEMPTS)
              job.reject(new StorageError('the name is being changed by other writers too often; try again'));
            else this.queue.unshift(job);
          }
          this.schedule();
          return;
        }
        // The watch may have brought the revision before this answer: then nothing waits for it.
        if (changes && revision > this.feed.revision) for (const k of used) this.unapplied.set(k, revision);
        this.schedule();
        void this.answer(taken, changes ? revision : 0);
      },
      (err: Error) => {
        settle();
        this.unknownOutcome(taken, err);
      },
    );
  }

  /**
   * Sends a transaction; after an error (a dead member, a lost leader) sends
   * the same one again until the deadline. That is safe because every
   * transaction compares the keys it writes against the view's revision: if
   * an earlier attempt did commit, the repeat fails its compare and changes
   * nothing (and the caller answers that the outcome is unknown).
   */
  private async commit(
    txn: { compare: ICompare[]; success: IRequestOp[]; failure: IRequestOp[] },
    deadline: Date,
  ): Promise<{ res: ITxnResponse; failedBefore: Error | null }> {
    let failedBefore: Error | null = null;
    for (let attempt = 0; ; attempt++) {
      try {
        return { res: await this.client.kv.txn(txn, { deadline }), failedBefore };
      } catch (err) {
        failedBefore = err as Error;
        const pause = Math.min(500, 25 * 2 ** attempt);
        if (Date.now() + pause >= deadline.getTime()) throw err;
        this.log.debug({ err: failedBefore.message, attempt }, 'etcd transaction failed; sending it again');
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }

  private unknownOutcome(taken: Array<{ job: Job }>, err: Error): void {
    this.log.warn({ err: err.message, writes: taken.length }, 'etcd transaction failed');
    const text = `directory unavailable: etcd did not confirm the change (${err.message}); it may or may not have been stored`;
    for (const { job } of taken) job.reject(new DirectoryUnavailable(text));
    this.schedule();
  }

  /** Answers once the view holds the transaction (read your writes; listeners told). */
  private async answer(taken: Array<{ job: Job; plan: Plan<unknown> }>, revision: number): Promise<void> {
    if (revision && !(await this.feed.waitFor(revision, this.timeoutMs))) {
      this.log.warn({ revision, view: this.feed.revision }, 'committed in etcd, but the view has not applied it yet: answering OK anyway');
      this.feed.nudge(revision);
    }
    for (const { job, plan } of taken) {
      if (plan.refusal) job.reject(plan.refusal);
      else job.resolve(plan.result);
    }
  }

  /** Rejects everything still queued (shutdown). */
  close(): void {
    clearInterval(this.sweeper);
    for (const job of this.queue) job.reject(new StorageError('the directory is closed'));
    this.queue = [];
  }
}
