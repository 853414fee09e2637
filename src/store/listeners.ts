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
