/**
 * One UPDATE stream (spec 3.9, 5.3-5.5): the initial dump from a snapshot,
 * then every committed change pushed as soon as it is committed. Changes that
 * arrive while the dump runs, or while the socket is backed up, wait in a
 * queue coalesced per name (the newest state wins and moves to the end,
 * keeping commit order); a queue past its bound (distinct names or bytes)
 * ends the stream. Queued changes leave in slices, each written only once
 * the socket has room, so a backlog never sits in memory twice.
 */
import { dataLine } from './wire/encoder.js';
import { serverPart } from './location.js';
import type { Change, DirectoryStore, Entry } from '../store/types.js';
import { dumpChunks, type DumpSource } from './dump-lines.js';
import { metricsHooks } from '../metrics/hooks.js';

export interface StreamSink {
  write(bytes: Buffer): void;
  /** Writes bytes the caller wants back: `release` runs once they have left (not at all if the write failed). */
  writeOwned(bytes: Buffer, release: () => void): void;
  /** Bytes written but not yet sent. */
  readonly backlog: number;
  /** Resolves when the backlog has drained (or the connection is gone). */
  drained(): Promise<void>;
  readonly closed: boolean;
}

export interface StreamOptions {
  /** Most distinct names pending. */
  queueLimit: number;
  /** Most bytes of changes pending (their lines as sent). */
  queueBytes: number;
  highWater: number;
  /** Entries encoded per event-loop turn during a dump. */
  dumpBatch?: number;
}

/** Bytes of queued changes encoded and written at once. */
const SLICE_BYTES = 64 * 1024;

/** What a pending change costs beside its line: its queue slot, key and string header. */
const PENDING_OVERHEAD_BYTES = 160;

/** A change waiting to be sent: its line's bytes as a Latin-1 string (one character a byte). */
interface Pending {
  seq: number;
  line: string;
}

/** How much a pending change counts against the stream's byte bound. */
function pendingBytes(p: Pending): number {
  return p.line.length + PENDING_OVERHEAD_BYTES;
}

export function entryLine(tag: Buffer, e: Entry): Buffer {
  return e.state === 'active' ? dataLine(tag, 'MAILBOX', [e.name, e.location, e.acl]) : dataLine(tag, 'RESERVE', [e.name, e.location]);
}

export function changeLine(tag: Buffer, name: Buffer, entry: Entry | null, seq?: number): Buffer {
  const extra = seq === undefined ? [] : [Buffer.from(String(seq))];
  if (!entry) return dataLine(tag, 'DELETE', [name, ...extra]);
  return entry.state === 'active'
    ? dataLine(tag, 'MAILBOX', [entry.name, entry.location, entry.acl, ...extra])
    : dataLine(tag, 'RESERVE', [entry.name, entry.location, ...extra]);
}

/** An XRESUME request (mupdated extension, README): the directory id and last change the client holds. */
export interface ResumeRequest {
  dbid: string;
  after: number;
  /** Digest of the change the client holds as `after`; a different one means another history. */
  digest?: string | undefined;
}

/** A replay batch is written once it holds this many bytes (the dump's chunks are as large). */
const SEND_BATCH_BYTES = 256 * 1024;

export class UpdateStream {
  /** Changes not yet taken for writing, coalesced per name, in commit order. */
  private queue = new Map<string, Pending>();
  /** Changes taken from the queue in one round, written slice by slice. */
  private round: Pending[] = [];
  private roundPos = 0;
  /** Rounds taken so far, and rounds written to the end. */
  private roundsTaken = 0;
  private roundsWritten = 0;
  private readonly flushWaiters: Array<{ round: number; resolve: () => void }> = [];
  /** Bytes of the queue and of the unwritten rest of the round. */
  private queuedBytes = 0;
  private dumping = true;
  private scheduled = false;
  private writing = false;
  private unsubscribe: (() => void) | null = null;
  private snapshotSeq = 0;
  /** XRESUME streams carry each change's sequence number as a last argument. */
  private seqTagged = false;
  /** Set when the queue overflowed; the session ends the connection. */
  overflowed = false;

  constructor(
    private readonly tag: Buffer,
    private readonly hosts: ReadonlySet<string> | null,
    private readonly sink: StreamSink,
    private readonly options: StreamOptions,
    private readonly onOverflow: (pending: { names: number; bytes: number }) => void,
  ) {
    metricsHooks.streamOpened(this);
  }

  /** Bytes of changes queued for the client (the stream-listener metrics). */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  /** Whether the stream has got past its initial dump. */
  get live(): boolean {
    return !this.dumping;
  }

