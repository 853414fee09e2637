/** Messages between the server thread (dump-pool.ts) and its dump workers (dump-worker.ts). */
export type ToWorker =
  | { type: 'start'; id: number; tag: Uint8Array; locationPrefix?: Uint8Array | undefined; servers?: string[] | undefined; credit: number }
  | { type: 'ack'; id: number }
  /** A chunk's memory, written out and free again: the worker reuses it instead of allocating. */
  | { type: 'recycle'; data: ArrayBuffer }
  | { type: 'cancel'; id: number }
  | { type: 'close' };

export type FromWorker =
  /** The worker has its modules loaded and the directory open: a dump starts at once. */
  | { type: 'ready' }
  /** The dump reads the snapshot holding every change up to `seq`. */
  | { type: 'begin'; id: number; seq: number }
  | { type: 'chunk'; id: number; data: ArrayBuffer; length: number }
  | { type: 'end'; id: number }
  | { type: 'error'; id: number; message: string };
