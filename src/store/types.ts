/** The directory as the protocol sees it (spec 4.1): name -> active or reserved entry. */
export type EntryState = 'active' | 'reserved';

export interface Entry {
  name: Buffer;
  state: EntryState;
  location: Buffer;
  /** Always empty for reserved entries. */
  acl: Buffer;
}

/** One committed change; `entry` null means the name was removed. */
export interface Change {
  seq: number;
  name: Buffer;
  entry: Entry | null;
  previous: Entry | null;
}

/** What a write decides, given the entry's current state, inside the write transaction. */
export type Decision<R> =
  | { kind: 'put'; entry: Entry; result: R }
  | { kind: 'delete'; result: R }
  | { kind: 'keep'; result: R };

export interface Snapshot {
  /** Sequence number of the last change the snapshot contains. */
  readonly seq: number;
  /** Entries in directory order. */
  entries(): IterableIterator<Entry>;
  find(name: Buffer): Entry | undefined;
  close(): void;
}

export type ChangeListener = (change: Change) => void;

/** Directory order (spec 4.5): `cyrus` for 3.6+, `bytes` for 3.0-3.4 backends. */
export type DirectoryOrder = 'cyrus' | 'bytes';

export class StorageError extends Error {}

/** One name's new state in a batch; null removes it. */
export interface BatchItem {
  name: Buffer;
  entry: Entry | null;
}

export interface DirectoryStore {
  readonly order: DirectoryOrder;
  /** Random id of this directory, fixed at creation: change-log sequence numbers are only meaningful with it. */
  readonly id: string;
  /** Current entry of a name (latest committed state). */
  find(name: Buffer): Entry | undefined;
  /**
   * Atomically reads a name's entry, lets `decide` choose, and writes the
   * decision. Resolves only after the commit is durable and listeners have
   * been told; rejects with StorageError when it could not be stored.
   */
  mutate<R>(name: Buffer, decide: (current: Entry | undefined) => Decision<R>): Promise<R>;
  /**
   * Applies many changes in one durable transaction (unchanged items are
   * skipped) and sets `meta` keys in the same transaction. Resolves with the
   * number of entries that changed.
   */
  applyMany(items: BatchItem[], meta?: Record<string, unknown>): Promise<number>;
  getMeta(key: string): unknown;
  /** A consistent read view; its `seq` tells which changes it already holds. */
  snapshot(): Snapshot;
  /** Changes after the snapshot with seq > `after`, in commit order. */
  changesSince(after: number): IterableIterator<Change> | null;
  subscribe(listener: ChangeListener): () => void;
  readonly lastSeq: number;
  close(): Promise<void>;
}