  private matches(entry: Entry | null): boolean {
    return !!entry && (this.hosts === null || this.hosts.has(serverPart(entry.location)));
  }

  /** A change concerns a partial stream when its old or new server is listed (spec 5.3). */
  private concerns(change: Change): boolean {
    if (this.hosts === null) return true;
    return this.matches(change.previous) || this.matches(change.entry);
  }

  /**
   * The initial dump, subscribed so that no change is lost or sent twice. For
   * XRESUME the snapshot is taken and the subscription starts in the same
   * turn (the XSYNC line names that snapshot), and changes the snapshot
   * already holds are dropped by sequence number.
   */
  async run(store: DirectoryStore, dumps: DumpSource, resume?: ResumeRequest): Promise<void> {
    if (!resume) return this.runDump(store, dumps);
    const snapshot = store.snapshot();
    this.snapshotSeq = snapshot.seq;
    // Set before subscribing: queued changes are encoded with their sequence number.
    this.seqTagged = true;
    this.unsubscribe = store.subscribe((c) => this.enqueue(c));
    try {
      const sameHistory =
        resume.dbid === store.id &&
        resume.after <= snapshot.seq &&
        (resume.digest === undefined || resume.after === 0 || snapshot.changeDigest(resume.after) === resume.digest);
      const log = sameHistory ? snapshot.changesSince(resume.after) : null;
      const mode = log ? 'INCREMENTAL' : 'FULL';
      const from = log ? resume.after : snapshot.seq;
      const digest = snapshot.changeDigest(from) ?? '';
      this.sink.write(
        dataLine(this.tag, 'XSYNC', [Buffer.from(mode), Buffer.from(store.id), Buffer.from(String(from)), Buffer.from(digest)]),
      );
      if (log) await this.send(this.logLines(log, snapshot.seq));
      else await this.sendChunks(dumpChunks(snapshot, this.tag, { servers: this.hosts ?? undefined }));
    } finally {
      snapshot.close();
    }
  }

  /**
   * A plain UPDATE: the dump may be read from a snapshot of another thread (a
   * dump worker). The subscription starts first, so every change after that
   * snapshot is queued; once the dump says which change its snapshot ends
   * with, the changes it already holds are dropped.
   */
  private async runDump(store: DirectoryStore, dumps: DumpSource): Promise<void> {
    this.snapshotSeq = 0;
    this.unsubscribe = store.subscribe((c) => this.enqueue(c));
    const sink = this.sink;
    await dumps.dump(
      this.tag,
      { servers: this.hosts ?? undefined },
      {
        begin: (seq) => {
          this.snapshotSeq = seq;
          for (const [name, p] of this.queue) {
            if (p.seq > seq) continue;
            this.queue.delete(name);
            this.queuedBytes -= pendingBytes(p);
          }
        },
        chunk: (data, release) => {
          sink.writeOwned(data, release);
          if (sink.backlog > this.options.highWater) return sink.drained();
        },
        isCancelled: () => sink.closed || this.overflowed,
      },
    );
  }

  private *logLines(changes: Iterable<Change>, upTo: number): Generator<Buffer> {
    for (const c of changes) {
      if (c.seq > upTo) return;
      yield changeLine(this.tag, c.name, c.entry, c.seq);
    }
  }

  /**
   * Writes lines in batches (a count or SEND_BATCH_BYTES, whichever comes
   * first: a line can carry a 128 KiB ACL), yielding to other clients between
   * batches and waiting for slow readers.
   */
  private async send(lines: Iterable<Buffer>): Promise<void> {
    const batch = this.options.dumpBatch ?? 2000;
    const parts: Buffer[] = [];
    let bytes = 0;
    for (const line of lines) {
      if (this.sink.closed || this.overflowed) return;
      parts.push(line);
      bytes += line.length;
      if (parts.length === batch || bytes >= SEND_BATCH_BYTES) {
        this.sink.write(Buffer.concat(parts));
        parts.length = 0;
        bytes = 0;
        if (this.sink.backlog > this.options.highWater) await this.sink.drained();
        else await new Promise((r) => setImmediate(r));
      }
    }
    if (parts.length) this.sink.write(Buffer.concat(parts));
  }

  /** Writes ready-made chunks, yielding to other clients between them and waiting for slow readers. */
  private async sendChunks(chunks: Iterable<Buffer>): Promise<void> {
    for (const chunk of chunks) {
      if (this.sink.closed || this.overflowed) return;
      this.sink.write(chunk);
      if (this.sink.backlog > this.options.highWater) await this.sink.drained();
      else await new Promise((r) => setImmediate(r));
    }
  }

