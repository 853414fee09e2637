/** Messages between `mupdated load` and its dump-parsing thread (parse-worker.ts). */

export type FromParser =
  /** A packed batch (packed-batch.ts), and the records without an entry skipped since the last one. */
  | { type: 'batch'; data: ArrayBuffer; skipped: number }
  /** The whole dump was read; the records skipped after the last batch. */
  | { type: 'end'; skipped: number }
  /** Reading or parsing failed: the error's class name, text and system code (ENOENT, ...). */
  | { type: 'error'; name: string; message: string; code: string | undefined };

/** A batch was committed: the parser may run one more batch ahead. */
export type ToParser = { type: 'ack' };
