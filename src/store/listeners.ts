/**
 * Telling listeners about committed changes. A change is told only after it
 * is durably committed, so a listener that throws cannot undo it: its error
 * is reported, and the other listeners and every later change are still
 * told (a throw must neither turn the committed write into a failure for its
 * writer nor stop the emit cursor, which would freeze every UPDATE stream).
 */
import type { Change, ChangeListener } from './types.js';

/** Where a listener's error goes. */
export type ListenerFailure = (err: unknown, change: Change) => void;

/** The default report when the store's opener gave none: a process warning on stderr. */
export const warnListenerFailure: ListenerFailure = (err, change) => {
  const message = err instanceof Error ? err.message : String(err);
  process.emitWarning(`a directory change listener failed on change ${change.seq}: ${message}`, 'ChangeListenerWarning');
};

/** Tells every listener about `change`; never throws. */
export function tellListeners(listeners: Iterable<ChangeListener>, change: Change, failed: ListenerFailure): void {
  for (const listener of listeners) {
    try {
      listener(change);
    } catch (err) {
      try {
        failed(err, change);
      } catch {
        // The report itself failed (a closed log): nothing more can be done for this listener.
      }
    }
  }
}

/**
 * The store's listeners, told each committed change in sequence order:
 * commits of concurrent writes can finish out of order, so a change waits
 * until every earlier sequence number has been told.
 */
export class OrderedEmitter {
  private readonly listeners = new Set<ChangeListener>();
  private readonly unemitted = new Map<number, Change>();

  /** `nextSeq`: the first sequence number not yet told (the store's last one + 1). */
  constructor(
    private nextSeq: number,
    private readonly failed: ListenerFailure,
  ) {}

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells `change` once every change before it was told. */
  emit(change: Change): void {
    // The usual case, the next change with none waiting: no map work (a load emits millions).
    if (change.seq === this.nextSeq && this.unemitted.size === 0) {
      this.nextSeq++;
      tellListeners(this.listeners, change, this.failed);
      return;
    }
    this.unemitted.set(change.seq, change);
    for (let c = this.unemitted.get(this.nextSeq); c; c = this.unemitted.get(this.nextSeq)) {
      this.unemitted.delete(this.nextSeq);
      this.nextSeq++;
      tellListeners(this.listeners, c, this.failed);
    }
  }

  /** Tells a change numbered by a cluster (gaps between numbers): at once, in the order given. */
  emitNumbered(change: Change): void {
    this.nextSeq = change.seq;
    this.emit(change);
  }
}