  /** Called once the dump's OK has been written: start delivering queued changes. */
  goLive(): void {
    this.dumping = false;
    this.schedule();
  }

  private enqueue(change: Change): void {
    if (change.seq <= this.snapshotSeq || !this.concerns(change)) return;
    const key = change.name.toString('latin1');
    // A newer change of a queued name replaces it at the end of the queue, so the
    // stream stays in commit order (XRESUME clients resume after the last sequence
    // number they saw: an older change must never follow a newer one).
    const replaced = this.queue.get(key);
    if (replaced) {
      this.queue.delete(key);
      this.queuedBytes -= pendingBytes(replaced);
    }
    // Encoded now, so the change's own buffers are let go, and kept as a string in V8's heap,
    // which V8 compacts and gives back. A buffer per line (C heap) left the server's heap
    // fragmented for good after 20 slaves resynced under writes (87 MiB against 43 at rest);
    // a view into the shared pool would keep its whole 8 KiB slab alive.
    const line = changeLine(this.tag, change.name, change.entry, this.seqTagged ? change.seq : undefined).toString('latin1');
    const pending = { seq: change.seq, line };
    this.queue.set(key, pending);
    this.queuedBytes += pendingBytes(pending);
    const names = this.queue.size + this.round.length - this.roundPos;
    if (names > this.options.queueLimit || this.queuedBytes > this.options.queueBytes) {
      const held = { names, bytes: this.queuedBytes };
      this.overflowed = true;
      metricsHooks.streamDropped();
      this.stop();
      this.onOverflow(held);
      return;
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.writing || this.dumping || this.queue.size === 0) return;
    this.scheduled = true;
    // Still this turn, after every change of the commit has been queued: listeners get
    // a change as soon as the writer gets its OK, and one commit's changes in one write.
    process.nextTick(() => {
      this.scheduled = false;
      void this.deliver();
    });
  }

  /**
   * Writes queued changes until none are left: the queue is taken a round at
   * a time (changes arriving meanwhile coalesce in the queue for the next
   * round), and each slice of a round waits until the socket has room.
   */
  private async deliver(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (!this.dumping && !this.sink.closed && !this.overflowed) {
        if (this.roundPos === this.round.length) {
          this.finishRound();
          if (this.queue.size === 0) break;
          this.round = [...this.queue.values()];
          this.roundPos = 0;
          this.roundsTaken++;
          this.queue = new Map();
        }
        if (this.sink.backlog > this.options.highWater) await this.sink.drained();
        else if (this.roundPos > 0) await new Promise((r) => setImmediate(r));
        if (this.sink.closed || this.overflowed) break;
        this.writeSlice();
      }
    } finally {
      this.writing = false;
    }
    if (this.sink.closed || this.overflowed) this.releaseFlushWaiters();
  }

  private writeSlice(): void {
    const parts: string[] = [];
    let bytes = 0;
    while (this.roundPos < this.round.length && bytes < SLICE_BYTES) {
      const p = this.round[this.roundPos++];
      parts.push(p.line);
      bytes += p.line.length;
      this.queuedBytes -= pendingBytes(p);
    }
    this.sink.write(Buffer.from(parts.join(''), 'latin1'));
  }

  private finishRound(): void {
    this.round = [];
    this.roundPos = 0;
    this.roundsWritten = this.roundsTaken;
    for (let i = this.flushWaiters.length - 1; i >= 0; i--) {
      const w = this.flushWaiters[i];
      if (w.round > this.roundsWritten) continue;
      this.flushWaiters.splice(i, 1);
      w.resolve();
    }
  }

  private releaseFlushWaiters(): void {
    for (const w of this.flushWaiters.splice(0)) w.resolve();
  }

  /**
   * Resolves once every change queued now has been handed to the connection
   * (NOOP's guarantee, spec 5.4), written in slices that wait for the socket.
   */
  flush(): Promise<void> {
    if (this.dumping || this.sink.closed) return Promise.resolve();
    const round = this.queue.size > 0 ? this.roundsTaken + 1 : this.roundsTaken;
    if (round <= this.roundsWritten) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.flushWaiters.push({ round, resolve }));
    void this.deliver();
    return done;
  }

  stop(): void {
    metricsHooks.streamClosed(this);
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.queue.clear();
    this.round = [];
    this.roundPos = 0;
    this.queuedBytes = 0;
    this.releaseFlushWaiters();
  }
}
