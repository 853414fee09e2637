/** Messages between `mupdated load` and its dump-parsing thread (parse-worker.ts). */
import type { ThreadError } from './thread-error.js';

export type FromParser =
  /** A packed batch (packed-batch.ts), and the records without an entry skipped since the last one. */
  | { type: 'batch'; data: ArrayBuffer; skipped: number }
  /** The whole dump was read; the records skipped after the last batch. */
  | { type: 'end'; skipped: number }
  /** Reading or parsing failed. */
  | { type: 'error'; error: ThreadError };

/** A batch was committed: the parser may run one more batch ahead. */
export type ToParser = { type: 'ack' };
